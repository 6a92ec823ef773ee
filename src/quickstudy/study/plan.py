"""Expand a study config into runs, without touching a model or the network.

Every run's id is a hash of everything that determines its result: the start
model (its spec, or the id of the run that builds it), the data (task names, the
split counts, the size and seed that select the sample, and each task file's
content hash), the encoding, the hyper-parameters and the code version. So a
finished run is found again by id, and changing one setting changes the ids of
exactly the runs it affects.

Planning reads split lists and parses each task file the study uses once
(`survey.py`), to check it, narrow by category, hash it, size train pools and audit
leakage (`data/leaks.py`): with `leakage: remove` the training instances that repeat a
test or validation input of an unseen task are listed in the training runs' identity and
left out before any sample is drawn.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import quickstudy
from quickstudy.data.collection import Collection
from quickstudy.data.leaks import LeakAudit
from quickstudy.data.splits import SplitConfig
from quickstudy.data.validate import Problem, raise_problems
from quickstudy.errors import ConfigError, DataError
from quickstudy.models.spec import LoraSpec, ModelSpec
from quickstudy.study.config import Arm, PrefinetunedRole, StudyConfig, model_role
from quickstudy.study.layout import ZERO_SHOT_SIZE, RunKind, RunSpec, setting_named
from quickstudy.study.survey import TaskFacts, TaskSurvey, content_fingerprint

if TYPE_CHECKING:
    from quickstudy.train.config import TrainConfig


@dataclass(frozen=True)
class StudyPlan:
    runs: tuple[RunSpec, ...]
    seen_tasks: tuple[str, ...]
    unseen_tasks: tuple[str, ...]
    leakage: dict[str, Any] | None = None  # leakage_summary(): what the audit found and what was removed
    no_train_pool: tuple[str, ...] = ()  # unseen tasks whose held-out instances leave nothing to train on
    skipped_tasks: tuple[str, ...] = ()  # those of them left out of every arm (short_tasks: skip)
    below_smallest_size: dict[str, int] = field(default_factory=dict)  # task -> train pool < the smallest size

    def __post_init__(self) -> None:
        ids = [run.id for run in self.runs]
        repeated = sorted({run_id for run_id in ids if ids.count(run_id) > 1})
        if repeated:  # a plan is a set: one id, one run (repeated task names and seeds are refused before)
            raise ConfigError(
                f"plan: run ids repeat ({', '.join(repeated[:3])}); every run must differ from the others"
            )

    def by_id(self) -> dict[str, RunSpec]:
        return {run.id: run for run in self.runs}

    def counts(self) -> dict[str, Any]:
        return {
            "total": len(self.runs),
            "by_kind": dict(Counter(str(run.kind) for run in self.runs)),
            "by_arm": dict(Counter(arm_label(run) for run in self.runs)),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": [run.summary() for run in self.runs],
            "counts": self.counts(),
            "leakage": self.leakage,
            "no_train_pool": list(self.no_train_pool),
            "skipped_tasks": list(self.skipped_tasks),
            "below_smallest_size": self.below_smallest_size,
        }


def arm_label(run: RunSpec) -> str:
    """The arm a run counts under; a pre-finetuning run counts under the model role it builds."""
    return run.arm if run.arm is not None else str(run.role)


def plan_study(config: StudyConfig) -> StudyPlan:
    """Every run of the study, each after the runs it depends on."""
    training_settings(config.training, {}, seed=0, where="training")  # study-wide keys named as written
    used = {arm.start for arm in config.arms}
    prefinetuning = [role for role in used if isinstance(model_role(config, role), PrefinetunedRole)]
    survey, seen, unseen, no_pool = surveyed_tasks(config, audit_seen=bool(prefinetuning))
    skipped = no_pool if config.short_tasks == "skip" else ()
    unseen = [name for name in unseen if name not in set(skipped)]  # skipped: out of every arm alike
    versions = code_versions()
    runs: list[RunSpec] = []
    start_models: dict[str, dict[str, Any]] = {}
    audit = checked_leakage(config, survey, seen if prefinetuning else [], unseen)
    excluded = audit.training_exclusions() if config.leakage == "remove" else {}
    for role in config.models:
        built = model_role(config, role)
        if isinstance(built, PrefinetunedRole):
            if role in used:  # a role no arm starts from is not built
                if not seen:
                    raise ConfigError(
                        f"models.{role}.prefinetune: no seen tasks to pre-finetune on (list them in the split's "
                        "train_tasks.txt, e.g. with `quickstudy data import --seen`)"
                    )
                run = prefinetune_run(config, survey, role, built, seen, versions, excluded)
                runs.append(run)
                start_models[role] = {"run": run.id}
        else:
            start_models[role] = {"spec": spec_identity(ModelSpec.model_validate(built))}
    for arm in config.arms:
        start = start_models[arm.start]
        setting = setting_named(arm.setting)
        task_groups = setting.task_groups(unseen)
        if not setting.trains:
            for tasks in task_groups:
                runs.append(evaluate_run(config, survey, arm, start, tasks, ZERO_SHOT_SIZE, None, versions))
            continue
        for seed in config.seeds:
            for size in arm_size_labels(arm, lambda: smallest_train_pool(config, unseen, survey)):
                for tasks in task_groups:
                    finetune = finetune_run(config, survey, arm, start, tasks, size, seed, versions, excluded)
                    runs.append(finetune)
                    runs.append(evaluate_run(config, survey, arm, {"run": finetune.id}, tasks, size, seed, versions))
    leakage = leakage_summary(config, audit)
    return StudyPlan(
        runs=tuple(runs),
        seen_tasks=tuple(seen),
        unseen_tasks=tuple(unseen),
        leakage=leakage,
        no_train_pool=no_pool,
        skipped_tasks=skipped,
        below_smallest_size=below_smallest_size(config, survey, unseen, set(no_pool)),
    )


def below_smallest_size(
    config: StudyConfig, survey: TaskSurvey, unseen: list[str], no_pool: set[str]
) -> dict[str, int]:
    """Unseen tasks (with a train pool) holding fewer train instances than the smallest numeric
    size an arm asks for: they train on all they have at that size (task -> pool)."""
    numbers = [nominal for arm in config.arms for size in arm.sizes if (nominal := _whole_number(size)) is not None]
    candidates = tuple(name for name in unseen if name not in no_pool)
    if not numbers or not candidates:
        return {}
    pools = {name: survey.unseen(name).train_pool or 0 for name in candidates}
    return {name: pool for name, pool in pools.items() if pool < min(numbers)}


def _whole_number(size: str) -> int | None:
    return int(size) if size.isdigit() else None


def checked_leakage(config: StudyConfig, survey: TaskSurvey, seen: list[str], unseen: list[str]) -> LeakAudit:
    """The leakage audit of the tasks the study trains on (`seen` only when it pre-finetunes;
    `unseen` as the survey holds them out); a task both seen and unseen, or with `leakage:
    refuse` any leak, is a ConfigError."""
    both = [name for name in unseen if name in set(seen)]
    if both and config.leakage != "report":
        raise ConfigError(
            f"tasks {', '.join(both[:5])}{' ...' if len(both) > 5 else ''}: both seen and unseen, so pre-finetuning "
            "would train on their test instances (set leakage: report to run it anyway)"
        )
    audit = survey.leak_audit(seen)
    if audit.leaks and config.leakage == "refuse":
        pairs = "; ".join(f"{p.unseen_task} in {p.other_task}: {p.test + p.validation}" for p in audit.pairs()[:5])
        raise ConfigError(
            f"leakage: refuse: {len(audit.leaks)} test/validation input(s) of unseen tasks occur in training data "
            f"({pairs}); see `quickstudy data leaks`, or set leakage: remove"
        )
    return audit


def leakage_summary(config: StudyConfig, audit: LeakAudit) -> dict[str, Any]:
    """What plan.json, `study plan` and the report say about leakage."""
    removed = audit.training_exclusions() if config.leakage == "remove" else {}
    return {
        "mode": config.leakage,
        "held_out_found": len({(leak.unseen_task, leak.instance_id) for leak in audit.leaks}),
        "pairs": [vars(pair) for pair in audit.pairs()],
        "removed": {task: len(ids) for task, ids in removed.items()},
    }


def leakage_text(summary: dict[str, Any] | None) -> str:
    """A plan's leakage summary in one sentence, for `study plan` and the report."""
    if not summary:
        return "not audited (planned before the audit existed)"
    mode, found, removed = summary["mode"], summary["held_out_found"], summary["removed"]
    if not found:
        return f"no test or validation input of an unseen task occurs in the training data (leakage: {mode})"
    text = (
        f"{found} test/validation input(s) of unseen tasks occur in other tasks' training data "
        f"({len(summary['pairs'])} task pair(s))"
    )
    if removed:
        text += f"; {sum(removed.values())} training instance(s) of {len(removed)} task(s) removed before sampling"
    return text + f" (leakage: {mode})"


