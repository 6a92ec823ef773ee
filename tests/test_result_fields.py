"""One definition of "what changes the result": a study's run ids and a training checkpoint's
fingerprint hash the same TrainConfig fields, so they change together, or neither does."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import torch

from quickstudy.data.collection import Collection
from quickstudy.models.loading import BaseModelCache, load_model
from quickstudy.models.spec import ModelSpec
from quickstudy.prompts.encoding import encoding_by_name
from quickstudy.study.config import load_study_config
from quickstudy.study.layout import RunKind
from quickstudy.study.plan import plan_study
from quickstudy.train import loop
from quickstudy.train.config import OBSERVATION_ONLY_FIELDS, TrainConfig
from quickstudy.train.loop import run_fingerprint, train_model
from quickstudy.train.stages import TaskSelection, training_features


def another_value(name: str, value: object) -> object:
    """A valid value of TrainConfig field `name` other than `value`."""
    annotation = TrainConfig.model_fields[name].annotation
    literals = [arg for arg in (annotation, *typing.get_args(annotation)) if typing.get_origin(arg) is typing.Literal]
    if literals:  # a Literal, or an optional one
        return next(choice for choice in typing.get_args(literals[0]) if choice != value)
    if isinstance(value, bool):
        return not value
    if value is None:
        return 3
    if isinstance(value, float):
        return value * 2 or 0.5
    return value + 1


def finetune_ids(config_path: Path, overrides: list[str]) -> set[str]:
    plan = plan_study(load_study_config(config_path, overrides))
    return {run.id for run in plan.runs if run.kind == RunKind.FINETUNE}


@pytest.mark.parametrize("name", list(TrainConfig.model_fields))
def test_run_id_and_fingerprint_change_together(name: str, smoke_config: Path) -> None:
    study = load_study_config(smoke_config)
    base = TrainConfig.model_validate({**study.training, "seed": study.seeds[0]})
    value = another_value(name, getattr(base, name))
    changed = base.model_copy(update={name: value})
    spec = ModelSpec(name_or_path="tiny-t5")
    fingerprint_changed = run_fingerprint(spec, [], base) != run_fingerprint(spec, [], changed)
    # the study sets a run's training seed from `seeds`
    override = f"seeds=[{value}]" if name == "seed" else f"training.{name}={'null' if value is None else value}"
    ids_changed = finetune_ids(smoke_config, []).isdisjoint(finetune_ids(smoke_config, [override]))
    assert ids_changed == fingerprint_changed == (name not in OBSERVATION_ONLY_FIELDS)


def test_a_killed_run_resumes_after_turning_gradient_checkpointing_on(
    synth_collection: Path, tmp_path: Path, monkeypatch
) -> None:
    torch.set_num_threads(1)
    collection = Collection(synth_collection)
    task = collection.task(collection.task_names()[0])
    config = TrainConfig(max_steps=4, batch_size=2, max_source_length=64, max_target_length=8, precision="fp32",
                         checkpoint_every_steps=2, progress_bar=False, seed=3)  # fmt: skip
    loaded = load_model(ModelSpec(name_or_path="tiny-t5", init_seed=5), cache=BaseModelCache(max_entries=0))
    encoded = training_features([TaskSelection(task, task.instances[:8])], encoding_by_name("def"), loaded, config, 3)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while saving the model")

    monkeypatch.setattr(loop, "save_model", killed)
    with pytest.raises(KeyboardInterrupt):
        train_model(loaded, encoded, config, tmp_path / "run")
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step-00000002"]
    monkeypatch.undo()

    again = load_model(ModelSpec(name_or_path="tiny-t5", init_seed=5), cache=BaseModelCache(max_entries=0))
    result = train_model(again, encoded, config.model_copy(update={"gradient_checkpointing": True}), tmp_path / "run")
    assert (result.resumed_from_step, result.steps) == (2, 4)
    assert (tmp_path / "run" / "model").is_dir()
