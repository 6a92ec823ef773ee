"""Per-task test / validation / train splits and leakage removal."""

from __future__ import annotations

from pathlib import Path

import pytest

from quickstudy.data.collection import Collection
from quickstudy.data.records import Instance, Task
from quickstudy.data.splits import SplitConfig, normalised_input, task_split, unseen_task_splits
from quickstudy.errors import ConfigError


def make_task(inputs: list[str], name: str = "toy") -> Task:
    instances = [Instance(id=f"{name}-{i}", input=text, references=(f"out {i}",)) for i, text in enumerate(inputs)]
    return Task(name=name, definition="d", categories=["Toy Category"], instances=instances)


@pytest.mark.superni
def test_real_task_splits_by_position(sample_dir: Path) -> None:
    task = Collection(sample_dir).task("task1152_bard_analogical_reasoning_causation")
    assert len(task.instances) == 204
    split = task_split(task)
    assert split.category == "Word Analogy"
    assert split.test == task.instances[:100]
    assert split.validation == task.instances[100:110]
    assert split.train == task.instances[110:]
    assert split.leaked_removed == 0


@pytest.mark.superni
def test_short_task_is_all_test(sample_dir: Path) -> None:
    task = Collection(sample_dir).task("task1344_glue_entailment_classification")
    split = task_split(task)
    assert len(task.instances) == 56
    assert split.test == task.instances and split.validation == [] and split.train == []


def test_configurable_counts() -> None:
    task = make_task([f"input {i}" for i in range(30)])
    split = task_split(task, SplitConfig(n_test=7, n_validation=3))
    assert [i.id for i in split.test] == [f"toy-{i}" for i in range(7)]
    assert [i.id for i in split.validation] == [f"toy-{i}" for i in range(7, 10)]
    assert [i.id for i in split.train] == [f"toy-{i}" for i in range(10, 30)]


def test_train_inputs_repeating_held_out_inputs_are_removed_and_counted() -> None:
    inputs = ["Alpha  beta", "gamma", "delta", "train one", "  ALPHA beta\n", "Gamma", "gamma!", "train two", "delta"]
    split = task_split(make_task(inputs), SplitConfig(n_test=2, n_validation=1))
    # test: "Alpha  beta", "gamma"; validation: "delta"
    assert [i.input for i in split.train] == ["train one", "gamma!", "train two"]
    assert split.leaked_removed == 3


def test_normalised_input() -> None:
    assert normalised_input("  The\tQuick \n\n brown  ") == "the quick brown"
    assert normalised_input("a.b") != normalised_input("a b")


@pytest.mark.parametrize("bad", [{"n_test": -1}, {"n_validation": -2}, {"n_test": 1.5}, {"n_test": True}])
def test_bad_split_config(bad: dict) -> None:
    with pytest.raises(ConfigError):
        SplitConfig(**bad)


@pytest.mark.superni
def test_unseen_task_splits_follow_the_split_file(sample_dir: Path) -> None:
    collection = Collection(sample_dir)
    split = collection.split("default")
    names = [s.task.name for s in unseen_task_splits(collection, split, SplitConfig(n_test=10, n_validation=5))]
    assert names == list(split.test)
