"""Study progress: the per-run progress files a worker writes and what a watcher reads from them."""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from quickstudy.files import write_json_atomic
from quickstudy.study.layout import PLAN_FILE, PROGRESS_FILE, STATUS_FILE, RunSpec, run_dir
from quickstudy.study.progress import (
    LogLines,
    RunningRun,
    RunProgressFile,
    StudyWatch,
    read_running,
    study_progress,
    summary_line,
)

RUNS = [
    {"id": "ft-a", "kind": "finetune", "arm": "stl_proposed", "setting": "stl", "task": "t1", "size": "100"},
    {"id": "ft-b", "kind": "finetune", "arm": "stl_proposed", "setting": "stl", "task": "t2", "size": "100"},
    {"id": "ft-c", "kind": "finetune", "arm": "stl_proposed", "setting": "stl", "task": "t3", "size": "100"},
    {"id": "ev-a", "kind": "evaluate", "arm": "stl_proposed", "setting": "stl", "task": "t1", "size": "100"},
]


def finish(study: Path, run_id: str, state: str, wall: float, error: str | None = None) -> None:
    now = time.time()
    stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
    status = {"state": state, "error": error, "started": stamp, "finished": stamp, "wall_seconds": wall}
    write_json_atomic(run_dir(study, run_id) / STATUS_FILE, status)


def spec(run: dict) -> RunSpec:
    return RunSpec(**{key: run[key] for key in ("id", "kind", "arm", "setting", "task", "size")})


def test_progress_file_is_throttled_but_keeps_phase_changes_and_the_last_step(tmp_path):
    run_dir(tmp_path, "ft-a").mkdir(parents=True)
    writer = RunProgressFile(tmp_path, spec(RUNS[0]), every=3600)
    path = run_dir(tmp_path, "ft-a") / PROGRESS_FILE
    assert json.loads(path.read_text())["phase"] == "loading"
    writer.training(1, 50, None)  # a new phase: written
    writer.training(2, 50, 1.5)  # within the interval: skipped
    assert json.loads(path.read_text())["done"] == 1
    writer.training(50, 50, 0.25)  # the last step: written
    record = json.loads(path.read_text())
    assert (record["done"], record["total"], record["loss"], record["arm"], record["task"]) == (
        50, 50, 0.25, "stl_proposed", "t1",
    )  # fmt: skip


def test_watch_reports_starts_ends_running_runs_and_an_eta_from_finished_walls(tmp_path):
    write_json_atomic(tmp_path / PLAN_FILE, {"runs": RUNS})
    for run in RUNS:
        run_dir(tmp_path, run["id"]).mkdir(parents=True)
    finish(tmp_path, "ft-a", "done", 100.0)  # before the watcher: the past, not an event
    watch = StudyWatch(tmp_path, since=time.time() - 60)
    assert watch.poll() == ([], [])
    writer = RunProgressFile(tmp_path, spec(RUNS[1]))
    writer.training(30, 120, 0.5)
    progress_path = run_dir(tmp_path, "ft-b") / PROGRESS_FILE
    record = json.loads(progress_path.read_text())
    thirty_seconds_ago = record["updated"] - 30  # 30 steps in 30 s, the first at the start
    write_json_atomic(
        progress_path,
        record | {"started": thirty_seconds_ago, "phase_first_at": thirty_seconds_ago, "phase_first_done": 0},
    )
    started, ended = watch.poll()
    assert [run.id for run in started] == ["ft-b"] and ended == []
    snapshot = watch.snapshot()
    assert (snapshot.total, snapshot.done, snapshot.failed, len(snapshot.running)) == (4, 1, 0, 1)
    running = snapshot.running[0]
    assert running.how_far() == "step 30/120 loss 0.5000"
    assert running.label() == "stl_proposed t2 size 100 finetune"
    # ft-b (running, 90 steps left at 1 s a step) and ft-c (100 s, like ft-a) are estimated; no evaluate
    # run has finished yet
    assert snapshot.eta_is_lower_bound and 185 <= snapshot.eta_seconds <= 190
    assert "ETA > 0:03:" in summary_line(snapshot)
    finish(tmp_path, "ft-b", "failed", 5.0, error="ValueError: bad")
    finish(tmp_path, "ev-a", "done", 10.0)
    started, ended = watch.poll()
    assert started == [] and {(f.run_id, f.state) for f in ended} == {("ft-b", "failed"), ("ev-a", "done")}
    snapshot = watch.snapshot()
    assert (snapshot.done, snapshot.failed, snapshot.running, snapshot.first_error) == (2, 1, [], "ValueError: bad")
    # left: ft-c, a finetune like ft-a (100 s); a failed run is not left (a retry makes it pending again)
    assert (snapshot.eta_seconds, snapshot.eta_is_lower_bound) == (100.0, False)


