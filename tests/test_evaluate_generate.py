"""Generation end to end with tiny models built from a config: the outputs are
garbage, but order, counts, ids, files and metrics plumbing are real."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import ByT5Tokenizer, LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

from quickstudy.data.collection import Collection
from quickstudy.evaluate.generate import generate_predictions, generate_texts, padded, predictions_for, write_evaluation
from quickstudy.evaluate.metrics import score_records
from quickstudy.evaluate.predictions import read_predictions

PROMPTS = [
    "Definition: answer yes or no.\nInput: Is the sky blue?\nOutput:",
    "Hi",
    "A much longer prompt, so that batches need padding: " + "words " * 12,
    "Input: 3 + 4\nOutput:",
    "",
    "Ünïcödé prompt ✓",
    "short one",
]


@pytest.fixture(scope="module")
def tokenizer():
    return ByT5Tokenizer()


def _tiny_t5(tokenizer) -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=4,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id,
        initializer_factor=5.0,  # at the default scale a random model repeats one byte
    )  # fmt: skip
    # float64 so that padding's rounding differences cannot flip a greedy choice.
    return T5ForConditionalGeneration(config).double()


def _tiny_llama(tokenizer) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    return LlamaForCausalLM(config).double()


@pytest.mark.parametrize("build", [_tiny_t5, _tiny_llama], ids=["seq2seq", "decoder-only"])
def test_batched_generation_keeps_order_and_matches_one_at_a_time(tokenizer, build):
    model = build(tokenizer)
    prompts = [p for p in PROMPTS if p or model.config.is_encoder_decoder]  # no BOS: nothing to continue from
    batched = generate_texts(model, tokenizer, prompts, batch_size=3, max_new_tokens=6, progress=False)
    singly = [generate_texts(model, tokenizer, [p], batch_size=1, max_new_tokens=6, progress=False)[0] for p in prompts]
    assert len(batched) == len(prompts)
    assert batched == singly
    assert len(set(batched)) > 1  # different prompts, different garbage: order is observable
    assert model.training  # left in the mode it was in
    assert all(len(text.encode()) <= 6 * 4 for text in batched)


def test_decoder_only_output_excludes_the_prompt(tokenizer):
    model = _tiny_llama(tokenizer)
    prompt = "Input: copy me please\nOutput:"
    (text,) = generate_texts(model, tokenizer, [prompt], max_new_tokens=5, progress=False)
    assert prompt not in text and len(text.encode()) <= 5 * 4


def test_beam_search_and_source_budget(tokenizer):
    model = _tiny_t5(tokenizer)
    long_prompt = "x" * 200
    beams = generate_texts(model, tokenizer, PROMPTS[:3], num_beams=2, max_new_tokens=4, progress=False)
    assert len(beams) == 3
    cut = generate_texts(model, tokenizer, [long_prompt], max_source_length=16, max_new_tokens=4, progress=False)
    same = generate_texts(model, tokenizer, ["x" * 15], max_new_tokens=4, progress=False)  # 15 bytes + </s>
    assert cut == same


def test_padding_sides():
    input_ids, mask = padded([[5, 6, 7], [8]], pad_id=0, left=True)
    assert input_ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    input_ids, mask = padded([[5, 6, 7], [8]], pad_id=0, left=False)
    assert input_ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


@pytest.mark.superni
def test_end_to_end_predictions_file_and_metrics(tokenizer, sample_dir, tmp_path):
    task = Collection(sample_dir).task("task1344_glue_entailment_classification")
    instances = task.instances[:5]
    prompts = [f"{task.definition}\nInput: {i.input}\nOutput:" for i in instances]

    class Loaded:  # what models.loading.LoadedModel offers generation
        model = _tiny_t5(tokenizer)

    Loaded.tokenizer = tokenizer
    outputs = generate_predictions(
        Loaded, prompts, batch_size=2, max_new_tokens=4, max_source_length=256, progress=False
    )
    records = predictions_for(task, instances, outputs, prompts=prompts, prompt_truncated=[False] * 5)
    write_evaluation(tmp_path / "run", records)

    read = read_predictions(tmp_path / "run" / "predictions.jsonl")
    assert [r.instance_id for r in read] == [i.id for i in instances]
    assert [r.prediction for r in read] == outputs
    assert all(r.category == "Textual Entailment" and r.prompt_truncated is False for r in read)
    assert read == records
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics == score_records(read).to_json()
    assert metrics["n"] == 5 and list(metrics["per_task"]) == [task.name]
    expected_em = 100.0 * sum(r.scores.exact_match == 100.0 for r in read) / 5
    assert metrics["overall"]["exact_match"] == round(expected_em, 4)
    with pytest.raises(ValueError, match="4 outputs for 5 instances"):
        predictions_for(task, instances, outputs[:4])
