"""Models: tiny offline factories, tokenizers, the load cache, LoRA defaults, hub errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoTokenizer

from quickstudy.data.collection import Collection
from quickstudy.errors import ModelError
from quickstudy.models.loading import BaseModelCache, load_model, save_model
from quickstudy.models.lora import lora_target_modules
from quickstudy.models.spec import LoraSpec, ModelSpec
from quickstudy.models.tiny import byte_tokenizer, tiny_model, word_level_tokenizer

TASK = "task1152_bard_analogical_reasoning_causation"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", ["tiny-t5", "tiny-llama"])
def test_tiny_model_weights_depend_only_on_seed(name):
    tokenizer = byte_tokenizer()
    torch.manual_seed(123)  # global RNG state must not matter
    first = tiny_model(name, tokenizer, seed=7)
    second = tiny_model(name, tokenizer, seed=7)
    other = tiny_model(name, tokenizer, seed=8)
    assert _same_weights(first, second)
    assert not _same_weights(first, other)
    assert first.config.vocab_size == len(tokenizer) == 384


@pytest.mark.superni
def test_word_level_tokenizer_trained_on_a_real_task_round_trips_through_a_checkpoint(sample_dir, tmp_path):
    task = Collection(sample_dir).task(TASK)
    texts = [task.definition] + [i.input for i in task.instances] + [r for i in task.instances for r in i.references]
    tokenizer = word_level_tokenizer(texts, vocab_size=500)
    ids = tokenizer(task.instances[0].input)["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.unk_token_id not in ids  # every word of a training text is in the vocabulary
    words = [piece for piece, _ in tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(task.instances[0].input)]
    assert tokenizer.decode(ids, skip_special_tokens=True).split() == words
    assert tokenizer("zyxwvut")["input_ids"][0] == tokenizer.unk_token_id
    assert len(tokenizer) <= 500

    tokenizer.save_pretrained(tmp_path / "tok")
    loaded = load_model(ModelSpec(name_or_path="tiny-t5", tokenizer=str(tmp_path / "tok")), cache=BaseModelCache(0))
    assert loaded.model.config.vocab_size == len(tokenizer)
    save_model(loaded, tmp_path / "ckpt")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "ckpt")
    assert reloaded(task.instances[1].input)["input_ids"] == tokenizer(task.instances[1].input)["input_ids"]


def test_cache_hands_out_fresh_copies_so_training_cannot_leak():
    cache = BaseModelCache()
    first = load_model(ModelSpec(name_or_path="tiny-t5", init_seed=3), cache=cache)
    original = {k: v.clone() for k, v in first.model.state_dict().items()}
    with torch.no_grad():
        for parameter in first.model.parameters():
            parameter.add_(1.0)
    second = load_model(ModelSpec(name_or_path="tiny-t5", init_seed=3), cache=cache)
    assert second.model is not first.model
    assert all(torch.equal(second.model.state_dict()[k], v) for k, v in original.items())
    assert len(cache._entries) == 1


def test_lora_default_targets_follow_the_architecture():
    t5 = load_model(ModelSpec(name_or_path="tiny-t5", lora=LoraSpec(r=2)))
    llama = load_model(ModelSpec(name_or_path="tiny-llama", lora=LoraSpec(r=2)))
    assert lora_target_modules(t5.model.get_base_model(), LoraSpec()) == ["q", "v"]
    assert lora_target_modules(llama.model.get_base_model(), LoraSpec()) == ["q_proj", "v_proj"]
    trainable = {n for n, p in t5.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert any(".q.lora_A" in n for n in trainable) and any(".v.lora_B" in n for n in trainable)
    with pytest.raises(ModelError, match="lora.target_modules"):
        load_model(ModelSpec(name_or_path="tiny-t5", lora=LoraSpec(target_modules=("no_such_module",))))


def test_offline_hub_model_is_a_one_line_error_naming_it(synth_collection, tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text(
        "stage: finetune\nmodel: {name_or_path: google/t5-xl-lm-adapt}\n"
        f"data: {{collection: {synth_collection}, tasks: [task031_analogy_solve]}}\n"
        f"output_dir: {tmp_path / 'out'}\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run(
        [sys.executable, "-m", "quickstudy.cli", "train", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "google/t5-xl-lm-adapt" in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
