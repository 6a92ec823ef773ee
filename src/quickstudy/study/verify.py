"""A done run is verified before it is believed.

`status.json` saying `done` only says the run once finished; its files may since have been
cut, edited or deleted. A done run is damaged when its spec.json is missing, unreadable or
not the plan's spec for its id; when its model's weights (while kept) are torn; or, for an
evaluation, when predictions.jsonl does not hold exactly the `test_instances` it counted
(one line per planned instance), when a stored score differs from the score recomputed from
prediction and references, or when metrics.json disagrees with them.

`quickstudy study verify DIR [--repair]` lists the damaged runs; repairing resets each one
and every run downstream of it to pending (status.json removed), so `study run` runs them
again. `study run` repairs by default; the report leaves damaged runs out as unverified.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from quickstudy.errors import PredictionsError, StudyError
from quickstudy.study.layout import PLAN_FILE, RUNS_DIR, SPEC_FILE, STATUS_FILE, RunSpec, read_run_spec, run_dir
from quickstudy.train.loop import MODEL_DIR

# Fields a run adds to its spec.json once done (what it counted); the rest must equal the plan's.
COUNTED_FIELDS = frozenset(
    {"train_instances", "train_pool", "train_steps", "final_loss", "test_instances", "prompt_tokens"}
)
TOLERANCE = 1e-3  # stored scores are rounded to 4 decimals


@dataclass(frozen=True)
class Damage:
    """One damaged done run: the file at fault and why."""

    run_id: str
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def run_damage(study_dir: Path, run_id: str, planned: RunSpec | None = None) -> Damage | None:
    """Why the done run `run_id` cannot be believed, or None when its files check out."""
    folder = run_dir(study_dir, run_id)
    spec_path = folder / SPEC_FILE
    if not spec_path.is_file():
        return Damage(run_id, spec_path, "missing")
    try:
        spec = read_run_spec(spec_path)
    except (StudyError, OSError, ValueError) as error:
        return Damage(run_id, spec_path, str(error).removeprefix(f"{spec_path}: "))
    if not spec.versions:  # not written by a plan (a hand-made or synthetic study): nothing to check it against
        return None
    if spec.id != run_id or (planned is not None and _planned_part(spec) != _planned_part(planned)):
        return Damage(run_id, spec_path, "does not match the plan's spec for this run")
    if spec.kind.trains:
        return _model_damage(study_dir, spec)
    return _evaluation_damage(folder, spec)


def _planned_part(spec: RunSpec) -> dict:
    return spec.model_dump(mode="json", exclude=set(COUNTED_FIELDS))


def _model_damage(study_dir: Path, spec: RunSpec) -> Damage | None:
    """A kept model whose weights are torn (a deleted model is fine: it is rebuilt when needed)."""
    from quickstudy.models.loading import weights_problem
    from quickstudy.study.execute import checkpoint_dir

    folder = checkpoint_dir(study_dir, spec.id)
    if not folder.is_dir():
        return None
    problem = weights_problem(folder)
    return Damage(spec.id, folder, problem) if problem else None


def _evaluation_damage(folder: Path, spec: RunSpec) -> Damage | None:
    from quickstudy.evaluate.metrics import RougeMetrics, score_records
    from quickstudy.evaluate.predictions import METRICS_FILE, PREDICTIONS_FILE, read_predictions

    path = folder / PREDICTIONS_FILE
    try:
        records = read_predictions(path)
    except PredictionsError as error:
        return Damage(spec.id, path, str(error).removeprefix(f"{path}: "))
    if spec.test_instances is None:
        return Damage(spec.id, folder / SPEC_FILE, "lacks test_instances (how many predictions to expect)")
    expected = sum(spec.test_instances.values())
    if len(records) != expected:
        return Damage(spec.id, path, f"{len(records)} predictions, but the run counted {expected} test instances")
    if Counter(record.task for record in records) != Counter(spec.test_instances):
        return Damage(spec.id, path, "predictions per task differ from the run's test_instances")
    if len({(record.task, record.instance_id) for record in records}) != len(records):
        return Damage(spec.id, path, "an instance is predicted more than once")
    unplanned = _unplanned_ids(spec, records)
    if unplanned:
        return Damage(spec.id, path, f"instance {unplanned!r} is not a test instance of the plan")
    metrics = RougeMetrics()
    for number, record in enumerate(records, start=1):
        recomputed = metrics.instance_scores(record.prediction, record.references)
        if record.scores is None or not all(
            math.isclose(stored, found, abs_tol=TOLERANCE) for stored, found in zip(record.scores, recomputed)
        ):
            return Damage(spec.id, path, f"line {number}: stored scores differ from the recomputed ones")
    metrics_path = folder / METRICS_FILE
    try:
        stored = json.loads(metrics_path.read_text(encoding="utf-8"))["overall"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return Damage(spec.id, metrics_path, f"unreadable ({type(error).__name__})")
    overall = score_records(records, metrics).overall.to_json()
    if not isinstance(stored, dict) or not all(
        isinstance(stored.get(key), (int, float)) and math.isclose(stored[key], value, abs_tol=TOLERANCE)
        for key, value in overall.items()
    ):
        return Damage(spec.id, metrics_path, "overall scores disagree with predictions.jsonl")
    return None


def _unplanned_ids(spec: RunSpec, records: Iterable) -> str | None:
    """The first predicted instance id that is not a planned test instance, when the task files
    are still those the run was planned with (else the ids cannot be recomputed: None)."""
    from quickstudy.data.collection import Collection
    from quickstudy.data.splits import SplitConfig, task_split
    from quickstudy.study.plan import file_fingerprint

    if not spec.collection or spec.splits is None or not Path(spec.collection).is_dir():
        return None
    collection = Collection(spec.collection)
    planned: dict[str, set[str]] = {}
    for name in spec.tasks:
        path = collection.task_path(name)
        if spec.task_files.get(name) is None or file_fingerprint(path) != spec.task_files[name]:
            return None
        planned[name] = {i.id for i in task_split(collection.task(name), SplitConfig(**spec.splits)).test}
    for record in records:
        if record.instance_id not in planned.get(record.task, ()):
            return record.instance_id
    return None


def planned_runs(study_dir: Path) -> list[RunSpec] | None:
    """The plan's runs as `study run` wrote them to plan.json (ids and dependencies), or None."""
    path = Path(study_dir) / PLAN_FILE
    if not path.is_file():
        return None
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["runs"]
        return [RunSpec.model_validate(entry) for entry in entries]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StudyError(f"{path}: not a plan written by `study run` ({type(error).__name__})") from None


