"""Running studies: the smoke study end to end, resume after SIGKILL, re-runs, the lock,
failures and retries, local vs Ray, MLflow tracking."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from quickstudy.errors import StudyError
from quickstudy.study.config import load_study_config
from quickstudy.study.execute import checkpoint_dir
from quickstudy.study.layout import RunKind
from quickstudy.study.lock import study_lock
from quickstudy.study.plan import plan_study
from quickstudy.study.runner import run_study
from quickstudy.study.status import study_status

CLI = [sys.executable, "-m", "quickstudy.cli"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def all_metrics(study_dir: Path) -> dict[str, dict]:
    """Every evaluate run's metrics.json, by run id."""
    return {
        path.parent.name: json.loads(path.read_text()) for path in sorted((study_dir / "runs").glob("*/metrics.json"))
    }


def start_count(study_dir: Path, run_id: str) -> int:
    """How many times a run was started (each attempt appends a `start` line to its log)."""
    log = study_dir / "runs" / run_id / "log.txt"
    return sum(" start " in line for line in log.read_text().splitlines()) if log.is_file() else 0


def run_pid(study_dir: Path, run_id: str) -> int:
    """The process a run last ran in, from its log's `start ... pid N` line."""
    starts = [line for line in (study_dir / "runs" / run_id / "log.txt").read_text().splitlines() if " start " in line]
    return int(starts[-1].rsplit(" pid ", 1)[1])