def test_eta_counts_the_steps_running_runs_have_left_at_their_own_pace(tmp_path):
    """Late in the demo: short STL finetunes have finished in 10 s; two 500-step MTL finetunes that
    have run 370 s are at step 370, so each needs about 130 s more, whatever the STL runs took."""
    runs = [
        {"id": "stl-1", "kind": "finetune", "arm": "proposed", "setting": "stl", "task": "t1", "size": "100"},
        {"id": "mtl-1", "kind": "finetune", "arm": "proposed", "setting": "mtl", "task": None, "size": "100"},
        {"id": "mtl-2", "kind": "finetune", "arm": "baseline", "setting": "mtl", "task": None, "size": "100"},
        {"id": "mtl-3", "kind": "finetune", "arm": "proposed", "setting": "mtl", "task": None, "size": "all"},
    ]
    write_json_atomic(tmp_path / PLAN_FILE, {"runs": runs})
    for run in runs:
        run_dir(tmp_path, run["id"]).mkdir(parents=True)
    finish(tmp_path, "stl-1", "done", 10.0)
    now = time.time()
    for run in runs[1:3]:
        facts = {key: run[key] for key in ("id", "kind", "arm", "setting", "task", "size")}
        record = {**facts, "phase": "training", "done": 370, "total": 500, "loss": 0.5}
        write_json_atomic(run_dir(tmp_path, run["id"]) / PROGRESS_FILE, record | {"started": now - 370, "updated": now})
    watch = StudyWatch(tmp_path)
    watch.poll()
    snapshot = watch.snapshot(now=now)
    assert [run.seconds_left(now) for run in snapshot.running] == [130.0, 130.0]
    # the two running runs (130 s each) and mtl-3 (a finetune: 10 s like stl-1), two at a time
    assert (snapshot.eta_seconds, snapshot.eta_is_lower_bound) == ((130 + 130 + 10) / 2, False)
    assert summary_line(snapshot).endswith("ETA 0:02:15")
    # 20 s later without a new report, 110 s each are left
    assert watch.snapshot(now=now + 20).eta_seconds == (110 + 110 + 10) / 2


def test_eta_is_never_shorter_than_the_longest_running_run(tmp_path):
    runs = [{"id": f"ft-{i}", "kind": "finetune", "setting": "stl", "task": "t", "size": "100"} for i in range(3)]
    write_json_atomic(tmp_path / PLAN_FILE, {"runs": runs})
    for run in runs:
        run_dir(tmp_path, run["id"]).mkdir(parents=True)
    now = time.time()
    for run, done in zip(runs, (10, 90)):  # 1 s a step: 90 and 10 s left
        record = {**run, "phase": "training", "done": done, "total": 100, "started": now - done, "updated": now}
        write_json_atomic(run_dir(tmp_path, run["id"]) / PROGRESS_FILE, record)
    watch = StudyWatch(tmp_path)
    watch.poll()
    # (90 + 10) / 2 running at once would say 50 s; ft-0 alone needs 90; ft-2 has no estimate yet
    assert (watch.snapshot(now=now).eta_seconds, watch.snapshot(now=now).eta_is_lower_bound) == (90.0, True)


def test_progress_from_before_the_watcher_is_not_running(tmp_path):
    write_json_atomic(tmp_path / PLAN_FILE, {"runs": RUNS})
    run_dir(tmp_path, "ft-a").mkdir(parents=True)
    RunProgressFile(tmp_path, spec(RUNS[0])).training(3, 10, None)  # left by a killed runner
    watch = StudyWatch(tmp_path, since=time.time() + 1)
    watch.poll()
    assert watch.snapshot().running == []


def test_log_lines_are_timestamped_and_plain_when_output_is_not_a_terminal(tmp_path):
    write_json_atomic(tmp_path / PLAN_FILE, {"runs": RUNS})
    for run in RUNS:
        run_dir(tmp_path, run["id"]).mkdir(parents=True)
    out = io.StringIO()
    console = Console(file=out, width=300)
    view = study_progress(console, tmp_path, log_every=3600)
    assert isinstance(view, LogLines)
    with view:
        view.started(len(RUNS))
        RunProgressFile(tmp_path, spec(RUNS[0])).training(4, 8, 0.75)
        view.update(0, 1, 0)
        finish(tmp_path, "ft-a", "done", 12.5)
        view.update(1, 0, 0)
    lines = out.getvalue().splitlines()
    assert all(datetime.fromisoformat(line.split(" ")[0]) for line in lines)
    text = "\n".join(line.split(" ", 1)[1] for line in lines)
    assert "start ft-a: stl_proposed t1 size 100 finetune" in text
    assert "done ft-a: stl_proposed t1 size 100 in 12.5s" in text
    assert text.splitlines()[0].startswith("study 0/4 done") and text.splitlines()[-1].startswith("study 1/4 done")
    assert "\x1b[" not in out.getvalue()


def test_a_resumed_run_is_paced_by_the_steps_this_process_did(tmp_path, monkeypatch):
    """Resumed at step 400 of 500: after loading (10 s), step 401, then 20 steps in 40 s; 79 steps at
    2 s are left (paced from the run's start it would be 421 steps in 50 s: 9 s for the rest)."""
    write_json_atomic(tmp_path / PLAN_FILE, {"runs": RUNS})
    run_dir(tmp_path, "ft-a").mkdir(parents=True)
    clock = [1000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    progress = RunProgressFile(tmp_path, spec(RUNS[0]))
    clock[0] += 10
    progress.training(401, 500, None)  # the first step after the checkpoint
    running = read_running(run_dir(tmp_path, "ft-a") / PROGRESS_FILE)
    assert running.seconds_left(clock[0]) is None  # one report of this process: no pace yet
    clock[0] += 40
    progress.training(421, 500, 0.5)
    running = read_running(run_dir(tmp_path, "ft-a") / PROGRESS_FILE)
    assert running.seconds_left(clock[0]) == pytest.approx(79 * 2.0)
    # a run that started at step 1 is paced from its start, loading included, until its second report
    fresh = RunningRun(**{**asdict(running), "done": 1, "phase_first_done": 1, "phase_first_at": running.started + 5})
    assert fresh.seconds_left(fresh.updated) == pytest.approx(499 * (fresh.updated - fresh.started))
