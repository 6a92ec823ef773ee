"""Study progress: the per-run progress files a worker writes and what a watcher reads from them."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from quickstudy.files import write_json_atomic
from quickstudy.study.layout import PLAN_FILE, PROGRESS_FILE, STATUS_FILE, RunSpec, run_dir
from quickstudy.study.progress import LogLines, RunProgressFile, StudyWatch, study_progress, summary_line

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
    watch = StudyWatch(tmp_path, since=time.time() - 1)
    assert watch.poll() == ([], [])
    writer = RunProgressFile(tmp_path, spec(RUNS[1]))
    writer.training(30, 120, 0.5)
    started, ended = watch.poll()
    assert [run.id for run in started] == ["ft-b"] and ended == []
    snapshot = watch.snapshot()
    assert (snapshot.total, snapshot.done, snapshot.failed, len(snapshot.running)) == (4, 1, 0, 1)
    running = snapshot.running[0]
    assert running.how_far() == "step 30/120 loss 0.5000"
    assert running.label() == "stl_proposed t2 size 100 finetune"
    # ft-b (running, ~100 s left) and ft-c (100 s) are estimated; no evaluate run has finished yet
    assert snapshot.eta_is_lower_bound and 195 <= snapshot.eta_seconds <= 200
    assert "ETA > 0:03:" in summary_line(snapshot)
    finish(tmp_path, "ft-b", "failed", 5.0, error="ValueError: bad")
    finish(tmp_path, "ev-a", "done", 10.0)
    started, ended = watch.poll()
    assert started == [] and {(f.run_id, f.state) for f in ended} == {("ft-b", "failed"), ("ev-a", "done")}
    snapshot = watch.snapshot()
    assert (snapshot.done, snapshot.failed, snapshot.running, snapshot.first_error) == (2, 1, [], "ValueError: bad")
    # left: ft-c, a finetune like ft-a (100 s); a failed run is not left (a retry makes it pending again)
    assert (snapshot.eta_seconds, snapshot.eta_is_lower_bound) == (100.0, False)


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
