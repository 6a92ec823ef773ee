"""Read a study directory into typed records: runs, arms and per-instance scores.

The report reads only the study directory (layout in docs/architecture.md). A run
directory without `status.json` is pending; `state: failed` is failed; only `done`
evaluate runs contribute scores. Missing optional fields degrade the report, they
never stop it; a malformed file that should be complete is a one-line error.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from quickstudy.errors import PredictionsError, StudyError

METRICS = ("rougeL", "exact_match", "rouge1")
NO_INSTRUCTION_ENCODINGS = frozenset({"input_only", "none"})
PREFINETUNED_BASE_ROLES = frozenset({"base_prefinetuned", "f_m1", "fm1"})
ZERO_SHOT_SIZE = "0"
BASELINE_NAME = re.compile(r"baseline|(^|[_-])b\d", re.IGNORECASE)


@dataclass(frozen=True)
class RunRecord:
    """One run directory: what it is (spec.json) and how it ended (status.json)."""

    run_id: str
    kind: str
    arm: str | None
    setting: str | None
    size: str | None
    seed: int | None
    task: str | None
    state: str  # done | failed | pending
    error: str | None = None
    wall_seconds: float | None = None
    gpu_hours: float | None = None
    device: str | None = None
    spec: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Arm:
    """An arm of the study and the role the report gives it.

    role: "proposed" (instructions, fine-tuned), "baseline" (no instructions) or "zero_shot".
    """

    name: str
    setting: str
    role: str
    start: str | None = None
    encoding: str | None = None

    @property
    def from_prefinetuned_base(self) -> bool:
        """True for the thesis's baseline 1: the base model pre-finetuned without instructions."""
        start = (self.start or "").lower()
        return start in PREFINETUNED_BASE_ROLES or "prefinetun" in start


@dataclass(frozen=True)
class RunScores:
    """Per-instance scores of one done evaluate run (arrays aligned by position)."""

    run: RunRecord
    tasks: tuple[str, ...]
    instance_ids: tuple[str, ...]
    scores: dict[str, np.ndarray]  # metric -> x100 per instance
    truncated: np.ndarray  # bool per instance
    categories: dict[str, str]  # task -> category, from the lines' `Categories`


@dataclass
class StudyResults:
    """Everything the report knows about a study directory."""

    study_dir: Path
    config: dict[str, Any]
    runs: list[RunRecord]
    arms: dict[tuple[str, str], Arm]  # (setting, arm name) -> Arm
    scored: list[RunScores]
    categories: dict[str, str]  # task -> category
    train_pool: dict[str, int]  # task -> train instances available
    train_instances: dict[str, dict[str, int]]  # size label -> task -> instances selected


