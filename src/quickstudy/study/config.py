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
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from quickstudy.errors import ConfigError
from quickstudy.models.spec import LoraSpec
from quickstudy.study.layout import SETTINGS
from quickstudy.train.config import NoBoolsAsNumbers

# Where the three conventional model roles come from (the thesis's f_inst, f_M, f_M1).
ROLE_INSTRUCTION_TUNED = "instruction_tuned"
ROLE_BASE = "base"
ROLE_BASE_PREFINETUNED = "base_prefinetuned"

_PATH_KEYS = ("collection", "split_dir")
_MODEL_PATH_KEYS = ("name_or_path", "tokenizer")


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

    n_test: PositiveInt = 100
    n_validation: NonNegativeInt = 10


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
    """Where runs execute and with what resources (per run)."""

    kind: Literal["local", "ray"] = "local"
    workers: PositiveInt = 1
    ray_address: str | None = None
    ray_num_cpus: PositiveInt | None = None
    num_gpus: float = Field(default=0, ge=0)
    num_cpus: float = Field(default=1, gt=0)
    max_retries: NonNegativeInt = 1


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


def load_study_config(path: str | Path, overrides: list[str] | None = None) -> StudyConfig:
    """The validated config in `path` with `--set` overrides applied."""
    path = Path(path)
    raw = read_yaml_mapping(path)
    for key in _PATH_KEYS:
        if isinstance(raw.get(key), str):
            raw[key] = str((path.parent / raw[key]).resolve())
    models = raw.get("models")
    for spec in models.values() if isinstance(models, dict) else ():  # a list is refused by validation
        for key in _MODEL_PATH_KEYS:
            # Only explicit relative paths: "org/name" is a hub id, not a folder.
            if isinstance(spec, dict) and isinstance(spec.get(key), str) and spec[key].startswith(("./", "../")):
                spec[key] = str((path.parent / spec[key]).resolve())
    for override in overrides or []:
        key, value = parse_override(override)
        if key in _PATH_KEYS and isinstance(value, str):
            value = str(Path(value).resolve())
        set_dotted(raw, key, value)
    return validated_config(raw, where=str(path))


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{line} invalid YAML ({getattr(error, 'problem', error)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a study config must be a YAML mapping")
    return raw


def validated_config(raw: dict[str, Any], where: str) -> StudyConfig:
    """A StudyConfig from a raw mapping; the first problem becomes a one-line ConfigError."""
    try:
        config = StudyConfig.model_validate(raw)
        check_model_roles(config)
        return config
    except ValidationError as error:
        raise ConfigError(f"{where}: {validation_message(error)}") from None
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def check_model_roles(config: StudyConfig) -> None:
    """Validate every role's model spec now, so a typo fails before any work starts."""
    from quickstudy.models.spec import ModelSpec

    for role in config.models:
        spec = model_role(config, role)
        if isinstance(spec, dict):
            try:
                ModelSpec.model_validate(spec)
            except ValidationError as error:
                raise ConfigError(f"models.{role}.{validation_message(error)}") from None


def validation_message(error: ValidationError) -> str:
    """`dotted.key: message` for the first problem, with a count of the rest."""
    problems = error.errors()
    first = problems[0]
    key = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    text = f"{key}: {message}" if key else message
    if len(problems) > 1:
        text += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    return text


def parse_override(text: str) -> tuple[str, Any]:
    """`dotted.key=value` as (key, value); the value is parsed as a YAML scalar or flow list."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected dotted.key=value")
    if not value.strip():  # `--set collection=` would mean the current folder
        raise ConfigError(f"--set {text!r}: no value after '='")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError:
        raise ConfigError(f"--set {text!r}: value is not valid YAML") from None


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set `raw[a][b][c] = value` for key `a.b.c`; list items by index or, for arms, by name."""
    parts = key.split(".")
    node: Any = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            index = _list_index(node, part, where)
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if not isinstance(node.get(part), (dict, list)):
                    node[part] = {}
                node = node[part]
        else:
            raise ConfigError(f"--set {key}: {'.'.join(parts[:depth])} is not a mapping or list")


def _list_index(items: list[Any], part: str, where: str) -> int:
    if part.isdigit() and int(part) < len(items):
        return int(part)
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == part:
            return index
    raise ConfigError(f"--set {where}: no list item with index or name {part!r}")


def resolved_config_yaml(config: StudyConfig) -> str:
    """The config as YAML, exactly as the study runs it (absolute paths, defaults filled in)."""
    return yaml.safe_dump(config.model_dump(mode="json", by_alias=True), sort_keys=False)