def damaged_runs(study_dir: Path, plan: Iterable[RunSpec] | None = None) -> list[Damage]:
    """Every done run of the study whose files do not check out. With `plan` (full specs),
    each spec.json must also equal the plan's; without it, the runs of plan.json are checked."""
    from quickstudy.study.status import run_state

    study_dir = Path(study_dir)
    full = {run.id: run for run in plan} if plan is not None else None
    if full is not None:
        runs = list(full)
    else:
        listed = planned_runs(study_dir)
        runs = [run.id for run in listed] if listed is not None else _run_folders(study_dir)
    damaged = []
    for run_id in runs:
        if run_state(study_dir, run_id)[0] == "done":
            damage = run_damage(study_dir, run_id, full.get(run_id) if full else None)
            if damage is not None:
                damaged.append(damage)
    return damaged


def _run_folders(study_dir: Path) -> list[str]:
    runs = study_dir / RUNS_DIR
    return sorted(p.name for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []


def reset_runs(study_dir: Path, damaged: Iterable[Damage], dependencies: dict[str, tuple[str, ...]]) -> list[str]:
    """Reset each damaged run and every run downstream of it to pending (its status.json
    removed, so the next `study run` runs it again); returns the ids reset."""
    dependents: dict[str, list[str]] = defaultdict(list)
    for run_id, upstream in dependencies.items():
        for parent in upstream:
            dependents[parent].append(run_id)
    reset: list[str] = []
    stack = []
    for damage in damaged:
        stack.append(damage.run_id)
        if damage.path.name == MODEL_DIR:  # a torn model must be trained again, not reused
            shutil.rmtree(damage.path.parent, ignore_errors=True)
    while stack:
        run_id = stack.pop()
        if run_id in reset:
            continue
        reset.append(run_id)
        (run_dir(study_dir, run_id) / STATUS_FILE).unlink(missing_ok=True)
        stack.extend(dependents[run_id])
    return reset


def repair_study(study_dir: Path, plan: Iterable[RunSpec]) -> list[Damage]:
    """Find the damaged done runs of `plan` and reset them and their dependents to pending."""
    runs = list(plan)
    damaged = damaged_runs(study_dir, runs)
    reset_runs(study_dir, damaged, {run.id: run.depends_on for run in runs})
    return damaged