def excluded_identity(excluded: dict[str, frozenset[str]], tasks: list[str]) -> dict[str, Any]:
    """The identity field listing the instances a training run leaves out (absent when none,
    so runs without leaks keep their ids)."""
    chosen = {task: tuple(sorted(excluded[task])) for task in tasks if excluded.get(task)}
    return {"excluded_instances": chosen} if chosen else {}


def start_meaning(config: StudyConfig, role: str, adapter: LoraSpec | None) -> dict[str, Any]:
    """What the report needs to know about a run's start model role and whether its model is
    (or is being) trained as a LoRA adapter, written into its spec."""
    return {
        "start_role": role,
        "start_is_prefinetuned": isinstance(model_role(config, role), PrefinetunedRole),
        "lora": adapter is not None,
    }


def launch_meaning(config: StudyConfig, training: TrainConfig) -> dict[str, Any]:
    """How a training run is launched, written into its spec: its data-parallel processes and
    effective batch (only the effective batch enters the id, through `result_fields`)."""
    processes = config.executor.processes_per_run
    return {"processes": processes, "effective_batch": training.effective_batch(processes)}


def spec_identity(spec: ModelSpec) -> dict[str, Any]:
    """A start model spec as run ids hash it: without its LoRA settings (a training run's
    `adapter` says how it trains) and without `chat_template` when it is the default."""
    return spec.base().model_dump(mode="json", exclude={"chat_template"} if spec.chat_template == "auto" else None)


