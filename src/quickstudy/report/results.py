"""Read a study directory into typed records: runs, arms and per-instance scores.

The report reads only the study directory (layout in docs/architecture.md). A run
directory without `status.json` is pending; `state: failed` is failed; only `done`
evaluate runs contribute scores. Missing optional fields degrade the report, they
never stop it; a malformed file that should be complete is a one-line error.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from quickstudy.errors import PredictionsError, StudyError
from quickstudy.evaluate.predictions import PREDICTIONS_FILE
from quickstudy.study.estimate import RecordedEstimate, recorded_estimate
from quickstudy.study.layout import (
    CONFIG_FILE,
    PLAN_FILE,
    RUNS_DIR,
    SPEC_FILE,
    STATUS_FILE,
    ZERO_SHOT,
    ZERO_SHOT_SIZE,
    RunKind,
    RunSpec,
    RunState,
    known_setting,
    read_run_spec,
    run_spec_from_json,
)

METRICS = ("rougeL", "exact_match", "rouge1")
# The role of an arm whose setting trains nothing, named after that setting.
ZERO_SHOT_ROLE = ZERO_SHOT.name


@dataclass(frozen=True)
class RunRecord:
    """One run directory: what it is (spec.json) and how it ended (status.json)."""

    run_id: str
    kind: RunKind
    arm: str | None
    setting: str | None
    size: str | None
    seed: int | None
    task: str | None
    state: RunState
    spec: RunSpec = field(compare=False, repr=False)
    error: str | None = None
    wall_seconds: float | None = None
    gpu_hours: float | None = None
    device: str | None = None
    started: datetime | None = None

    @property
    def device_kind(self) -> str | None:
        """ "cpu" or "gpu": what the run ran on (None: not recorded)."""
        return None if self.device is None else "cpu" if self.device == "cpu" else "gpu"

    @property
    def device_hours(self) -> float:
        """Hours of the devices the run held: its GPU-hours, or on the CPU its wall time per process."""
        if self.device_kind == "gpu":
            return self.gpu_hours or 0.0
        return (self.wall_seconds or 0.0) / 3600 * self.spec.processes


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
    from_prefinetuned_base: bool = False  # the thesis's baseline 1: a start model pre-finetuned by the study
    lora: bool = False  # fine-tuned as a LoRA adapter

    @property
    def title(self) -> str:
        """The arm as figures and answers name it: its name, start model and LoRA."""
        details = [f"from {self.start}"] if self.start else []
        return (
            f"{self.name} ({', '.join(details + (['LoRA'] if self.lora else []))})"
            if details or self.lora
            else self.name
        )


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
    leakage: dict[str, Any] | None = None  # plan.json's leakage summary (study.plan.leakage_summary)
    estimate: RecordedEstimate | None = None  # the cost estimated before launch (study.estimate)


def collect_study(study_dir: Path) -> StudyResults:
    """Read `study_dir` (study.yaml, runs/*/spec.json, status.json, predictions.jsonl)."""
    study_dir = Path(study_dir)
    runs_dir = study_dir / RUNS_DIR
    if not study_dir.is_dir():
        raise StudyError(f"{study_dir}: no such study directory")
    if not runs_dir.is_dir() and not (study_dir / CONFIG_FILE).is_file():
        raise StudyError(f"{study_dir}: not a study directory (no {CONFIG_FILE} and no {RUNS_DIR}/)")
    config = _read_config(study_dir / CONFIG_FILE)
    runs = [_read_run(d) for d in sorted(runs_dir.iterdir()) if d.is_dir()] if runs_dir.is_dir() else []
    runs = _planned_runs(study_dir / PLAN_FILE, [run for run in runs if run is not None])
    runs = [_verified(study_dir, run) for run in runs]
    scored = [
        _read_scores(run, runs_dir / run.run_id / PREDICTIONS_FILE)
        for run in runs
        if run.kind == RunKind.EVALUATE and run.state == RunState.DONE
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
        leakage=_plan_leakage(study_dir / PLAN_FILE),
        estimate=recorded_estimate(study_dir),
    )


def _verified(study_dir: Path, run: RunRecord) -> RunRecord:
    """A done evaluate run whose files do not check out (study/verify.py) is not believed:
    it counts as failed, its error saying why, and its scores stay out of every cell."""
    from quickstudy.study.verify import run_damage

    if run.kind != RunKind.EVALUATE or run.state != RunState.DONE:
        return run
    damage = run_damage(study_dir, run.run_id)
    if damage is None:
        return run
    return replace(run, state=RunState.FAILED, error=f"unverified: {damage} (`quickstudy study verify --repair`)")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise StudyError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None


def _plan_leakage(plan_path: Path) -> dict[str, Any] | None:
    plan = _read_json(plan_path) if plan_path.is_file() else None
    leakage = plan.get("leakage") if isinstance(plan, dict) else None
    return leakage if isinstance(leakage, dict) else None


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
        run_id = str(entry["id"])
        runs.append(by_id.get(run_id) or _run_record(run_spec_from_json(entry, f"{plan_path}: {run_id}"), {}))
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
    spec_path = run_dir / SPEC_FILE
    if not spec_path.is_file():
        return None  # a run directory still being created
    spec = read_run_spec(spec_path)
    status_path = run_dir / STATUS_FILE
    status = _read_json(status_path) if status_path.is_file() else {}
    return _run_record(spec, status if isinstance(status, dict) else {})


def _run_record(spec: RunSpec, status: dict[str, Any]) -> RunRecord:
    state = status.get("state")
    size = spec.size
    setting = known_setting(spec.setting)
    if setting is not None and not setting.trains and size in (None, ""):
        size = ZERO_SHOT_SIZE
    return RunRecord(
        run_id=spec.id,
        kind=spec.kind,
        arm=spec.arm,
        setting=spec.setting,
        size=size,
        seed=spec.seed,
        task=spec.task,
        state=RunState(state) if state in (RunState.DONE, RunState.FAILED) else RunState.PENDING,
        error=_first_line(status.get("error")),
        wall_seconds=_number(status.get("wall_seconds")),
        gpu_hours=_number(status.get("gpu_hours")),
        device=status.get("device"),
        started=_time(status.get("started")),
        spec=spec,
    )


def _first_line(value: Any) -> str | None:
    return str(value).strip().splitlines()[0] if value else None


def _time(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


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
            except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as error:
                raise PredictionsError(f"{path}:{number}: missing or malformed field ({str(error)[:80]})") from None
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


def _arms(runs: list[RunRecord], config: dict[str, Any]) -> dict[tuple[str, str], Arm]:
    """Each arm's role, start and encoding, read from its evaluate runs' specs (those that
    record their meaning first; a plan entry alone falls back on the arm study.yaml declares)."""
    declared = declared_arms(config)
    arms: dict[tuple[str, str], Arm] = {}
    evaluated = [
        run for run in runs if run.arm is not None and run.setting is not None and run.kind == RunKind.EVALUATE
    ]
    for run in sorted(evaluated, key=lambda run: run.spec.instructions is None):
        key = (run.setting, run.arm)
        if key in arms:
            continue
        spec = run.spec if run.spec.instructions is not None else _declared_spec(run, declared.get(run.arm, {}))
        arms[key] = Arm(
            name=run.arm,
            setting=run.setting,
            role=_role(run.setting, spec.instructions),
            start=spec.start_role,
            encoding=spec.encoding,
            from_prefinetuned_base=spec.start_is_prefinetuned,
            lora=spec.lora,
        )
    return arms


def _declared_spec(run: RunRecord, declared: dict[str, Any]) -> RunSpec:
    """The meaning of a run whose spec does not record it, from the arm as study.yaml declares it."""
    encoding = declared.get("encoding")
    raw = {"id": run.run_id, "kind": run.kind.value, "start": declared.get("start")}
    if isinstance(encoding, str):
        raw["encoding"] = encoding
    elif isinstance(encoding, dict):
        raw["encoding_options"] = encoding
    return run_spec_from_json(raw, f"{CONFIG_FILE}: arms.{run.arm}")


def _role(setting_name: str, instructions: bool | None) -> str:
    """Arm role: zero-shot for a setting that trains nothing, else from whether its prompts carry instructions."""
    setting = known_setting(setting_name)
    if setting is not None and not setting.trains:
        return ZERO_SHOT_ROLE
    return "baseline" if instructions is False else "proposed"


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
        if run.kind == RunKind.PREFINETUNE:
            continue  # its counts are of seen tasks
        pool.update(_task_counts(run.spec.train_pool, run.task))
    return pool


def _train_instances(runs: list[RunRecord]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for run in runs:
        if run.size is not None and run.kind != RunKind.PREFINETUNE:
            counts[run.size].update(_task_counts(run.spec.train_instances, run.task))
    return dict(counts)
