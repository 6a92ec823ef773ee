"""Tracking: each study run's per-step loss and learning rate, final metrics and spec reach
MLflow (SQLite store), Weights & Biases (offline files) and TensorBoard, read back here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from quickstudy.study.config import load_study_config
from quickstudy.study.layout import RunKind, read_run_spec
from quickstudy.study.runner import run_study
from quickstudy.study.tracking import make_tracker


@pytest.fixture(scope="module")
def tracked_study(smoke_config: Path, tmp_path_factory) -> tuple[Path, Path]:
    """A smoke-sized study (one task, one fine-tune and its evaluation) run with tracking: wandb, offline."""
    raw = yaml.safe_load(smoke_config.read_text())
    raw.update(
        tasks={"seen": {"max_tasks": 1}, "unseen": {"names": ["task066_coref_referent"]}},
        arms=[{"name": "stl_proposed", "start": "instruction_tuned", "encoding": "def_pos2", "setting": "stl", "sizes": [4]}],
        training={**raw["training"], "max_steps": 3, "log_every_steps": 1},
        tracking="wandb",
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("tracked")
    config = folder / "study.yaml"
    config.write_text(yaml.safe_dump(raw))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        result = run_study(load_study_config(config), folder / "study")
    torch.set_num_threads(threads)
    assert result.complete and len(result.done) == 2
    return config, folder / "study"


def logged_losses(study: Path) -> dict[str, list[tuple[int, float]]]:
    """Each training run's (step, loss) from its own train_log.jsonl: what the trackers must show."""
    return {
        path.parents[1].name: [(r["step"], r["loss"]) for r in map(json.loads, path.read_text().splitlines())]
        for path in study.glob("runs/*/train/train_log.jsonl")
    }


def wandb_records(path: Path):
    """The protobuf records of a W&B transaction log (`run-*.wandb`): a 7-byte header, then
    32 KiB blocks of records, each with a 7-byte header (checksum, length, type) and split
    across blocks when long (types: 1 whole, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data, block, position, chunks = path.read_bytes(), 32768, 7, []
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:
            position += left
            continue
        length, kind = int.from_bytes(data[position + 4 : position + 6], "little"), data[position + 6]
        chunks.append(data[position + 7 : position + 7 + length])
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            chunks = []
            yield record


def test_wandb_offline_receives_per_step_loss_lr_final_metrics_and_spec(tracked_study):
    _, study = tracked_study
    expected = logged_losses(study)
    assert len(expected) == 1 and [step for step, _ in next(iter(expected.values()))] == [1, 2, 3]
    runs = {}
    for path in (study / "wandb").rglob("run-*.wandb"):
        records = list(wandb_records(path))
        (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        history = [
            {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
            for r in records
            if r.WhichOneof("record_type") == "history"
        ]
        summary = {
            item.key or "/".join(item.nested_key): json.loads(item.value_json)
            for r in records
            if r.WhichOneof("record_type") == "summary"
            for item in r.summary.update
        }
        config = {item.key: json.loads(item.value_json) for item in run.config.update}
        runs[run.display_name] = (run, history, summary, config)
    assert set(runs) == {path.name for path in (study / "runs").iterdir()}  # one W&B run per study run
    for run_id, points in expected.items():
        run, history, _, config = runs[run_id]
        assert run.project == run.run_group == "smoke" and config["kind"] == RunKind.FINETUNE
        assert [(h["_step"], h["loss"]) for h in history] == points
        assert all(h["lr"] == pytest.approx(1e-3) for h in history)
    (evaluation,) = [name for name in runs if name.startswith("ev-")]
    scores = json.loads((study / "runs" / evaluation / "metrics.json").read_text())["overall"]
    assert runs[evaluation][2]["rougeL"] == pytest.approx(scores["rougeL"])
    assert runs[evaluation][3]["arm"] == "stl_proposed"


def test_mlflow_sqlite_store_receives_per_step_loss(tracked_study, tmp_path):
    from mlflow.tracking import MlflowClient

    config_path, study = tracked_study
    config = load_study_config(config_path, ["tracking=mlflow", f"tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"])
    tracker = make_tracker(config, study)
    for run in sorted((study / "runs").iterdir()):
        tracker.log_run(read_run_spec(run / "spec.json"), study)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("smoke")
    found = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    for run_id, points in logged_losses(study).items():
        history = client.get_metric_history(found[run_id].info.run_id, "loss")
        assert sorted((m.step, m.value) for m in history) == points
        assert len(client.get_metric_history(found[run_id].info.run_id, "lr")) == len(points)
        assert found[run_id].data.params["kind"] == RunKind.FINETUNE


def test_tensorboard_event_files_hold_the_per_step_loss(tracked_study):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config_path, study = tracked_study
    tracker = make_tracker(load_study_config(config_path, ["tracking=tensorboard"]), study)
    for run_id, points in logged_losses(study).items():
        tracker.log_run(read_run_spec(study / "runs" / run_id / "spec.json"), study)
        events = EventAccumulator(str(study / "tensorboard" / run_id))
        events.Reload()
        scalars = events.Scalars("loss")
        assert [e.step for e in scalars] == [step for step, _ in points]
        assert [e.value for e in scalars] == pytest.approx([loss for _, loss in points], rel=1e-6)  # float32