def role_lora(config: StudyConfig, role: str) -> LoraSpec | None:
    """The LoRA adapter runs that train from `role` use, unless they say otherwise."""
    built = model_role(config, role)
    return built.lora if isinstance(built, PrefinetunedRole) else ModelSpec.model_validate(built).lora


def arm_adapter(config: StudyConfig, arm: Arm) -> LoraSpec | None:
    """The LoRA adapter an arm's fine-tunes train: the arm's own, else its start role's (None:
    all weights, or an arm that trains nothing)."""
    if not setting_named(arm.setting).trains:
        return None
    return arm.lora or role_lora(config, arm.start)


def adapter_identity(adapter: LoraSpec | None) -> dict[str, Any]:
    """The identity field of a LoRA training run (absent for full fine-tuning, whose ids stay as they were)."""
    return {"adapter": adapter.model_dump(mode="json")} if adapter is not None else {}


def arm_task(arm: Arm, tasks: list[str]) -> str | None:
    """The one task a run of a per-task setting (STL) is about, else None."""
    return tasks[0] if setting_named(arm.setting).names_task else None


def arm_size_labels(arm: Arm, pool: Callable[[], int] | None = None) -> list[str]:
    """The arm's size labels; `sizes: [auto]` is auto_sizes of the smallest train pool, `pool()`."""
    from quickstudy.data.sampling import AUTO_SIZES, auto_sizes, parse_sizes

    if AUTO_SIZES in [size.lower() for size in arm.sizes]:
        if len(arm.sizes) > 1 or pool is None:
            raise ConfigError(f"arms.{arm.name}.sizes: '{AUTO_SIZES}' stands alone (sizes: [{AUTO_SIZES}])")
        return [size.label for size in auto_sizes(pool())]
    try:
        return [size.label for size in parse_sizes(arm.sizes)]
    except ConfigError as error:
        raise ConfigError(f"arms.{arm.name}.sizes: {error}") from None


