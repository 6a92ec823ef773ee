"""What is done, pending and failed in a study directory.

A run directory's `status.json` is written last: `state: done` means every other
file of the run is complete; `state: failed` holds the error; no status means the
run is pending (never started, or interrupted). `plan.json`, written when a
`study run` starts, lists the runs of the study as last configured, so runs left
over from an earlier configuration are not counted.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quickstudy.errors import StudyError
from quickstudy.study.layout import PLAN_FILE, STATUS_FILE, RunState, run_dir


def run_state(study_dir: Path, run_id: str) -> tuple[RunState, str | None]:
    """(done|failed|pending, error) of one run, from its status.json."""
    path = run_dir(study_dir, run_id) / STATUS_FILE
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return RunState.PENDING, None
    except (OSError, ValueError):
        return RunState.PENDING, None  # status.json is written atomically; unreadable means foreign, not done
    state = status.get("state") if isinstance(status, dict) else None
    if state == RunState.DONE:
        return RunState.DONE, None
    if state == RunState.FAILED:
        return RunState.FAILED, str(status.get("error") or "unknown error")
    return RunState.PENDING, None


@dataclass(frozen=True)
class StudyStatus:
    counts: dict[str, int]
    by_arm: dict[str, dict[str, int]]
    failed: dict[str, str]  # run id -> error

    def to_json(self) -> dict[str, Any]:
        return {**self.counts, "by_arm": self.by_arm}


def study_status(study_dir: Path) -> StudyStatus:
    """Counts of done / pending / failed runs, overall and per arm."""
    plan_path = study_dir / PLAN_FILE
    if not plan_path.is_file():
        raise StudyError(f"{study_dir}: not a study directory (no {PLAN_FILE}; `study run` writes it)")
    try:
        runs = json.loads(plan_path.read_text(encoding="utf-8"))["runs"]
    except (ValueError, KeyError, TypeError):
        raise StudyError(f"{plan_path}: not a plan written by `study run`") from None
    counts: Counter[str] = Counter({state.value: 0 for state in RunState})
    by_arm: dict[str, Counter[str]] = defaultdict(lambda: Counter({state.value: 0 for state in RunState}))
    failed: dict[str, str] = {}
    for run in runs:
        state, error = run_state(study_dir, run["id"])
        counts[state] += 1
        by_arm[run.get("arm") or run["kind"]][state] += 1
        if error is not None:
            failed[run["id"]] = error
    return StudyStatus(
        counts={state.value: counts[state] for state in RunState},
        by_arm={arm: {state.value: c[state] for state in RunState} for arm, c in by_arm.items()},
        failed=failed,
    )
