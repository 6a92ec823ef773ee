"""The study config: one YAML file describes a whole study.

`load_study_config(path, overrides)` reads the YAML, applies `--set dotted.key=value`
overrides (values parsed as YAML scalars), then validates. Any problem is a
ConfigError naming the file and the dotted key.

Relative paths: a `collection` (or `split_dir`) written in the YAML file is
relative to the file's folder, so a config works from any working directory (so is a
model's `name_or_path` or `tokenizer` written as "./..." or "../..."); a
path given with `--set` is relative to the working directory, like any other
command-line path. Both are stored absolute in the resolved config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from quickstudy.config_files import PathKeys, load_config, validated, validation_message
from quickstudy.data.splits import DEFAULT_N_TEST, DEFAULT_N_VALIDATION
from quickstudy.errors import ConfigError
from quickstudy.models.spec import LoraSpec
from quickstudy.study.executor_kinds import EXECUTOR_KINDS
from quickstudy.study.layout import SETTINGS
from quickstudy.train.config import NoBoolsAsNumbers


class _Strict(NoBoolsAsNumbers):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TaskSelection(_Strict):
    """Narrows a split's task list; None everywhere keeps the whole list."""

    names: list[str] | None = None
    categories: list[str] | None = None
    max_tasks: PositiveInt | None = None


class TasksConfig(_Strict):
    seen: TaskSelection = TaskSelection()
    unseen: TaskSelection = TaskSelection()


class SplitCounts(_Strict):
    """Per unseen task: test = first n_test instances, validation = the next n_validation."""

    n_test: PositiveInt = DEFAULT_N_TEST
    n_validation: NonNegativeInt = DEFAULT_N_VALIDATION


class PrefinetuneBuild(_Strict):
    """How a model role is built: pre-finetune another role on `per_task` instances of every seen task."""

    from_role: str = Field(alias="from")
    encoding: str | dict[str, Any] = "input_only"
    per_task: PositiveInt = 100
    seed: int = 1
    training: dict[str, Any] = {}
    lora: LoraSpec | None = None  # pre-finetune a LoRA adapter (default: the `from` role's lora)


class PrefinetunedRole(_Strict):
    prefinetune: PrefinetuneBuild
    lora: LoraSpec | None = None  # fine-tunes from this role train a LoRA adapter


class GenerationConfig(_Strict):
    batch_size: PositiveInt = 8
    max_new_tokens: PositiveInt = 128
    num_beams: PositiveInt = 1