def smallest_train_pool(config: StudyConfig, unseen: list[str], survey: TaskSurvey | None = None) -> int:
    """The smallest train pool among the unseen tasks (from the survey, else read from their
    task files), for `sizes: [auto]`."""
    survey = survey or TaskSurvey(Collection(config.collection), split_counts(config))
    pools = [survey.unseen(name).train_pool or 0 for name in unseen]
    if min(pools) < 1:
        raise ConfigError(f"sizes: [auto]: task {unseen[pools.index(min(pools))]} has no training instances")
    return min(pools)


def prefinetune_run(
    config: StudyConfig,
    survey: TaskSurvey,
    role: str,
    built: PrefinetunedRole,
    seen: list[str],
    versions: dict[str, str],
    excluded: dict[str, frozenset[str]],
) -> RunSpec:
    build = built.prefinetune
    training = training_settings(
        config.training, build.training, seed=build.seed, where=f"models.{role}.prefinetune.training"
    )
    encoding = checked_encoding(build.encoding, f"models.{role}.prefinetune.encoding")
    adapter = build.lora or role_lora(config, build.from_role)
    identity = {
        "kind": RunKind.PREFINETUNE.value,
        "model": {"spec": spec_identity(ModelSpec.model_validate(config.models[build.from_role]))},
        **adapter_identity(adapter),
        "task_files": task_fingerprints(survey, seen),
        "per_task": build.per_task,
        "seed": build.seed,
        "encoding_options": encoding.options(),
        "training": training.result_fields(config.executor.processes_per_run),
        "versions": versions,
        **excluded_identity(excluded, seen),
    }
    return planned(
        identity,
        training=training.model_dump(mode="json"),
        **launch_meaning(config, training),
        size=str(build.per_task),
        role=role,
        **start_meaning(config, build.from_role, adapter),
        instructions=encoding.has_instructions,
        encoding=encoding.name,
        tasks=tuple(seen),
        collection=config.collection,
    )


def finetune_run(
    config: StudyConfig,
    survey: TaskSurvey,
    arm: Arm,
    start: dict[str, Any],
    tasks: list[str],
    size: str,
    seed: int,
    versions: dict[str, str],
    excluded: dict[str, frozenset[str]],
) -> RunSpec:
    training = training_settings(config.training, arm.training, seed=seed, where=f"arms.{arm.name}.training")
    encoding = checked_encoding(arm.encoding, f"arms.{arm.name}.encoding")
    identity = {
        "kind": RunKind.FINETUNE.value,
        "arm": arm.name,
        "setting": arm.setting,
        "model": start,
        **adapter_identity(arm_adapter(config, arm)),
        "task_files": task_fingerprints(survey, tasks),
        "splits": config.splits.model_dump(),
        "size": size,
        "seed": seed,
        "encoding_options": encoding.options(),
        "training": training.result_fields(config.executor.processes_per_run),
        "versions": versions,
        **excluded_identity(excluded, tasks),
    }
    return planned(
        identity,
        training=training.model_dump(mode="json"),
        **launch_meaning(config, training),
        task=arm_task(arm, tasks),
        **start_meaning(config, arm.start, arm_adapter(config, arm)),
        instructions=encoding.has_instructions,
        encoding=encoding.name,
        tasks=tuple(tasks),
        depends_on=(start["run"],) if "run" in start else (),
        collection=config.collection,
    )