def smoke_variant(smoke_config: Path, tmp_path: Path, **changes) -> Path:
    """A copy of the smoke config (on the synthetic collection) with top-level keys replaced."""
    raw = yaml.safe_load(smoke_config.read_text())
    raw.update(changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def local_study(smoke_config: Path, tmp_path_factory) -> Path:
    """The smoke study, run once in-process with the local executor."""
    study_dir = tmp_path_factory.mktemp("local") / "study"
    result = run_study(load_study_config(smoke_config), study_dir)
    assert result.complete and result.already_done == 0 and len(result.done) == result.planned == 20
    return study_dir


def test_smoke_study_writes_the_study_directory_layout(smoke_config: Path, local_study: Path) -> None:
    plan = plan_study(load_study_config(smoke_config))
    assert yaml.safe_load((local_study / "study.yaml").read_text())["name"] == "smoke"
    assert [run["id"] for run in json.loads((local_study / "plan.json").read_text())["runs"]] == [
        r.id for r in plan.runs
    ]
    for run in plan.runs:
        folder = local_study / "runs" / run.id
        spec = json.loads((folder / "spec.json").read_text())
        assert {key: spec[key] for key in ("id", "kind", "arm", "setting", "task", "size", "seed")} == {
            "id": run.id, "kind": run.kind, "arm": run.arm, "setting": run.setting,
            "task": run.task, "size": run.size, "seed": run.seed,
        }  # fmt: skip
        assert spec["depends_on"] == list(run.depends_on)
        status = json.loads((folder / "status.json").read_text())
        assert status["state"] == "done" and status["error"] is None and status["device"] == "cpu"
        if run.kind == RunKind.EVALUATE:
            lines = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
            assert len(lines) == 8 * len(spec["tasks"])  # n_test = 8 per task
            assert all(set(line["scores"]) == {"exact_match", "rouge1", "rougeL"} for line in lines)
            assert all(isinstance(line["prompt_truncated"], bool) for line in lines)
            metrics = json.loads((folder / "metrics.json").read_text())
            assert metrics["overall"]["n"] == len(lines)
            mean = sum(line["scores"]["rougeL"] for line in lines) / len(lines)
            assert metrics["overall"]["rougeL"] == pytest.approx(mean, abs=1e-3)
        if run.kind == RunKind.FINETUNE:  # evaluated, so its model is gone; the counts the report reads stay
            assert not checkpoint_dir(local_study, run.id).exists()
            assert set(spec["train_pool"]) == set(spec["train_instances"]) == set(spec["tasks"])
            for task, count in spec["train_instances"].items():
                assert count == (spec["train_pool"][task] if run.size == "all" else int(run.size))
        if run.kind == RunKind.PREFINETUNE:  # kept: pre-finetuned models are reused
            assert checkpoint_dir(local_study, run.id).is_dir()
            assert spec["train_instances"] == {task: 4 for task in spec["tasks"]}
    status = study_status(local_study).to_json()
    assert (status["done"], status["pending"], status["failed"]) == (20, 0, 0)
    assert status["by_arm"]["stl_proposed"] == {"done": 8, "pending": 0, "failed": 0}


def test_status_command_prints_json(local_study: Path) -> None:
    done = subprocess.run(
        [*CLI, "study", "status", str(local_study), "--json"], capture_output=True, text=True, check=True
    )
    status = json.loads(done.stdout)
    assert (status["done"], status["pending"], status["failed"]) == (20, 0, 0)
    assert set(status["by_arm"]) == {
        "prefinetune",
        "stl_proposed",
        "mtl_proposed",
        "stl_baseline1",
        "stl_baseline3",
        "zero_shot",
    }


def test_rerun_trains_nothing_and_a_changed_setting_reruns_only_its_runs(
    smoke_config: Path, local_study: Path, tmp_path: Path
) -> None:
    study_dir = tmp_path / "study"
    shutil.copytree(local_study, study_dir)
    again = run_study(load_study_config(smoke_config), study_dir)
    assert again.done == [] and again.already_done == 20 and again.complete

    zero_shot = run_study(load_study_config(smoke_config, ["arms.zero_shot.generation.max_new_tokens=4"]), study_dir)
    plan = plan_study(load_study_config(smoke_config, ["arms.zero_shot.generation.max_new_tokens=4"])).by_id()
    assert [plan[run_id].arm for run_id in zero_shot.done] == ["zero_shot"]

    # New generation settings for an arm whose fine-tuned models were deleted: the fine-tunes
    # (same ids: same data and training) are rebuilt, then evaluated with the new settings.
    changed = ["arms.stl_baseline1.generation.num_beams=2"]
    rerun = run_study(load_study_config(smoke_config, changed), study_dir)
    plan = plan_study(load_study_config(smoke_config, changed)).by_id()
    assert sorted(plan[run_id].kind for run_id in rerun.done) == [
        RunKind.EVALUATE,
        RunKind.EVALUATE,
        RunKind.FINETUNE,
        RunKind.FINETUNE,
    ]
    assert {plan[run_id].arm for run_id in rerun.done} == {"stl_baseline1"}
    retrained = [run_id for run_id in rerun.done if plan[run_id].kind == RunKind.FINETUNE]
    assert all((local_study / "runs" / run_id).is_dir() for run_id in retrained)
    assert all(start_count(study_dir, run_id) == 2 for run_id in retrained)


@pytest.mark.slow
def test_sigkilled_study_resumes_to_the_same_metrics(smoke_config: Path, local_study: Path, tmp_path: Path) -> None:
    study_dir = tmp_path / "study"
    runner = subprocess.Popen(
        [*CLI, "study", "run", str(smoke_config), "--out", str(study_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    try:
        while time.time() < deadline and runner.poll() is None:
            if len(list(study_dir.glob("runs/*/status.json"))) >= 5:
                break
            time.sleep(0.05)
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    assert runner.returncode == -signal.SIGKILL, "the study finished before it could be killed"
    finished_before = {path.parent.name for path in study_dir.glob("runs/*/status.json")}
    assert 5 <= len(finished_before) < 20
    started_before = {
        run_id: json.loads((study_dir / "runs" / run_id / "status.json").read_text())["started"]
        for run_id in finished_before
    }

    resumed = run_study(load_study_config(smoke_config), study_dir)
    assert resumed.complete and resumed.already_done == len(finished_before)
    assert not finished_before & set(resumed.done)
    for run_id in finished_before:  # a finished run is never run again
        assert start_count(study_dir, run_id) == 1
        assert (
            json.loads((study_dir / "runs" / run_id / "status.json").read_text())["started"] == started_before[run_id]
        )
    assert all_metrics(study_dir) == all_metrics(local_study)


def test_a_second_runner_is_refused(smoke_config: Path, tmp_path: Path) -> None:
    study_dir = tmp_path / "study"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from quickstudy.study.lock import study_lock\n"
         "with study_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)", str(study_dir)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StudyError, match=f"another `study run` is running this study \\(pid {holder.pid} on "):
            run_study(load_study_config(smoke_config), study_dir)
        refused = subprocess.run(
            [*CLI, "study", "run", str(smoke_config), "--out", str(study_dir)], capture_output=True, text=True
        )
        assert refused.returncode != 0 and "another `study run` is running this study" in refused.stderr
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
        assert not (study_dir / "runs").exists()
    finally:
        holder.kill()
        holder.wait()
    with study_lock(study_dir):  # released when its holder died
        pass


def test_failed_runs_are_recorded_the_rest_go_on_and_retry_failed_reruns_them(
    smoke_config: Path, tmp_path: Path
) -> None:
    """The instruction-tuned model is a checkpoint folder that does not exist yet: its runs fail."""
    from quickstudy.models.loading import load_model, save_model
    from quickstudy.models.spec import ModelSpec

    model_dir = tmp_path / "f_inst"
    raw = yaml.safe_load(smoke_config.read_text())
    config_path = smoke_variant(
        smoke_config,
        tmp_path,
        tasks={"seen": {"max_tasks": 1}, "unseen": {"names": ["task066_coref_referent"]}},
        models={**raw["models"], "instruction_tuned": {"name_or_path": str(model_dir)}},
        arms=[arm for arm in raw["arms"] if arm["name"] in ("stl_baseline1", "zero_shot", "mtl_proposed")],
    )
    study_dir = tmp_path / "study"
    command = [*CLI, "study", "run", str(config_path), "--out", str(study_dir)]
    failed = subprocess.run(command, capture_output=True, text=True)
    assert failed.returncode == 1
    assert f"{model_dir}" in failed.stderr and "2 runs failed" in failed.stderr and "Traceback" not in failed.stderr
    status = study_status(study_dir)
    # pre-finetune, baseline-1 fine-tune and evaluation done; MTL fine-tune and zero-shot failed; MTL evaluation waits
    assert status.counts == {"done": 3, "pending": 1, "failed": 2}
    assert all(str(model_dir) in error for error in status.failed.values())

    rerun = run_study(load_study_config(config_path), study_dir)
    assert rerun.done == [] and len(rerun.failed) == 2 and len(rerun.blocked) == 1

    # Retried in two worker processes (executor settings are not part of run ids).
    save_model(load_model(ModelSpec(name_or_path="tiny-t5", init_seed=1)), model_dir)
    retried = run_study(load_study_config(config_path, ["executor.workers=2"]), study_dir, retry_failed=True)
    assert retried.complete and sorted(retried.done) == sorted([*status.failed, *rerun.blocked])
    assert study_status(study_dir).counts == {"done": 6, "pending": 0, "failed": 0}
    assert os.getpid() not in {run_pid(study_dir, run_id) for run_id in retried.done}


def test_mlflow_tracking_logs_each_run_to_a_sqlite_store(smoke_config: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load(smoke_config.read_text())
    config_path = smoke_variant(
        smoke_config,
        tmp_path,
        tasks={"seen": {"max_tasks": 1}, "unseen": {"names": ["task066_coref_referent"]}},
        arms=[arm for arm in raw["arms"] if arm["name"] == "zero_shot"],
        tracking="mlflow",
    )
    study_dir = tmp_path / "study"
    result = run_study(load_study_config(config_path), study_dir)
    assert result.complete and len(result.done) == 1
    (run_id,) = result.done
    with sqlite3.connect(study_dir / "mlflow.db") as db:
        (experiment,) = db.execute("select experiment_id from experiments where name = 'smoke'").fetchone()
        runs = db.execute("select run_uuid, name from runs where experiment_id = ?", (experiment,)).fetchall()
        assert [name for _, name in runs] == [run_id]
        metrics = dict(db.execute("select key, value from metrics where run_uuid = ?", (runs[0][0],)).fetchall())
        params = dict(db.execute("select key, value from params where run_uuid = ?", (runs[0][0],)).fetchall())
    expected = json.loads((study_dir / "runs" / run_id / "metrics.json").read_text())["overall"]
    assert metrics["rougeL"] == pytest.approx(expected["rougeL"]) and metrics["exact_match"] == pytest.approx(
        expected["exact_match"]
    )
    assert params["arm"] == "zero_shot" and params["encoding"] == "def_pos2" and params["kind"] == RunKind.EVALUATE


@pytest.mark.slow
def test_ray_executor_gives_the_local_metrics(smoke_config: Path, local_study: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    study_dir = tmp_path / "study"
    try:
        result = run_study(load_study_config(smoke_config, ["executor.kind=ray", "executor.ray_num_cpus=2"]), study_dir)
    finally:
        ray.shutdown()
    assert result.complete and len(result.done) == 20
    assert all_metrics(study_dir) == all_metrics(local_study)
    assert os.getpid() not in {run_pid(study_dir, run_id) for run_id in result.done}  # they ran in Ray's workers
