"""Per-task test / validation / train splits of an unseen task.

SuperNI puts its label-balanced evaluation instances first, so test is the
first `n_test` instances, validation the next `n_validation`, and train the
rest, minus any instance whose input (normalised) also occurs in test or
validation, so that nothing evaluated on was trained on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from quickstudy.data.collection import Collection, SplitLists
from quickstudy.data.records import Instance, Task
from quickstudy.errors import ConfigError

# SuperNI's held-out instances per unseen task: the one owner of these defaults.
DEFAULT_N_TEST = 100
DEFAULT_N_VALIDATION = 10


@dataclass(frozen=True)
class SplitConfig:
    """How many leading instances of each unseen task are held out."""

    n_test: int = DEFAULT_N_TEST
    n_validation: int = DEFAULT_N_VALIDATION

    def __post_init__(self) -> None:
        for field in ("n_test", "n_validation"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"split config: {field} must be a non-negative integer, got {value!r}")


@dataclass(frozen=True)
class TaskSplit:
    """One unseen task split three ways; `leaked_removed` counts train instances
    dropped because their input repeats a test or validation input."""

    task: Task
    category: str
    test: list[Instance]
    validation: list[Instance]
    train: list[Instance]
    leaked_removed: int


def normalised_input(text: str) -> str:
    """The input as compared for leakage: stripped, white space collapsed, lower-cased."""
    return " ".join(text.split()).lower()


def task_split(task: Task, config: SplitConfig = SplitConfig()) -> TaskSplit:
    """Split a task into test, validation and leakage-free train instances."""
    held_out_end = config.n_test + config.n_validation
    test = task.instances[: config.n_test]
    validation = task.instances[config.n_test : held_out_end]
    held_out_inputs = {normalised_input(instance.input) for instance in task.instances[:held_out_end]}
    pool = task.instances[held_out_end:]
    train = [instance for instance in pool if normalised_input(instance.input) not in held_out_inputs]
    return TaskSplit(
        task=task,
        category=task.category,
        test=test,
        validation=validation,
        train=train,
        leaked_removed=len(pool) - len(train),
    )


def unseen_task_splits(
    collection: Collection, split: SplitLists, config: SplitConfig = SplitConfig()
) -> Iterator[TaskSplit]:
    """Each unseen task of the split, loaded and split one at a time (never all in memory)."""
    for name in split.test:
        yield task_split(collection.task(name), config)