def evaluate_run(
    config: StudyConfig,
    survey: TaskSurvey,
    arm: Arm,
    model: dict[str, Any],
    tasks: list[str],
    size: str,
    seed: int | None,
    versions: dict[str, str],
) -> RunSpec:
    training = training_settings(config.training, arm.training, seed=seed or 0, where=f"arms.{arm.name}.training")
    generation = {**config.generation.model_dump(), **arm.generation}
    encoding = checked_encoding(arm.encoding, f"arms.{arm.name}.encoding")
    identity = {
        "kind": RunKind.EVALUATE.value,
        "arm": arm.name,
        "setting": arm.setting,
        "model": model,
        "task_files": task_fingerprints(survey, tasks),
        "splits": config.splits.model_dump(),
        "encoding_options": encoding.options(),
        "max_source_length": training.max_source_length,
        "generation": generation_settings(generation, f"arms.{arm.name}.generation"),
        "versions": versions,
    }
    return planned(
        identity,
        task=arm_task(arm, tasks),
        size=size,
        seed=seed,
        **start_meaning(config, arm.start, arm_adapter(config, arm)),
        instructions=encoding.has_instructions,
        encoding=encoding.name,
        tasks=tuple(tasks),
        training=training.model_dump(mode="json"),
        depends_on=(model["run"],) if "run" in model else (),
        collection=config.collection,
    )


def planned(identity: dict[str, Any], **meaning: Any) -> RunSpec:
    """The run's spec: its identity (hashed into the id) plus what executing and reporting it need."""
    return RunSpec.model_validate({"id": run_hash(identity), **identity, **meaning})


def run_hash(identity: dict[str, Any]) -> str:
    """`<kind prefix>-<16 hex>`: a content hash of everything that determines the run's result."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{RunKind(identity['kind']).id_prefix}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def training_settings(study: dict[str, Any], override: dict[str, Any], seed: int, where: str) -> TrainConfig:
    """The run's TrainConfig, validated, with defaults filled in."""
    from pydantic import ValidationError

    from quickstudy.config_files import validation_message
    from quickstudy.train.config import TrainConfig

    try:
        config = TrainConfig.model_validate({**study, **override, "seed": seed})
    except ValidationError as error:
        raise ConfigError(f"{where}.{validation_message(error)}") from None
    return config


def generation_settings(generation: dict[str, Any], where: str) -> dict[str, Any]:
    from pydantic import ValidationError

    from quickstudy.config_files import validation_message
    from quickstudy.study.config import GenerationConfig

    try:
        return GenerationConfig.model_validate(generation).model_dump()
    except ValidationError as error:
        raise ConfigError(f"{where}.{validation_message(error)}") from None


def checked_encoding(value: str | dict[str, Any], where: str) -> Any:
    """The Encoding a config names; its options (not its name) go into run ids."""
    from quickstudy.errors import PromptError
    from quickstudy.prompts.encoding import resolve_encoding

    try:
        return resolve_encoding(value)
    except PromptError as error:
        raise ConfigError(f"{where}: {error}") from None


def code_versions() -> dict[str, str]:
    """quickstudy's version and the major.minor of the libraries that compute results."""
    versions = {"quickstudy": quickstudy.__version__}
    for package in ("torch", "transformers"):
        try:
            versions[package] = ".".join(version(package).split("+")[0].split(".")[:2])
        except PackageNotFoundError:
            versions[package] = "absent"
    return versions


def surveyed_tasks(config: StudyConfig, audit_seen: bool) -> tuple[TaskSurvey, list[str], list[str], tuple[str, ...]]:
    """(the survey of the study's task files, seen tasks, unseen tasks, those of them whose
    held-out instances leave no train instance): the split's lists narrowed as the config says,
    each task file read once (unseen tasks first, so that seen ones are audited as they are
    read) and checked."""
    seen, unseen = split_lists(config)
    if not unseen:
        raise ConfigError("split: lists no unseen (test) tasks")
    survey = TaskSurvey(Collection(config.collection), split_counts(config))
    unseen = narrowed(unseen, config.tasks.unseen, "tasks.unseen", survey.unseen)
    no_pool = tuple(name for name in unseen if survey.unseen(name).train_pool == 0)
    skipped = set(no_pool) if config.short_tasks == "skip" else set()
    survey.hold_out([name for name in unseen if name not in skipped], audit_seen=audit_seen)
    seen = narrowed(seen, config.tasks.seen, "tasks.seen", survey.seen) if seen else []
    checked_task_files(config, survey, seen, unseen, no_pool)
    return survey, seen, unseen, no_pool


