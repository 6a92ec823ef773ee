"""The study's two training stages, and one stage run from a small YAML file.

`prefinetune`: N instances of each seen task, with an encoding (instructions to
build an instruction-tuned model, `input_only` for the no-instruction f_M1).
`finetune`: selected downstream instances of one task (STL) or of all tasks
mixed (MTL). Both encode once (through the token cache when given a cache
folder), train with `train_model` and leave `<out_dir>/model` plus a log.
A finished output folder is not trained again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from quickstudy.config_files import PathKeys, load_config
from quickstudy.data.collection import Collection
from quickstudy.data.records import Instance, Task
from quickstudy.data.sampling import nested_samples, parse_size, prefinetune_instances, read_manifest, select_instances
from quickstudy.data.splits import DEFAULT_N_TEST, DEFAULT_N_VALIDATION, SplitConfig, task_split
from quickstudy.errors import ConfigError
from quickstudy.models.loading import LoadedModel, load_model
from quickstudy.models.spec import ModelSpec
from quickstudy.prompts.cache import cached_encoded_examples
from quickstudy.prompts.encoding import Encoding, resolve_encoding
from quickstudy.prompts.features import EncodedExample, TextExample, encode_examples, text_examples
from quickstudy.train.config import TrainConfig
from quickstudy.train.loop import TrainResult, completed_result, launched_processes, run_fingerprint, train_model


@dataclass(frozen=True)
class TaskSelection:
    """The instances of one task a stage trains on; `pool`: how many train instances
    they were drawn from (fine-tuning), None for pre-finetuning."""

    task: Task
    instances: list[Instance]
    pool: int | None = None


def prefinetune_selection(task: Task, n_per_task: int, seed: int) -> TaskSelection:
    """`n_per_task` seeded instances of a seen task (all of them when it has fewer)."""
    return TaskSelection(task, prefinetune_instances(task, n_per_task, seed))


def downstream_selection(task: Task, size: str, seed: int, split_config: SplitConfig = SplitConfig()) -> TaskSelection:
    """A task's nested sample of `size` from its leakage-free train pool."""
    split = task_split(task, split_config)
    label = parse_size(size).label
    return TaskSelection(task, nested_samples(split, [parse_size(size)], seed)[label], pool=len(split.train))


def prefinetune(
    collection: Collection,
    seen_tasks: Sequence[str],
    n_per_task: int,
    encoding: Encoding | str,
    model: ModelSpec,
    config: TrainConfig,
    out_dir: str | Path,
    seed: int = 1,
    cache_dir: str | Path | None = None,
) -> TrainResult:
    """Train `model` on `n_per_task` seeded instances of each seen task, mixed."""
    selections = [prefinetune_selection(task, n_per_task, seed) for task in collection.tasks(list(seen_tasks))]
    return train_stage(model, selections, resolve_encoding(encoding), config, out_dir, seed=seed, cache_dir=cache_dir)


def finetune(
    model: ModelSpec | str | Path,
    selections: Sequence[TaskSelection],
    encoding: Encoding | str,
    config: TrainConfig,
    out_dir: str | Path,
    seed: int = 1,
    cache_dir: str | Path | None = None,
) -> TrainResult:
    """Train a model (spec, hub id or checkpoint folder) on the selected instances:
    one selection for STL, one per task (mixed in every batch order) for MTL."""
    spec = model if isinstance(model, ModelSpec) else ModelSpec(name_or_path=str(model))
    return train_stage(spec, selections, resolve_encoding(encoding), config, out_dir, seed=seed, cache_dir=cache_dir)


def downstream_selections(
    collection: Collection,
    task_names: Sequence[str],
    size: str,
    seed: int = 1,
    split_config: SplitConfig = SplitConfig(),
    manifest: str | Path | None = None,
) -> list[TaskSelection]:
    """Each task's nested sample of `size` from its leakage-free train pool, or the
    ids a sampling manifest lists for that task and size."""
    chosen = read_manifest(manifest) if manifest is not None else None
    selections = []
    for task in collection.tasks(list(task_names)):
        if chosen is None:
            selections.append(downstream_selection(task, size, seed, split_config))
            continue
        train = task_split(task, split_config).train
        ids = chosen.ids(task.name, size)
        selections.append(
            TaskSelection(task, select_instances(train, ids, f"{manifest}: tasks.{task.name}.{size}"), len(train))
        )
    return selections


def training_texts(
    selections: Sequence[TaskSelection], encoding: Encoding, loaded: LoadedModel, config: TrainConfig, seed: int
) -> list[TextExample]:
    """The prompt/target texts a stage trains on, task by task (the batches mix them)."""
    return [
        example
        for selection in selections
        for example in text_examples(
            selection.task,
            selection.instances,
            encoding,
            loaded.tokenizer,
            config.max_source_length,
            seed,
            loaded.chat_template,
        )
    ]