def collect_study(study_dir: Path) -> StudyResults:
    """Read `study_dir` (study.yaml, runs/*/spec.json, status.json, predictions.jsonl)."""
    study_dir = Path(study_dir)
    runs_dir = study_dir / "runs"
    if not study_dir.is_dir():
        raise StudyError(f"{study_dir}: no such study directory")
    if not runs_dir.is_dir() and not (study_dir / "study.yaml").is_file():
        raise StudyError(f"{study_dir}: not a study directory (no study.yaml and no runs/)")
    config = _read_config(study_dir / "study.yaml")
    runs = [_read_run(d) for d in sorted(runs_dir.iterdir()) if d.is_dir()] if runs_dir.is_dir() else []
    runs = _planned_runs(study_dir / "plan.json", [run for run in runs if run is not None])
    scored = [
        _read_scores(run, runs_dir / run.run_id / "predictions.jsonl")
        for run in runs
        if run.kind == "evaluate" and run.state == "done"
    ]
    categories: dict[str, str] = {}
    for run_scores in scored:
        categories.update(run_scores.categories)
    return StudyResults(
        study_dir=study_dir,
        config=config,
        runs=runs,
        arms=_arms(runs, config),
        scored=scored,
        categories=categories,
        train_pool=_train_pool(runs),
        train_instances=_train_instances(runs),
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise StudyError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None


def _planned_runs(plan_path: Path, found: list[RunRecord]) -> list[RunRecord]:
    """With plan.json, exactly its runs: a planned run without a directory is pending and
    directories left over from an earlier configuration are ignored."""
    if not plan_path.is_file():
        return found
    plan = _read_json(plan_path)
    entries = plan.get("runs") if isinstance(plan, dict) else None
    if not isinstance(entries, list):
        raise StudyError(f"{plan_path}: expected an object with a list 'runs'")
    by_id = {run.run_id: run for run in found}
    runs = []
    for entry in entries:
        if not isinstance(entry, dict) or "id" not in entry:
            raise StudyError(f"{plan_path}: every entry of 'runs' needs an 'id'")
        runs.append(by_id.get(str(entry["id"])) or _run_record(entry, {}, str(entry["id"])))
    return runs


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise StudyError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    return loaded if isinstance(loaded, dict) else {}


def _read_run(run_dir: Path) -> RunRecord | None:
    spec_path = run_dir / "spec.json"
    if not spec_path.is_file():
        return None  # a run directory still being created
    spec = _read_json(spec_path)
    if not isinstance(spec, dict):
        raise StudyError(f"{spec_path}: expected a JSON object")
    status_path = run_dir / "status.json"
    status = _read_json(status_path) if status_path.is_file() else {}
    return _run_record(spec, status if isinstance(status, dict) else {}, run_dir.name)


def _run_record(spec: dict[str, Any], status: dict[str, Any], default_id: str) -> RunRecord:
    state = str(status.get("state", "pending"))
    setting = spec.get("setting")
    size = spec.get("size")
    if setting == "zero_shot" and size in (None, "", 0):
        size = ZERO_SHOT_SIZE
    seed = spec.get("seed")
    return RunRecord(
        run_id=str(spec.get("id", default_id)),
        kind=str(spec.get("kind", "unknown")),
        arm=spec.get("arm"),
        setting=setting,
        size=None if size is None else str(size),
        seed=int(seed) if isinstance(seed, (int, float)) else None,
        task=spec.get("task"),
        state=state if state in ("done", "failed") else "pending",
        error=_first_line(status.get("error")),
        wall_seconds=_number(status.get("wall_seconds")),
        gpu_hours=_number(status.get("gpu_hours")),
        device=status.get("device"),
        spec=spec,
    )


def _first_line(value: Any) -> str | None:
    return str(value).strip().splitlines()[0] if value else None


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _read_scores(run: RunRecord, path: Path) -> RunScores:
    if not path.is_file():
        raise PredictionsError(f"{path}: run {run.run_id} is done but has no predictions.jsonl")
    tasks: list[str] = []
    ids: list[str] = []
    values: dict[str, list[float]] = {metric: [] for metric in METRICS}
    truncated: list[bool] = []
    categories: dict[str, str] = {}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                task = str(record["Task"])
                instance_id = str(record.get("Instance", {}).get("id") or record["id"])
                scores = record["scores"]
                row = {metric: float(scores[metric]) for metric in METRICS}
            except json.JSONDecodeError as error:
                raise PredictionsError(f"{path}:{number}: not valid JSON ({error.msg})") from None
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                raise PredictionsError(f"{path}:{number}: missing or malformed field {error}") from None
            tasks.append(task)
            ids.append(instance_id)
            for metric in METRICS:
                values[metric].append(row[metric])
            truncated.append(bool(record.get("prompt_truncated", False)))
            found = record.get("Categories")
            if isinstance(found, list) and found:
                categories[task] = str(found[0])
    return RunScores(
        run=run,
        tasks=tuple(tasks),
        instance_ids=tuple(ids),
        scores={metric: np.asarray(v, dtype=np.float64) for metric, v in values.items()},
        truncated=np.asarray(truncated, dtype=bool),
        categories=categories,
    )


def declared_arms(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Arms as declared in study.yaml (a list of mappings with `name`, or a mapping by name)."""
    declared = config.get("arms") or []
    if isinstance(declared, dict):
        declared = [{"name": name, **(body or {})} for name, body in declared.items()]
    return {str(arm["name"]): arm for arm in declared if isinstance(arm, dict) and "name" in arm}


def _start_of(source: dict[str, Any]) -> str | None:
    for key in ("start", "start_model", "model_role", "start_role", "from"):
        if isinstance(source.get(key), str):
            return source[key]
    return None


def _arms(runs: list[RunRecord], config: dict[str, Any]) -> dict[tuple[str, str], Arm]:
    declared = declared_arms(config)
    arms: dict[tuple[str, str], Arm] = {}
    for run in runs:
        if run.arm is None or run.setting is None or run.kind != "evaluate":
            continue
        key = (run.setting, run.arm)
        if key in arms:
            continue
        source = {**declared.get(run.arm, {}), **run.spec}
        encoding = source.get("encoding") if isinstance(source.get("encoding"), str) else None
        arms[key] = Arm(
            name=run.arm,
            setting=run.setting,
            role=_role(run.arm, run.setting, encoding),
            start=_start_of(source),
            encoding=encoding,
        )
    return arms


def _role(name: str, setting: str, encoding: str | None) -> str:
    """Arm role: from the setting and encoding; the arm's name only when the encoding is unknown."""
    if setting == "zero_shot":
        return "zero_shot"
    if encoding is not None:
        return "baseline" if encoding in NO_INSTRUCTION_ENCODINGS else "proposed"
    return "baseline" if BASELINE_NAME.search(name) else "proposed"


def _task_counts(value: Any, task: str | None) -> dict[str, int]:
    """A spec count field: an int (for the run's own task) or a mapping task -> int."""
    if isinstance(value, dict):
        return {str(t): int(n) for t, n in value.items() if isinstance(n, (int, float))}
    if isinstance(value, (int, float)) and task:
        return {task: int(value)}
    return {}


def _train_pool(runs: list[RunRecord]) -> dict[str, int]:
    pool: dict[str, int] = {}
    for run in runs:
        if run.kind == "prefinetune":
            continue  # its counts are of seen tasks
        pool.update(_task_counts(run.spec.get("train_pool"), run.task))
    return pool


def _train_instances(runs: list[RunRecord]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for run in runs:
        if run.size is not None and run.kind != "prefinetune":
            counts[run.size].update(_task_counts(run.spec.get("train_instances"), run.task))
    return dict(counts)