def split_counts(config: StudyConfig) -> SplitConfig:
    return SplitConfig(n_test=config.splits.n_test, n_validation=config.splits.n_validation)


def split_lists(config: StudyConfig) -> tuple[list[str], list[str]]:
    """The split's train (seen) and test (unseen) lists, read from the split files alone."""
    root = Path(config.collection)
    if not root.is_dir():
        raise ConfigError(
            f"collection: folder {root} not found (point it at a SuperNI checkout: --set collection=PATH)"
        )
    folder = Path(config.split_dir) if config.split_dir else root / "splits" / config.split
    if not folder.is_dir():
        if config.split_dir is None and not (root / "splits").is_dir():
            return [], Collection(root).task_names()  # a bare folder: every task unseen, none seen
        raise ConfigError(f"{'split_dir' if config.split_dir else 'split'}: split folder {folder} not found")
    for part in ("train", "test"):
        path = folder / f"{part}_tasks.txt"
        if not path.is_file():
            raise ConfigError(f"split: {path} not found")
    problems: list[Problem] = []  # the checks of `data validate`: names listed twice, missing, seen and unseen
    lists = Collection(root).split(
        config.split,
        on_problem=lambda *found: problems.append(Problem(*found)),
        folder=folder,
        allow_overlap=getattr(config, "leakage", None) == "report",
    )
    raise_problems(str(folder), problems)
    return list(lists.train), list(lists.test)


def checked_task_files(
    config: StudyConfig, survey: TaskSurvey, seen: list[str], unseen: list[str], no_pool: tuple[str, ...]
) -> None:
    """Every problem of the task files the study reads, one line each (the checks of `data
    validate`); unseen tasks whose held-out instances leave no train instance (`no_pool`) are
    an error when that is every unseen task and an arm trains."""
    held_out = set(unseen)
    problems = [problem for name in seen if name not in held_out for problem in survey.seen(name).problems]
    problems += [problem for name in unseen for problem in survey.unseen(name).problems]
    raise_problems(config.collection, problems)
    if unseen and len(no_pool) == len(unseen) and any(setting_named(arm.setting).trains for arm in config.arms):
        counts = split_counts(config)
        raise ConfigError(
            f"splits: n_test {counts.n_test} + n_validation {counts.n_validation} leave no train instance "
            f"in any unseen task ({', '.join(no_pool[:3])}{' ...' if len(no_pool) > 3 else ''})"
        )


def narrowed(names: list[str], selection: Any, where: str, read: Callable[[str], TaskFacts]) -> list[str]:
    """The names the selection keeps (`read`: a task's facts, for its categories)."""
    if selection.names is not None:
        unknown = [name for name in selection.names if name not in names]
        if unknown:
            raise ConfigError(f"{where}.names: {', '.join(unknown)} not in the split's list")
        chosen = set(selection.names)
        names = [name for name in names if name in chosen]
    if selection.categories is not None:
        wanted = set(selection.categories)
        names = [name for name in names if wanted.intersection(task_categories(read(name)))]
    if selection.max_tasks is not None:
        names = names[: selection.max_tasks]
    if not names:
        raise ConfigError(f"{where}: no task left after narrowing")
    return names


def task_categories(facts: TaskFacts) -> tuple[str, ...]:
    """A task's categories; when the file cannot be parsed into a task, its first problem as a
    DataError (the problems of a task that parsed are for `checked_task_files`, if it is kept)."""
    if facts.categories is None:
        raise DataError(str(facts.problems[0]))
    return facts.categories


def task_fingerprints(survey: TaskSurvey, names: list[str]) -> dict[str, str | None]:
    """Each task file's content hash, or None for a file not (yet) in the collection."""
    return {name: survey.seen(name).fingerprint for name in names}


def file_fingerprint(path: Path) -> str | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return _cached_fingerprint(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=4096)
def _cached_fingerprint(path: str, size: int, mtime_ns: int) -> str:
    return content_fingerprint(Path(path).read_bytes())
