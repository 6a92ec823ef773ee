"""One training run as several data-parallel processes (executor.processes_per_run, study/launch.py):
torchrun with gloo on the CPU, the same steps as one process with the same effective batch, kill -9
and resume with no process left behind, DeepSpeed's one-line errors where it cannot run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from quickstudy.errors import ConfigError
from quickstudy.study.config import load_study_config
from quickstudy.study.layout import RunKind, RunState
from quickstudy.study.plan import plan_study
from quickstudy.study.runner import run_study
from quickstudy.study.status import run_state
from quickstudy.train.config import TrainConfig
from quickstudy.train.loop import LOG_FILE, RESULT_FILE, deepspeed_plugin

CLI = [sys.executable, "-m", "quickstudy.cli"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # here and in the launched processes


def one_run_study(smoke_config: Path, folder: Path, processes: int, **training) -> Path:
    """The smoke study cut to one STL fine-tune (and its evaluation) of a dropout-free tiny T5,
    launched as `processes` processes."""
    raw = yaml.safe_load(smoke_config.read_text())
    raw["tasks"]["unseen"] = {"names": ["task066_coref_referent"]}
    raw["models"] = {
        "instruction_tuned": {"name_or_path": "tiny-t5", "init_seed": 1, "tiny_config": {"dropout_rate": 0}}
    }
    raw["arms"] = [
        {"name": "stl", "start": "instruction_tuned", "encoding": "def_pos2", "setting": "stl", "sizes": [8]}
    ]
    raw["training"] |= {"log_every_steps": 1, **training}
    raw["executor"]["processes_per_run"] = processes
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def training_runs(config: Path) -> list:
    return [run for run in plan_study(load_study_config(config)).runs if run.kind.trains]


def train_folder(study_dir: Path, run_id: str) -> Path:
    return study_dir / "runs" / run_id / "train"


def logged_losses(study_dir: Path, run_id: str) -> list[float]:
    lines = (train_folder(study_dir, run_id) / LOG_FILE).read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines]


def processes_mentioning(text: str) -> list[str]:
    """Command lines of this machine's processes that name `text` (a test's own folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in command:
                found.append(f"{entry.name}: {command}")
    return found


def test_two_processes_train_the_same_steps_as_one_with_the_same_effective_batch(
    smoke_config: Path, tmp_path: Path
) -> None:
    one = one_run_study(smoke_config, tmp_path / "one", processes=1, gradient_accumulation_steps=2, max_steps=4)
    two = one_run_study(smoke_config, tmp_path / "two", processes=2, gradient_accumulation_steps=1, max_steps=4)
    (single,), (launched,) = training_runs(one), training_runs(two)
    # the effective batch (2 x 2 x 1 = 2 x 1 x 2) is in the id, the world size is not
    assert launched.id == single.id
    assert (launched.processes, launched.effective_batch, single.processes, single.effective_batch) == (2, 4, 1, 4)
    other = one_run_study(smoke_config, tmp_path / "other", processes=2, gradient_accumulation_steps=2, max_steps=4)
    assert training_runs(other)[0].id != single.id  # effective batch 8: another run

    results = {}
    for config, study_dir in ((one, tmp_path / "one" / "study"), (two, tmp_path / "two" / "study")):
        outcome = run_study(load_study_config(config), study_dir)
        assert outcome.complete and len(outcome.done) == 2
        results[study_dir] = json.loads((train_folder(study_dir, single.id) / RESULT_FILE).read_text())
    by_one, by_two = results.values()
    assert (by_two["world_size"], by_two["micro_batch"], by_two["effective_batch"]) == (2, 2, 4)
    assert (by_one["world_size"], by_one["micro_batch"], by_one["effective_batch"]) == (1, 2, 4)
    assert by_one["fingerprint"] == by_two["fingerprint"] and by_one["steps"] == by_two["steps"] == 4
    assert by_one["train_tokens"] == by_two["train_tokens"]  # the same examples, split across the processes
    losses_one, losses_two = (logged_losses(study_dir, single.id) for study_dir in results)
    assert len(losses_one) == len(losses_two) == 4
    assert losses_two == pytest.approx(losses_one, rel=1e-4)
    spec = json.loads((tmp_path / "two" / "study" / "runs" / single.id / "spec.json").read_text())
    assert (spec["processes"], spec["effective_batch"], spec["train_steps"]) == (2, 4, 4)
    status = json.loads((tmp_path / "two" / "study" / "runs" / single.id / "status.json").read_text())
    assert status["state"] == "done" and status["device"] == "cpu"


