"""Study progress: which runs are running, how far each is, and when the study should end.

The process that executes a run (in the runner, a worker process or a Ray node) writes
`runs/<id>/progress.json` (atomically, at most every few seconds): its phase, step/total
and last loss while training, generated/total while evaluating. Whoever watches the study
(the runner's live view or log lines, `study status`) reads those files and the runs'
status.json, so the executors need not report anything. The ETA comes from the pace of the
running runs (their steps left) and from the wall times of finished runs like the others.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from statistics import fmean
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table

from quickstudy.files import write_json_atomic
from quickstudy.study.layout import PLAN_FILE, PROGRESS_FILE, STATUS_FILE, RunSpec, run_dir
from quickstudy.study.lock import HOLDER_NAME
from quickstudy.study.runner import Progress as RunnerProgress

WRITE_EVERY_SECONDS = 2.0  # a worker's progress.json is rewritten at most this often
POLL_SECONDS = 2.0  # how often a watcher reads the files


# --- written by the process executing a run ------------------------------------------------


class RunProgressFile:
    """A run's progress.json: `training` and `evaluating` are the train and generate callbacks."""

    def __init__(self, study_dir: Path, spec: RunSpec, every: float = WRITE_EVERY_SECONDS):
        self.path = run_dir(study_dir, spec.id) / PROGRESS_FILE
        self.every = every
        self.facts = {"id": spec.id, "kind": str(spec.kind), "arm": spec.arm or spec.role, "setting": spec.setting}
        self.facts |= {"task": spec.task, "size": spec.size, "started": time.time()}
        self._written_at, self._phase = 0.0, ""
        self._phase_from: tuple[int, float] = (0, time.time())
        self.write("loading", 0, None, force=True)

    def write(self, phase: str, done: int, total: int | None, loss: float | None = None, force: bool = False) -> None:
        now = time.time()
        if phase != self._phase:  # the pace is measured from a phase's first report in this process
            self._phase_from = (done, now)
        elif not (force or done == total or now - self._written_at >= self.every):
            return
        first_done, first_at = self._phase_from
        record = {**self.facts, "phase": phase, "done": done, "total": total, "loss": loss, "updated": now}
        record |= {"phase_first_done": first_done, "phase_first_at": first_at}
        write_json_atomic(self.path, record)
        self._written_at, self._phase = now, phase

    def training(self, step: int, total: int, loss: float | None) -> None:
        self.write("training", step, total, loss)

    def evaluating(self, done: int, total: int) -> None:
        self.write("evaluating", done, total)


# --- read by whoever watches the study -------------------------------------------------------


@dataclass(frozen=True)
class RunningRun:
    id: str
    kind: str
    arm: str | None
    setting: str | None
    task: str | None
    size: str | None
    phase: str
    done: int
    total: int | None
    loss: float | None
    started: float
    updated: float
    # The phase's first report in the process running it: a resumed run's steps before that
    # were done by an earlier process and say nothing of this one's pace (None: an older file).
    phase_first_done: int | None = None
    phase_first_at: float | None = None

    def label(self) -> str:
        """arm, task (or the setting: mtl, zero_shot), size and kind."""
        return f"{self.arm or '-'} {self.task or self.setting or '-'} size {self.size or '-'} {self.kind}"

    def how_far(self) -> str:
        if self.phase == "training":
            loss = "-" if self.loss is None else f"{self.loss:.4f}"
            return f"step {self.done}/{self.total} loss {loss}"
        if self.phase == "evaluating":
            return f"generated {self.done}/{self.total}"
        return self.phase

    def seconds_left(self, now: float) -> float | None:
        """The steps (or generations) left at the pace so far, less the time since the last report;
        None before the first one."""
        if not self.done or not self.total or self.phase not in ("training", "evaluating"):
            return None
        if self.phase_first_at is not None and self.phase_first_done is not None and self.done > self.phase_first_done:
            pace = max(0.0, self.updated - self.phase_first_at) / (self.done - self.phase_first_done)
        elif self.phase == "training" and (self.phase_first_done or 0) > 1:  # resumed, one report: no pace yet
            return None
        else:  # from the run's start, loading included
            pace = max(0.0, self.updated - self.started) / self.done
        return max(0.0, pace * (self.total - self.done) - max(0.0, now - self.updated))

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"elapsed_seconds": round(time.time() - self.started, 1)}