def training_features(
    selections: Sequence[TaskSelection],
    encoding: Encoding,
    loaded: LoadedModel,
    config: TrainConfig,
    seed: int,
    cache_dir: str | Path | None = None,
) -> list[EncodedExample]:
    """Token ids for the selections, read from the token cache when `cache_dir` is given."""
    lengths = (config.max_source_length, config.max_target_length)
    decoder_only = not loaded.is_seq2seq
    if cache_dir is None:
        texts = training_texts(selections, encoding, loaded, config, seed)
        return encode_examples(
            texts, loaded.tokenizer, *lengths, decoder_only=decoder_only, chat_template=loaded.chat_template
        )
    return [
        example
        for s in selections
        for example in cached_encoded_examples(
            cache_dir,
            s.task,
            s.instances,
            encoding,
            loaded.tokenizer,
            *lengths,
            decoder_only,
            seed,
            loaded.chat_template,
        )  # fmt: skip
    ]


def train_stage(
    model: ModelSpec | LoadedModel,
    selections: Sequence[TaskSelection],
    encoding: Encoding,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    seed: int | None = None,
    cache_dir: str | Path | None = None,
    on_step: Callable[[int, int, float | None], None] | None = None,
    save: bool = True,
) -> TrainResult:
    """Train a model (a spec to load, or one loaded already) on the selections, mixed, and
    leave `<out_dir>/model` (not when `save` is off: the trained model is `model`'s, in memory): the one training stage of `quickstudy train` and of a study's
    pre-finetune and fine-tune runs. Selections without instances are dropped; a run that
    finished in `out_dir` is returned as is (refused when it is of another model, data or
    config); `seed` (default: config.seed) picks each instance's training reference."""
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    seed = config.seed if seed is None else seed
    encoded = training_features([s for s in selections if s.instances], encoding, loaded, config, seed, cache_dir)
    done = completed_result(out_dir)
    if done is not None:
        if done.fingerprint != run_fingerprint(loaded.spec, encoded, config, launched_processes()):
            raise ConfigError(
                f"{out_dir}: holds a finished run of a different model, data or config; use another output dir"
            )
        return done
    return train_model(loaded, encoded, config, out_dir, on_step, save)


# --- one stage from a YAML file: `quickstudy train CONFIG.yaml --set key=value` ---


class DataSection(BaseModel):
    """Which instances to train on. `finetune`: `tasks` (one task = STL, several = MTL)
    sampled at `size` from each task's train pool, or the ids in `manifest`.
    `prefinetune`: `n_per_task` instances of `tasks`, by default the split's seen tasks."""

    model_config = ConfigDict(extra="forbid")

    collection: str
    tasks: list[str] | None = None
    split: str = "default"
    size: str = "all"  # 100, "6%", "all"; a YAML int is read as its text
    n_per_task: int = Field(100, gt=0)
    manifest: str | None = None
    n_test: int = Field(DEFAULT_N_TEST, ge=0)
    n_validation: int = Field(DEFAULT_N_VALIDATION, ge=0)
    seed: int = 1

    @field_validator("size", mode="before")
    @classmethod
    def _size_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class TrainRunConfig(BaseModel):
    """A `quickstudy train` config: stage, model, data, encoding, hyper-parameters, output."""

    model_config = ConfigDict(extra="forbid")

    stage: Literal["prefinetune", "finetune"]
    model: ModelSpec
    data: DataSection
    encoding: str | dict[str, Any] = "def_pos2"
    training: TrainConfig = Field(default_factory=TrainConfig)
    output_dir: str
    cache_dir: str | None = None


# Paths written in a train config are relative to its folder; a model's only when written "./..." or "../...".
TRAIN_PATHS = PathKeys(
    plain=("data.collection", "data.manifest", "output_dir", "cache_dir"),
    explicit=("model.name_or_path", "model.tokenizer"),
)


def load_train_run_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainRunConfig:
    """The validated config in `path` with `dotted.key=value` overrides applied (the older
    key `train:` is read as `training:`, with a warning)."""
    return load_config(path, overrides, TrainRunConfig, TRAIN_PATHS, renamed={"train": "training"})


def run_train_config(run: TrainRunConfig) -> TrainResult:
    """Run the one stage a `quickstudy train` config describes."""
    collection = Collection(run.data.collection)
    encoding = resolve_encoding(run.encoding)
    if run.stage == "prefinetune":
        tasks = run.data.tasks if run.data.tasks is not None else list(collection.split(run.data.split).train)
        return prefinetune(
            collection,
            tasks,
            run.data.n_per_task,
            encoding,
            run.model,
            run.training,
            run.output_dir,
            run.data.seed,
            run.cache_dir,
        )
    if not run.data.tasks:
        raise ConfigError("data.tasks: list the task(s) to fine-tune on (one task = STL, several = MTL)")
    split_config = SplitConfig(n_test=run.data.n_test, n_validation=run.data.n_validation)
    selections = downstream_selections(
        collection, run.data.tasks, run.data.size, run.data.seed, split_config, run.data.manifest
    )
    return finetune(run.model, selections, encoding, run.training, run.output_dir, run.data.seed, run.cache_dir)
