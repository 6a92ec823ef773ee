"""The study directory's contract, as code: file names, run kinds and states, the arm
settings, and `RunSpec`, the typed spec.json that plan writes and execute, tracking and
the report read.

    <study_dir>/study.yaml                 the resolved config the study ran with
    <study_dir>/plan.json                  {runs: [RunSpec.summary(), ...], counts}
    <study_dir>/estimate.json              the cost estimated before launch (`study plan --estimate`; study.estimate)
    <study_dir>/runs/<run_id>/spec.json    RunSpec (plus, once done, what the run counted)
    <study_dir>/runs/<run_id>/status.json  {state: done|failed, error, started, finished, ...}, written last
    <study_dir>/runs/<run_id>/log.txt      start, end and any traceback
    <study_dir>/runs/<run_id>/progress.json  while running: phase, step/total, last loss (study.progress)
    <study_dir>/runs/<run_id>/launched.json  a multi-process training run: what its processes report (study.launch)
    <study_dir>/runs/<run_id>/train/       training runs: train_model's folder (model/, checkpoints/, logs;
                                           a LoRA run's model/ holds its adapter, model-merged/ its merged
                                           weights with `keep_checkpoints: merged`)
    <study_dir>/runs/<run_id>/predictions.jsonl, metrics.json   evaluate runs (evaluate.evaluate_model)
    <study_dir>/cache/tokens/              the token cache shared by the training runs

Every name, kind, state and setting lives here once; the rest of the package imports it.
The files a stage writes into its own output folder are named by that stage, since stages
never import the study: `train.loop` (MODEL_DIR, CHECKPOINTS_DIR, ...) and
`evaluate.predictions` (PREDICTIONS_FILE, METRICS_FILE).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from quickstudy.errors import ConfigError, StudyError

CONFIG_FILE = "study.yaml"
PLAN_FILE = "plan.json"
ESTIMATE_FILE = "estimate.json"
STUDIES_DIR = "studies"  # where `study run` and `study plan --estimate` put a study by default: studies/<name>
RUNS_DIR = "runs"
SPEC_FILE = "spec.json"
STATUS_FILE = "status.json"
LOG_FILE = "log.txt"
PROGRESS_FILE = "progress.json"
LAUNCHED_FILE = "launched.json"  # a multi-process training run's counts or error, from its processes to the executor
TRAIN_DIR = "train"
MERGED_MODEL_DIR = "model-merged"  # in TRAIN_DIR: a LoRA run's merged weights, with `keep_checkpoints: merged`
TOKEN_CACHE_DIR = "cache/tokens"
LOCK_FILE = ".lock"
LEASE_FILE = "lease.json"  # runs/<id>/: the process executing the run (study.lease)


class RunKind(StrEnum):
    PREFINETUNE = "prefinetune"
    FINETUNE = "finetune"
    EVALUATE = "evaluate"

    @property
    def id_prefix(self) -> str:
        return {"prefinetune": "pf", "finetune": "ft", "evaluate": "ev"}[self.value]

    @property
    def trains(self) -> bool:
        return self is not RunKind.EVALUATE


class RunState(StrEnum):
    DONE = "done"
    FAILED = "failed"
    PENDING = "pending"


def default_study_dir(study_name: str) -> Path:
    return Path(STUDIES_DIR) / study_name


def run_dir(study_dir: Path, run_id: str) -> Path:
    return Path(study_dir) / RUNS_DIR / run_id


# --- arm settings ------------------------------------------------------------------------


def one_run_per_task(tasks: Sequence[str]) -> list[list[str]]:
    """STL: a model per unseen task."""
    return [[task] for task in tasks]


def one_run_for_all(tasks: Sequence[str]) -> list[list[str]]:
    """MTL (and zero-shot): one model over every unseen task."""
    return [list(tasks)]


@dataclass(frozen=True)
class Setting:
    """An arm setting: how its runs expand and how the report labels and pairs it.

    `task_groups` splits the unseen tasks into the groups a run trains and is evaluated
    on; a setting with `names_task` writes a group's one task into `RunSpec.task`. A
    setting that does not train evaluates its start model once (size `ZERO_SHOT_SIZE`).
    The report compares a setting's cells with those of `paired_with` (same role, start,
    encoding and size) and borrows that setting's full-data baseline when it has none."""

    name: str
    label: str  # short, in tables and headings
    title: str  # a figure's title
    order: int  # reading order in the report
    trains: bool
    task_groups: Callable[[Sequence[str]], list[list[str]]]
    names_task: bool = False
    paired_with: str | None = None
    thesis_table: str | None = None  # the thesis table the report's section mirrors


ZERO_SHOT_SIZE = "0"
STL = Setting("stl", "STL", "STL: one model per task", 0, True, one_run_per_task, True, None, "5.1")
MTL = Setting("mtl", "MTL", "MTL: one model for all tasks", 1, True, one_run_for_all, False, "stl", "5.2")
ZERO_SHOT = Setting("zero_shot", "zero-shot", "Zero-shot: the start model as is", 2, False, one_run_for_all)

# The one table of settings: study configs name these, plan expands them, the report lays them out.
SETTINGS: dict[str, Setting] = {setting.name: setting for setting in (STL, MTL, ZERO_SHOT)}


def setting_named(name: str) -> Setting:
    """The setting called `name`; ConfigError listing the valid names for an unknown one."""
    try:
        return SETTINGS[name]
    except KeyError:
        raise ConfigError(f"unknown setting {name!r}; valid settings: {', '.join(SETTINGS)}") from None


def known_setting(name: str | None) -> Setting | None:
    """The setting called `name`, or None (a run of no arm, or a setting this version lacks)."""
    return SETTINGS.get(name) if name is not None else None


