"""A torn training log or a damaged step checkpoint never blocks a run (issue 17): the log's
torn last line is dropped, a damaged checkpoint falls back to step 0, with a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from quickstudy.models.loading import BaseModelCache, load_model
from quickstudy.models.spec import ModelSpec
from quickstudy.prompts.features import EncodedExample
from quickstudy.train import loop
from quickstudy.train.config import TrainConfig

CONFIG = TrainConfig(learning_rate=1e-3, max_steps=6, batch_size=2, checkpoint_every_steps=2, log_every_steps=1,
                     progress_bar=False, seed=5)  # fmt: skip
EXAMPLES = [EncodedExample(input_ids=[5 + i, 6 + i, 1], labels=[7 + i, 1]) for i in range(8)]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def fresh_model():
    return load_model(ModelSpec(name_or_path="tiny-t5", init_seed=3), cache=BaseModelCache(max_entries=0))


def killed_after_last_step(out_dir: Path, monkeypatch) -> None:
    """Train until the model would be saved, then die: step-4 checkpoint and 6 log lines stay."""

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(loop, "save_model", killed)
        with pytest.raises(KeyboardInterrupt):
            loop.train_model(fresh_model(), EXAMPLES, CONFIG, out_dir)
    assert [p.name for p in (out_dir / "checkpoints").iterdir()] == ["step-00000004"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    torch.set_num_threads(1)  # set up before the autouse fixture: the same threads, the same float sums
    out = tmp_path_factory.mktemp("whole")
    loop.train_model(fresh_model(), EXAMPLES, CONFIG, out)
    return load_file(out / "model" / "model.safetensors")


def same_weights(out_dir: Path, reference: dict[str, torch.Tensor]) -> bool:
    found = load_file(out_dir / "model" / "model.safetensors")
    return found.keys() == reference.keys() and all(torch.equal(found[k], reference[k]) for k in found)


def test_a_torn_last_log_line_is_dropped_and_the_run_resumes(tmp_path, monkeypatch, caplog, reference) -> None:
    killed_after_last_step(tmp_path, monkeypatch)
    with (tmp_path / "train_log.jsonl").open("a") as log:
        log.write('{"step": 7, "loss": "unterminat')
    with caplog.at_level(logging.WARNING):
        result = loop.train_model(fresh_model(), EXAMPLES, CONFIG, tmp_path)
    assert result.resumed_from_step == 4 and result.steps == 6
    assert f"{tmp_path / 'train_log.jsonl'}:7: dropped a torn or malformed log line" in caplog.text
    assert [record["step"] for _, record in loop.logged_steps(tmp_path / "train_log.jsonl")] == [1, 2, 3, 4, 5, 6]
    assert same_weights(tmp_path, reference)


@pytest.mark.parametrize("damaged", ["model.safetensors", "optimizer.bin", "quickstudy_state.json"])
def test_a_damaged_step_checkpoint_falls_back_to_step_0(tmp_path, monkeypatch, caplog, reference, damaged) -> None:
    killed_after_last_step(tmp_path, monkeypatch)
    path = tmp_path / "checkpoints" / "step-00000004" / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        result = loop.train_model(fresh_model(), EXAMPLES, CONFIG, tmp_path)
    assert result.resumed_from_step is None and result.steps == 6
    assert f"{path.parent}: damaged step checkpoint" in caplog.text
    assert same_weights(tmp_path, reference)