class Arm(_Strict):
    """One arm: a start model role, an encoding, per-task sizes and a setting."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    start: str
    encoding: str | dict[str, Any]
    setting: str  # a name in layout.SETTINGS
    sizes: list[str] = []
    training: dict[str, Any] = {}
    generation: dict[str, Any] = {}
    lora: LoraSpec | None = None  # fine-tune a LoRA adapter (default: the start role's lora)

    @field_validator("sizes", mode="before")
    @classmethod
    def _sizes_as_text(cls, value: Any) -> Any:
        if isinstance(value, (str, int)):
            value = str(value).split(",")
        if isinstance(value, list):
            return [str(size).strip() for size in value]
        return value

    @field_validator("setting")
    @classmethod
    def _known_setting(cls, value: str) -> str:
        if value not in SETTINGS:
            raise ValueError(f"unknown setting {value!r}; valid settings: {', '.join(SETTINGS)}")
        return value

    @model_validator(mode="after")
    def _sizes_match_setting(self) -> Arm:
        if not SETTINGS[self.setting].trains and self.sizes:
            raise ValueError(f"a {self.setting} arm trains nothing, so it takes no sizes")
        if SETTINGS[self.setting].trains and not self.sizes:
            raise ValueError(f"a {self.setting} arm needs at least one size (sizes: [100, all])")
        return self


class ExecutorConfig(_Strict):
    """Where runs execute and with what resources (per process of a run)."""

    kind: Literal[*EXECUTOR_KINDS] = "local"
    workers: PositiveInt = 1
    ray_address: str | None = None
    ray_num_cpus: PositiveInt | None = None
    num_gpus: float = Field(default=0, ge=0)
    num_cpus: float = Field(default=1, gt=0)
    max_retries: NonNegativeInt = 1
    # Each training run as this many data-parallel processes (torchrun; study/launch.py), each
    # with num_gpus and num_cpus; evaluation runs stay one process.
    processes_per_run: PositiveInt = 1
    # A worker keeps the start model's weights resident and resets a working copy in place per run
    # (false: a fresh copy per run, as before).
    resident: StrictBool = True
    # A fine-tune and its evaluation run back to back in one worker, the evaluation on the model in
    # memory; the model is written only with keep_checkpoints (false: written, then read back).
    fuse: StrictBool = True


class ReportOptions(_Strict):
    """How `quickstudy report` reads the study (the `report:` section)."""

    tolerance: float = Field(default=1.0, ge=0)  # ROUGE-L points within which a score "matches" (thesis reading)
    top_categories: PositiveInt | None = None  # keep the N largest categories, group the rest as "Other Categories"


class StudyConfig(_Strict):
    """A whole study; see configs/thesis.yaml for a commented example."""

    name: str = Field(default="study", pattern=r"^[A-Za-z0-9_.\-]+$")
    collection: str
    split: str = "default"
    split_dir: str | None = None
    tasks: TasksConfig = TasksConfig()
    splits: SplitCounts = SplitCounts()
    models: dict[str, dict[str, Any]]
    arms: list[Arm] = Field(min_length=1)
    seeds: list[StrictInt] = Field(default=[1], min_length=1)
    training: dict[str, Any] = {}
    generation: GenerationConfig = GenerationConfig()
    executor: ExecutorConfig = ExecutorConfig()
    # Keep fine-tuned models (LoRA runs keep their adapter); `merged` also writes a LoRA run's merged weights.
    keep_checkpoints: bool | Literal["merged"] = False
    tracking: Literal["none", "mlflow", "wandb", "tensorboard"] = "none"
    tracking_uri: str | None = None
    # A task with no train instance left after test/validation: skip drops it from every arm
    # (STL, MTL and evaluation), keep plans it anyway (its STL runs then fail).
    short_tasks: Literal["skip", "keep"] = "skip"
    # Training instances repeating a test/validation input of an unseen task (data/leaks.py):
    # remove them before sampling, only report them, or refuse to plan.
    leakage: Literal["remove", "report", "refuse"] = "remove"
    report: ReportOptions = ReportOptions()

    @field_validator("seeds")
    @classmethod
    def _seeds_unique(cls, seeds: list[int]) -> list[int]:
        repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
        if repeated:  # a plan is a set: a repeated seed would run and count the same runs twice
            raise ValueError(f"seeds must be unique; repeated: {', '.join(map(str, repeated))}")
        return seeds

    @model_validator(mode="after")
    def _roles_exist(self) -> StudyConfig:
        names = [arm.name for arm in self.arms]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"arm names must be unique; repeated: {', '.join(duplicates)}")
        for role, raw in self.models.items():
            if "prefinetune" in raw:
                try:
                    source = PrefinetunedRole.model_validate(raw).prefinetune.from_role
                except ValidationError as error:
                    raise ValueError(f"models.{role}.{validation_message(error)}") from None
                if source not in self.models or "prefinetune" in self.models[source]:
                    raise ValueError(
                        f"models.{role}.prefinetune.from: {source!r} must name a model role given by a model spec"
                    )
        for arm in self.arms:
            if arm.start not in self.models:
                raise ValueError(
                    f"arm {arm.name!r}: start {arm.start!r} is not a role in models ({', '.join(self.models)})"
                )
        return self


def model_role(config: StudyConfig, role: str) -> PrefinetunedRole | dict[str, Any]:
    """A role as a PrefinetunedRole, or the raw model-spec mapping for a model given directly."""
    raw = config.models[role]
    if "prefinetune" in raw:
        return PrefinetunedRole.model_validate(raw)
    return raw


# Paths written in a study config are relative to its folder; a model's only when written "./..." or "../...".
STUDY_PATHS = PathKeys(plain=("collection", "split_dir"), explicit=("models.*.name_or_path", "models.*.tokenizer"))


def load_study_config(path: str | Path, overrides: list[str] | None = None) -> StudyConfig:
    """The validated config in `path` with `--set` overrides applied."""
    return checked_config(load_config(path, overrides or [], StudyConfig, STUDY_PATHS), str(path))


def validated_config(raw: dict[str, Any], where: str) -> StudyConfig:
    """A StudyConfig from a raw mapping; the first problem becomes a one-line ConfigError."""
    return checked_config(validated(StudyConfig, raw, where), where)


def checked_config(config: StudyConfig, where: str) -> StudyConfig:
    """`config` once every model spec and training/generation override in it is valid."""
    try:
        check_model_roles(config)
        check_overrides(config)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    return config


def check_model_roles(config: StudyConfig) -> None:
    """Validate every role's model spec now, so a typo fails before any work starts."""
    from quickstudy.models.spec import ModelSpec

    for role in config.models:
        spec = model_role(config, role)
        if isinstance(spec, dict):
            try:
                ModelSpec.model_validate(spec)
            except ValidationError as error:
                raise ConfigError(f"models.{role}.{validation_message(error, ModelSpec)}") from None


def check_overrides(config: StudyConfig) -> None:
    """Validate the study's training settings and every role's and arm's overrides now, so
    planning only expands runs."""
    from quickstudy.train.config import TrainConfig

    checks: list[tuple[str, type[BaseModel], dict[str, Any]]] = [("training", TrainConfig, config.training)]
    for role in config.models:
        built = model_role(config, role)
        if isinstance(built, PrefinetunedRole):
            training = {**config.training, **built.prefinetune.training}
            checks.append((f"models.{role}.prefinetune.training", TrainConfig, training))
    for arm in config.arms:
        checks.append((f"arms.{arm.name}.training", TrainConfig, {**config.training, **arm.training}))
        generation = {**config.generation.model_dump(), **arm.generation}
        checks.append((f"arms.{arm.name}.generation", GenerationConfig, generation))
    for where, model, values in checks:
        try:
            model.model_validate(values)
        except ValidationError as error:
            raise ConfigError(f"{where}.{validation_message(error, model)}") from None


def resolved_config_yaml(config: StudyConfig) -> str:
    """The config as YAML, exactly as the study runs it (absolute paths, defaults filled in)."""
    return yaml.safe_dump(config.model_dump(mode="json", by_alias=True), sort_keys=False)