def trained_settings() -> list[Setting]:
    """The settings that fine-tune, in the report's reading order (each gets its curves and tables)."""
    return sorted((s for s in SETTINGS.values() if s.trains), key=lambda s: s.order)


def setting_order(name: str | None) -> int:
    """A setting's place in the report's reading order; unknown settings (and None) last."""
    return SETTINGS[name].order if name in SETTINGS else len(SETTINGS)


def settings_in_order(names: Sequence[str] | set[str]) -> list[str]:
    """`names` in the report's reading order; unknown settings last, by name."""
    return sorted(names, key=lambda name: (SETTINGS[name].order if name in SETTINGS else len(SETTINGS), name))


# --- the run spec --------------------------------------------------------------------------

# Encodings written by plans from before `instructions` was recorded, that carry none.
_LEGACY_NO_INSTRUCTION_ENCODINGS = frozenset({"input_only", "none"})
_LEGACY_PREFINETUNED_ROLES = frozenset({"base_prefinetuned", "f_m1", "fm1"})
_SUMMARY_FIELDS = ("id", "kind", "arm", "setting", "task", "size", "seed", "depends_on")


class RunSpec(BaseModel):
    """One planned run: what it is, what determines its result, and what it means.

    `model` is where the run starts: `{"spec": ModelSpec JSON}` or `{"run": upstream id}`.
    The meaning fields (`instructions`, `start_role`, `start_is_prefinetuned`, `lora`) are
    written by the plan, which knows them; the report reads them and never guesses from names.
    The last block is filled in when the run is done (what it actually used)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    kind: RunKind
    arm: str | None = None
    setting: str | None = None
    task: str | None = None
    size: str | None = None
    seed: int | None = None
    depends_on: tuple[str, ...] = ()
    # meaning
    role: str | None = None  # prefinetune runs: the model role they build
    start_role: str | None = None
    start_is_prefinetuned: bool = False
    instructions: bool | None = None
    lora: bool = False  # the run trains (or evaluates a model trained as) a LoRA adapter
    processes: int = 1  # training runs: data-parallel processes it is launched as (executor.processes_per_run)
    effective_batch: int | None = None  # training runs: examples per optimizer step, over all processes
    # what determines the result
    model: dict[str, Any] = {}
    adapter: dict[str, Any] | None = None  # training runs: the LoRA settings (LoraSpec) they train with
    tasks: tuple[str, ...] = ()
    task_files: dict[str, str | None] = {}
    collection: str | None = None
    splits: dict[str, int] | None = None
    per_task: int | None = None
    encoding: str | None = None
    encoding_options: dict[str, Any] = {}
    training: dict[str, Any] = {}
    max_source_length: int | None = None
    generation: dict[str, Any] | None = None
    versions: dict[str, str] = {}
    # training runs under `leakage: remove`: per task, the instances left out (data/leaks.py)
    excluded_instances: dict[str, tuple[str, ...]] = {}
    # counted by the run
    train_instances: dict[str, int] | int | None = None
    train_pool: dict[str, int] | int | None = None
    train_steps: int | None = None
    final_loss: float | None = None
    test_instances: dict[str, int] | None = None
    # finetune runs: per task, the train prompts' token counts before the budget
    # (prompts/lengths.PromptLengths: n, mean, max, over_budget)
    prompt_tokens: dict[str, dict[str, float]] | None = None

    @property
    def start_run(self) -> str | None:
        """The upstream run whose model this run starts from, if any."""
        return self.model.get("run")

    def summary(self) -> dict[str, Any]:
        """The run as plan.json and `study plan --json` list it."""
        return self.model_dump(mode="json", include=set(_SUMMARY_FIELDS))

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def run_spec_from_json(raw: Any, where: str) -> RunSpec:
    """A RunSpec from spec.json's content; a spec.json written before the meaning fields
    existed is read too (its meaning recovered as the report used to). StudyError naming
    `where` and the field for anything else."""
    if not isinstance(raw, dict):
        raise StudyError(f"{where}: expected a JSON object")
    if "instructions" not in raw:
        raw = _legacy_spec(raw)
    try:
        return RunSpec.model_validate(raw)
    except ValidationError as error:
        problem = error.errors()[0]
        key = ".".join(str(part) for part in problem["loc"])
        message = "unknown key" if problem["type"] == "extra_forbidden" else problem["msg"]
        raise StudyError(f"{where}: {key}: {message}") from None


def read_run_spec(path: Path) -> RunSpec:
    """The RunSpec in a spec.json file."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise StudyError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    return run_spec_from_json(raw, str(path))


def _legacy_spec(raw: dict[str, Any]) -> dict[str, Any]:
    """Meaning fields for a spec.json of an older plan, from its encoding and start role."""
    raw = dict(raw)
    start = raw.pop("start", None)
    options = raw.get("encoding_options")
    if isinstance(options, dict) and options:
        instructions = bool(
            not options.get("input_only")
            and (
                options.get("add_task_definition")
                or options.get("add_task_name")
                or options.get("num_pos_examples")
                or options.get("num_neg_examples")
            )
        )
    elif isinstance(raw.get("encoding"), str):
        instructions = raw["encoding"] not in _LEGACY_NO_INSTRUCTION_ENCODINGS
    else:
        instructions = None
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    from_prefinetune = str(model.get("run", "")).startswith(RunKind.PREFINETUNE.id_prefix + "-")
    name = str(start or "").lower()
    by_name = name in _LEGACY_PREFINETUNED_ROLES or "prefinetun" in name
    return {
        **raw,
        "start_role": raw.get("start_role", start),
        "instructions": instructions,
        "start_is_prefinetuned": raw.get("kind") != RunKind.PREFINETUNE and (from_prefinetune or by_name),
    }
