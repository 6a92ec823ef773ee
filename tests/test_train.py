"""Training on a real sample task with tiny models: loss falls, LoRA, STL/MTL data, save/reload."""

from __future__ import annotations

import json

import pytest
import torch

from quickstudy.data.collection import Collection
from quickstudy.data.splits import task_split
from quickstudy.errors import ConfigError
from quickstudy.evaluate.generate import generate_predictions
from quickstudy.models.loading import load_model
from quickstudy.models.spec import LoraSpec, ModelSpec
from quickstudy.prompts.encoding import encoding_by_name
from quickstudy.train.batching import collate
from quickstudy.train.config import TrainConfig
from quickstudy.train.loop import build_optimizer
from quickstudy.train.stages import (
    TaskSelection,
    downstream_selections,
    finetune,
    prefinetune,
    training_features,
    training_texts,
)

pytestmark = pytest.mark.superni

TASK = "task1152_bard_analogical_reasoning_causation"
MTL_TASKS = [TASK, "task1622_disfl_qa_text_modication", "task391_causal_relationship"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def collection(sample_dir) -> Collection:
    return Collection(sample_dir)


def _quick(**changes) -> TrainConfig:
    settings = dict(learning_rate=2e-3, max_steps=24, batch_size=8, max_source_length=192, max_target_length=16,
                    log_every_steps=4, checkpoint_every_steps=None, progress_bar=False, seed=3)  # fmt: skip
    return TrainConfig(**{**settings, **changes})


def _logged_losses(out_dir) -> list[float]:
    return [json.loads(line)["loss"] for line in (out_dir / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", ["tiny-t5", "tiny-llama"])
def test_tiny_model_learns_a_real_task_and_its_checkpoint_reloads_and_generates(name, collection, tmp_path):
    selections = downstream_selections(collection, [TASK], "all")
    result = finetune(ModelSpec(name_or_path=name), selections, "def_pos2", _quick(), tmp_path / "run")

    losses = _logged_losses(tmp_path / "run")
    assert result.steps == 24 and len(losses) == 6
    assert losses[-1] < 0.6 * losses[0], losses
    records = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert all(r["tokens_per_second"] > 0 and r["lr"] == pytest.approx(2e-3) for r in records)

    reloaded = load_model(ModelSpec(name_or_path=result.model_dir))
    assert reloaded.is_seq2seq == (name == "tiny-t5")
    features = training_features(selections, encoding_by_name("def_pos2"), reloaded, _quick(), 1)
    assert len(features) == result.examples == len(selections[0].instances)
    # the checkpoint holds the trained weights: it fits the data far better than the untrained start
    batch = collate(features[:8], reloaded.tokenizer.pad_token_id, reloaded.is_seq2seq)
    fresh = load_model(ModelSpec(name_or_path=name))
    with torch.no_grad():
        assert reloaded.model(**batch).loss < 0.7 * fresh.model(**batch).loss
    prompts = [t.prompt for t in training_texts(selections, encoding_by_name("def_pos2"), reloaded, _quick(), 1)[:3]]
    outputs = generate_predictions(
        reloaded, prompts, batch_size=3, max_new_tokens=6, max_source_length=192, progress=False
    )
    assert len(outputs) == 3 and all(isinstance(text, str) for text in outputs)
    assert any(text.strip() for text in outputs)


def test_lora_trains_only_the_adapter(collection, tmp_path):
    spec = ModelSpec(name_or_path="tiny-t5", lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    before = {k: v.clone() for k, v in load_model(spec).model.state_dict().items()}
    selections = downstream_selections(collection, [TASK], "16")
    result = finetune(spec, selections, "def_pos2", _quick(max_steps=3, learning_rate=1e-2), tmp_path / "lora")

    saved = sorted(p.name for p in (tmp_path / "lora" / "model").iterdir())
    assert "adapter_model.safetensors" in saved and "model.safetensors" not in saved
    from safetensors.torch import load_file

    adapter = load_file(tmp_path / "lora" / "model" / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)
    # base weights unchanged, adapter weights moved (lora_B starts at zero)
    merged = load_model(ModelSpec(name_or_path=result.model_dir)).model.state_dict()
    base_keys = [k for k in before if "lora_" not in k]
    unchanged = [k for k in base_keys if ".q." not in k and ".v." not in k]
    base_name = lambda k: k.replace("base_model.model.", "").replace(".base_layer", "")  # noqa: E731
    assert all(torch.equal(before[k], merged[base_name(k)]) for k in unchanged)
    assert all(adapter[k].abs().sum() > 0 for k in adapter if "lora_B" in k)
    adapted = [k for k in base_keys if k.endswith(".q.base_layer.weight")]
    assert adapted and all(not torch.equal(before[k], merged[base_name(k)]) for k in adapted)


def test_stl_and_mtl_feed_exactly_the_selected_training_instances(collection):
    stl = downstream_selections(collection, [TASK], "8", seed=5)
    bigger = downstream_selections(collection, [TASK], "16", seed=5)
    mtl = downstream_selections(collection, MTL_TASKS, "8", seed=5)
    loaded = load_model(ModelSpec(name_or_path="tiny-t5"))
    encoding = encoding_by_name("def_pos2")

    split = task_split(collection.task(TASK))
    held_out = {i.id for i in split.test + split.validation}
    stl_fed = [(t.task, t.instance_id) for t in training_texts(stl, encoding, loaded, _quick(), 5)]
    assert len(stl_fed) == 8 and {task for task, _ in stl_fed} == {TASK}
    assert {i for _, i in stl_fed} <= {i.id for i in split.train} and not {i for _, i in stl_fed} & held_out
    assert [i.id for i in bigger[0].instances[:8]] == [i for _, i in stl_fed]  # nested sizes

    mtl_fed = [(t.task, t.instance_id) for t in training_texts(mtl, encoding, loaded, _quick(), 5)]
    assert len(mtl_fed) == 24 and {task for task, _ in mtl_fed} == set(MTL_TASKS)
    assert [i for t, i in mtl_fed if t == TASK] == [i for _, i in stl_fed]  # same sample of each task as its STL run
    assert len(training_features(mtl, encoding, loaded, _quick(), 5)) == 24
    assert isinstance(mtl[0], TaskSelection)


def test_prefinetune_mixes_n_instances_of_each_seen_task(collection, tmp_path):
    seen = ["task063_first_i_elements", "task079_conala_concat_strings"]
    config = _quick(max_steps=2, batch_size=4, optimizer="adafactor", gradient_checkpointing=True)
    result = prefinetune(
        collection, seen, 4, "input_only", ModelSpec(name_or_path="tiny-t5"), config, tmp_path / "pft", seed=2
    )
    assert result.examples == 8 and result.steps == 2
    start = load_model(ModelSpec(name_or_path="tiny-t5")).model.state_dict()
    trained = load_model(ModelSpec(name_or_path=result.model_dir)).model.state_dict()
    assert any(not torch.equal(start[k], trained[k]) for k in start)
    saved = json.loads((tmp_path / "pft" / "train_config.json").read_text())
    assert saved["train"]["optimizer"] == "adafactor" and saved["model"]["name_or_path"] == "tiny-t5"


def test_a_finished_output_dir_refuses_a_different_run(collection, tmp_path):
    selections = downstream_selections(collection, [TASK], "8")
    finetune("tiny-t5", selections, "def_pos2", _quick(max_steps=1), tmp_path / "run")
    with pytest.raises(ConfigError, match="different model, data or config"):
        finetune("tiny-t5", selections, "def_pos2", _quick(max_steps=2), tmp_path / "run")


def test_tensorboard_logging_or_a_one_line_reason_why_not(collection, tmp_path):
    from accelerate.utils import is_tensorboard_available

    selections = downstream_selections(collection, [TASK], "8")
    config = _quick(max_steps=2, log_every_steps=1, tensorboard=True)
    if is_tensorboard_available():
        finetune("tiny-t5", selections, "def_pos2", config, tmp_path / "run")
        assert list((tmp_path / "run").rglob("events.out.tfevents*"))
    else:
        with pytest.raises(ConfigError, match="train.tensorboard"):
            finetune("tiny-t5", selections, "def_pos2", config, tmp_path / "run")
        assert not (tmp_path / "run" / "model").exists()


def test_the_multi_tensor_adamw_updates_weights_bitwise_like_torchs_per_parameter_loop(collection):
    config = _quick(weight_decay=0.01)
    model = load_model(ModelSpec(name_or_path="tiny-t5"))
    features = training_features(
        downstream_selections(collection, [TASK], "all"), encoding_by_name("def_pos2"), model, config, 1
    )
    batches = [collate(features[i : i + 4], model.tokenizer.pad_token_id, True) for i in range(0, 12, 4)]

    def per_parameter_adamw(trained, config):  # the same groups, torch's default (per-parameter loop on CPU)
        groups = [
            {"params": g["params"], "weight_decay": g["weight_decay"]}
            for g in build_optimizer(trained, config).param_groups
        ]
        return torch.optim.AdamW(groups, lr=config.learning_rate)

    weights = []
    for optimizer_of in (build_optimizer, per_parameter_adamw):
        trained = load_model(ModelSpec(name_or_path="tiny-t5")).model.eval()  # eval: no dropout, same losses both ways
        optimizer = optimizer_of(trained, config)
        for batch in batches:
            trained(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        weights.append(trained.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    start = load_model(ModelSpec(name_or_path="tiny-t5")).model.state_dict()
    assert any(not torch.equal(start[k], weights[0][k]) for k in start)  # it did train