def read_running(path: Path) -> RunningRun | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return RunningRun(**{name: raw.get(name) for name in RunningRun.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None


@dataclass(frozen=True)
class Finished:
    run_id: str
    state: str
    wall_seconds: float
    error: str | None
    started: float
    finished: float


@dataclass
class StudySnapshot:
    total: int
    done: int
    failed: int
    running: list[RunningRun]
    elapsed_seconds: float
    eta_seconds: float | None  # None until a run of some remaining kind has finished
    eta_is_lower_bound: bool  # some remaining runs are of a kind none of which has finished yet
    first_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "running": [run.to_json() for run in self.running],
            "elapsed_seconds": round(self.elapsed_seconds, 1),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "eta_is_lower_bound": self.eta_is_lower_bound,
        }


@dataclass
class StudyWatch:
    """Follows a study directory by reading plan.json, status.json and progress.json files.
    `since`: progress files from before it (a killed earlier runner) do not count as running."""

    study_dir: Path
    since: float | None = None
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # plan.json's runs by id
    ended: dict[str, Finished] = field(default_factory=dict)
    running: dict[str, RunningRun] = field(default_factory=dict)
    _polled: bool = False

    def poll(self) -> tuple[list[RunningRun], list[Finished]]:
        """Read the files again; the runs that started and those that ended since the last poll
        (nothing on the first poll: what ended before is the past)."""
        if not self.runs:
            try:
                plan = json.loads((self.study_dir / PLAN_FILE).read_text(encoding="utf-8"))
                self.runs = {run["id"]: run for run in plan["runs"]}
            except (OSError, ValueError, KeyError, TypeError):
                return [], []
        first, self._polled = not self._polled, True
        started, ended = [], []
        for run_id in self.runs:
            known = self.ended.get(run_id)
            if known is not None and known.state == "done":
                continue  # final; a failed run may be retried, so it is read again
            folder = run_dir(self.study_dir, run_id)
            finished = _finished(folder / STATUS_FILE, run_id)
            if finished is not None:
                self.running.pop(run_id, None)
                if finished != known:
                    self.ended[run_id] = finished
                    ended += [] if first else [finished]
                continue
            self.ended.pop(run_id, None)
            progress = read_running(folder / PROGRESS_FILE) if (folder / PROGRESS_FILE).exists() else None
            if progress is None or (self.since is not None and progress.started < self.since):
                continue
            if run_id not in self.running:
                started.append(progress)
            self.running[run_id] = progress
        return started, ended

    def snapshot(self, now: float | None = None) -> StudySnapshot:
        now = time.time() if now is None else now
        states = [finished.state for finished in self.ended.values()]
        errors = [f.error for f in self.ended.values() if f.state == "failed" and f.error]
        running = sorted(self.running.values(), key=lambda run: run.started)
        eta, unknown = self.eta_seconds(now)
        if self.since is not None:
            elapsed = now - self.since
        else:  # from the first run's start to now, or to the last run's end when none runs
            starts = [f.started for f in self.ended.values()] + [run.started for run in running]
            end = now if running else max((f.finished for f in self.ended.values()), default=now)
            elapsed = end - min(starts, default=end)
        return StudySnapshot(
            total=len(self.runs),
            done=states.count("done"),
            failed=states.count("failed"),
            running=running,
            elapsed_seconds=elapsed,
            eta_seconds=eta,
            eta_is_lower_bound=unknown > 0,
            first_error=errors[0] if errors else None,
        )

    def eta_seconds(self, now: float) -> tuple[float | None, int]:
        """Seconds until every run not finished is done, over the runs at once (never less than the
        longest running run needs); and how many runs have no estimate yet.

        A running run that has reported steps needs its own pace times the steps it has left;
        any other run the mean wall time of finished runs like it: the same kind, setting and size,
        else kind and size, else kind (minus what a running one has done already)."""
        walls: dict[tuple, list[float]] = defaultdict(list)
        for run_id, finished in self.ended.items():
            if finished.state == "done" and finished.wall_seconds:
                for key in _likeness(self.runs[run_id]):
                    walls[key].append(finished.wall_seconds)
        left, longest, unknown, known = 0.0, 0.0, 0, 0
        for run_id, run in self.runs.items():
            if run_id in self.ended:
                continue
            progress = self.running.get(run_id)
            estimate = progress.seconds_left(now) if progress is not None else None
            if estimate is None:
                like = next((walls[key] for key in _likeness(run) if walls.get(key)), None)
                if like is None:
                    unknown += 1
                    continue
                estimate = fmean(like)
                if progress is not None:
                    estimate = max(0.0, estimate - (now - progress.started))
            known += 1
            left += estimate
            if progress is not None:
                longest = max(longest, estimate)
        eta = max(left / max(1, len(self.running)), longest)
        return (eta if known or not unknown else None), unknown


def _likeness(run: dict[str, Any]) -> list[tuple]:
    """The keys of the runs a run is like, most alike first: kind, setting and size; kind and size; kind."""
    kind, setting, size = run["kind"], str(run.get("setting")), str(run.get("size"))
    return [(kind, setting, size), (kind, size), (kind,)]


def _finished(path: Path, run_id: str) -> Finished | None:
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict) or status.get("state") not in ("done", "failed"):
        return None
    wall = status.get("wall_seconds")
    wall = float(wall) if isinstance(wall, int | float) else 0.0
    finished = _timestamp(status.get("finished")) or path.stat().st_mtime
    started = _timestamp(status.get("started")) or finished - wall
    return Finished(run_id, status["state"], wall, status.get("error"), started, finished)