def test_a_killed_launch_leaves_no_process_and_resumes_under_the_same_count_only(
    smoke_config: Path, tmp_path: Path
) -> None:
    steps = {"max_steps": 16, "checkpoint_every_steps": 4}
    two = one_run_study(smoke_config, tmp_path / "two", processes=2, gradient_accumulation_steps=1, **steps)
    study_dir = tmp_path / "two" / "study"
    (run,) = training_runs(two)
    checkpoints = train_folder(study_dir, run.id) / "checkpoints"
    runner = subprocess.Popen(
        [*CLI, "study", "run", str(two), "--out", str(study_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    try:
        while time.time() < deadline and runner.poll() is None and not list(checkpoints.glob("step-*")):
            time.sleep(0.05)
        assert processes_mentioning(str(study_dir)), "no training process was running"
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    assert runner.returncode == -signal.SIGKILL, "the study ended before it could be killed"
    deadline = time.time() + 20  # torchrun dies with the runner, its processes within a poll of it
    while processes_mentioning(str(study_dir)) and time.time() < deadline:
        time.sleep(0.2)
    assert processes_mentioning(str(study_dir)) == []
    assert run_state(study_dir, run.id)[0] == RunState.PENDING

    # the same run (same effective batch) in one process: its checkpoint is refused in one line
    one = one_run_study(smoke_config, tmp_path / "one", processes=1, gradient_accumulation_steps=2, **steps)
    refused = run_study(load_study_config(one), study_dir)
    assert list(refused.failed) == [run.id]
    assert "written by 2 process(es), resumed with 1" in refused.failed[run.id]
    assert "\n" not in refused.failed[run.id]

    resumed = run_study(load_study_config(two), study_dir, retry_failed=True)
    assert resumed.complete and set(resumed.done) == {r.id for r in plan_study(load_study_config(two)).runs}
    result = json.loads((train_folder(study_dir, run.id) / RESULT_FILE).read_text())
    assert result["resumed_from_step"] >= 4 and result["steps"] == 16 and result["world_size"] == 2
    assert processes_mentioning(str(study_dir)) == []


@pytest.mark.slow
def test_the_smoke_study_runs_to_the_end_with_two_processes_per_training_run(
    smoke_config: Path, tmp_path: Path
) -> None:
    raw = yaml.safe_load(smoke_config.read_text())
    raw["executor"]["processes_per_run"] = 2
    # one arm of each shape that launches: MTL, and STL from the study's own pre-finetuned model
    raw["arms"] = [arm for arm in raw["arms"] if arm["name"] in ("mtl_proposed", "stl_baseline1")]
    config = tmp_path / "smoke.yaml"
    config.write_text(yaml.safe_dump(raw))
    study_dir = tmp_path / "study"
    result = run_study(load_study_config(config), study_dir)
    assert result.complete and len(result.done) == result.planned == 7
    plan = plan_study(load_study_config(config))
    trained = [run for run in plan.runs if run.kind.trains]
    assert len(trained) == 4 and {run.kind for run in trained} == {RunKind.PREFINETUNE, RunKind.FINETUNE}
    for run in trained:
        counted = json.loads((train_folder(study_dir, run.id) / RESULT_FILE).read_text())
        assert (counted["world_size"], counted["effective_batch"]) == (2, 4)
    assert len(list(study_dir.glob("runs/*/metrics.json"))) == 3


def test_deepspeed_is_a_one_line_error_where_it_cannot_run(smoke_config: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: DeepSpeed may run here")
    with pytest.raises(ConfigError, match=r"^training\.deepspeed: zero2 runs on GPUs and this machine has none"):
        deepspeed_plugin(TrainConfig(deepspeed="zero2"))
    assert deepspeed_plugin(TrainConfig()) is None
    with pytest.raises(ConfigError, match="training.deepspeed"):
        load_study_config(smoke_config, ["training.deepspeed=zero9"])
    plan = plan_study(load_study_config(smoke_config, ["training.deepspeed=zero2"]))
    assert all(run.training["deepspeed"] == "zero2" for run in plan.runs if run.kind.trains)
