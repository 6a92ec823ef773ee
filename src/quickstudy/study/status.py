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

DONE, FAILED, PENDING = "done", "failed", "pending"
PLAN_NAME = "plan.json"


def runs_dir(study_dir: Path) -> Path:
    return study_dir / "runs"


def run_dir(study_dir: Path, run_id: str) -> Path:
    return study_dir / "runs" / run_id


def run_state(study_dir: Path, run_id: str) -> tuple[str, str | None]:
    """(done|failed|pending, error) of one run, from its status.json."""
    path = run_dir(study_dir, run_id) / "status.json"
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return PENDING, None
    except (OSError, ValueError):
        return PENDING, None  # status.json is written atomically; unreadable means foreign, treat as not done
    state = status.get("state") if isinstance(status, dict) else None
    if state == DONE:
        return DONE, None
    if state == FAILED:
        return FAILED, str(status.get("error") or "unknown error")
    return PENDING, None


@dataclass(frozen=True)
class StudyStatus:
    counts: dict[str, int]
    by_arm: dict[str, dict[str, int]]
    failed: dict[str, str]  # run id -> error

    def to_json(self) -> dict[str, Any]:
        return {**self.counts, "by_arm": self.by_arm}


def study_status(study_dir: Path) -> StudyStatus:
    """Counts of done / pending / failed runs, overall and per arm."""
    plan_path = study_dir / PLAN_NAME
    if not plan_path.is_file():
        raise StudyError(f"{study_dir}: not a study directory (no {PLAN_NAME}; `study run` writes it)")
    try:
        runs = json.loads(plan_path.read_text(encoding="utf-8"))["runs"]
    except (ValueError, KeyError, TypeError):
        raise StudyError(f"{plan_path}: not a plan written by `study run`") from None
    counts: Counter[str] = Counter({DONE: 0, PENDING: 0, FAILED: 0})
    by_arm: dict[str, Counter[str]] = defaultdict(lambda: Counter({DONE: 0, PENDING: 0, FAILED: 0}))
    failed: dict[str, str] = {}
    for run in runs:
        state, error = run_state(study_dir, run["id"])
        counts[state] += 1
        by_arm[run.get("arm") or run["kind"]][state] += 1
        if error is not None:
            failed[run["id"]] = error
    return StudyStatus(
        counts={key: counts[key] for key in (DONE, PENDING, FAILED)},
        by_arm={arm: {key: c[key] for key in (DONE, PENDING, FAILED)} for arm, c in by_arm.items()},
        failed=failed,
    )