def _timestamp(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return None


def runner_alive(study_dir: Path) -> bool:
    """Whether the runner that last locked the study still runs (assumed so on another host)."""
    try:
        holder = json.loads((study_dir / HOLDER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def study_snapshot(study_dir: Path) -> StudySnapshot:
    """The study as `study status` shows it; no run counts as running when its runner is gone."""
    watch = StudyWatch(study_dir)
    watch.poll()
    if not runner_alive(study_dir):
        watch.running.clear()
    return watch.snapshot()


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def summary_line(snapshot: StudySnapshot) -> str:
    eta = "?" if snapshot.eta_seconds is None else duration(snapshot.eta_seconds)
    eta = f"> {eta}" if snapshot.eta_is_lower_bound and snapshot.eta_seconds else eta
    return (
        f"{snapshot.done}/{snapshot.total} done, {snapshot.failed} failed, {len(snapshot.running)} running, "
        f"elapsed {duration(snapshot.elapsed_seconds)}, ETA {eta}"
    )


# --- the runner's view: live in a terminal, timestamped lines otherwise ----------------------


class _Watcher(RunnerProgress):
    """Polls the study directory in a thread from `started` (the study is locked and planned,
    so a refused run shows nothing) until the context exits."""

    def __init__(self, console: Console, study_dir: Path):
        self.console = console
        self.watch = StudyWatch(study_dir, since=time.time())
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.tick()
            self.close()

    def started(self, total: int) -> None:
        self.tick()
        self.open()
        self._thread = threading.Thread(target=self._loop, name="study-progress", daemon=True)
        self._thread.start()

    def update(self, done: int, running: int, failed: int) -> None:
        if self._thread is not None:
            self.tick()

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.tick()

    def tick(self) -> None:
        with self._lock:
            started, ended = self.watch.poll()
            self.show(started, ended, self.watch.snapshot())

    def open(self) -> None: ...

    def close(self) -> None: ...

    def show(self, started: list[RunningRun], ended: list[Finished], snapshot: StudySnapshot) -> None: ...


class LiveView(_Watcher):
    """A terminal view redrawn in place: the study bar and ETA, one line per running run, failures."""

    def open(self) -> None:
        self._snapshot = self.watch.snapshot()
        self._live = Live(get_renderable=self.render, console=self.console, refresh_per_second=2, transient=False)
        self._live.start()

    def close(self) -> None:
        self._live.stop()

    def show(self, started: list[RunningRun], ended: list[Finished], snapshot: StudySnapshot) -> None:
        self._snapshot = snapshot

    def render(self) -> Group:
        snap = self._snapshot
        head = Table.grid(padding=(0, 1))
        head.add_row(
            "[bold]study[/]",
            ProgressBar(total=max(snap.total, 1), completed=snap.done + snap.failed, width=30),
            escape(summary_line(snap)),
        )
        lines: list[Any] = [head]
        if snap.running:
            table = Table.grid(padding=(0, 2))
            for run in snap.running:
                elapsed = duration(time.time() - run.started)
                table.add_row("  " + escape(run.label()), escape(run.how_far()), elapsed)
            lines.append(table)
        if snap.first_error:
            lines.append(f"[red]{snap.failed} failed[/], first: {escape(snap.first_error)}")
        return Group(*lines)


class LogLines(_Watcher):
    """Plain timestamped lines (stdout is a file: nohup, sbatch): each run's start and end, and
    the study's state every `every` seconds."""

    def __init__(self, console: Console, study_dir: Path, every: float = 60.0):
        super().__init__(console, study_dir)
        self.every = every
        self._last_summary = 0.0

    def say(self, text: str) -> None:
        stamp = datetime.now().astimezone().isoformat(timespec="seconds")
        self.console.print(f"{stamp} {text}", markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        self._last_summary = 0.0
        self.show([], [], self.watch.snapshot())

    def show(self, started: list[RunningRun], ended: list[Finished], snapshot: StudySnapshot) -> None:
        for run in started:
            self.say(f"start {run.id}: {run.label()}")
        for finished in ended:
            run = self.watch.runs[finished.run_id]
            what = (
                f"{run.get('arm') or '-'} {run.get('task') or run.get('setting') or '-'} size {run.get('size') or '-'}"
            )
            error = f": {finished.error}" if finished.error else ""
            self.say(f"{finished.state} {finished.run_id}: {what} in {finished.wall_seconds:.1f}s{error}")
        now = time.time()
        if now - self._last_summary >= self.every:
            self._last_summary = now
            running = "; ".join(f"{run.label()} {run.how_far()}" for run in snapshot.running)
            self.say(f"study {summary_line(snapshot)}" + (f"; running: {running}" if running else ""))


def study_progress(console: Console, study_dir: Path, log_every: float = 60.0) -> _Watcher:
    """The live view when the console is a terminal, else timestamped lines every `log_every` s."""
    if console.is_terminal:
        return LiveView(console, study_dir)
    return LogLines(console, Path(study_dir), every=log_every)
