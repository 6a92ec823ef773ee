"""Leakage audit across tasks: held-out inputs of an unseen task that occur elsewhere.

SuperNI builds several tasks from one source dataset, so a test input of one unseen
task can sit in another unseen task's train pool (MTL trains on it) or among a seen
task's instances (pre-finetuning may draw it). Inputs are compared as the split code
compares them (`splits.normalised_input`); a task's own train pool is already cleaned
by `task_split` and only counted here.

`training_exclusions()` is what a study removes from every training pool before any
sample is drawn, so the nested samples stay nested and seeded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from quickstudy.data.collection import Collection
from quickstudy.data.records import Instance
from quickstudy.data.splits import SplitConfig, normalised_input, task_split

UNSEEN_TRAIN = "unseen train pool"
SEEN = "seen task"


@dataclass(frozen=True)
class Leak:
    """One held-out instance of an unseen task whose input occurs in another pool."""

    unseen_task: str
    instance_id: str
    part: str  # test | validation
    input: str
    other_task: str
    other_role: str  # UNSEEN_TRAIN | SEEN
    other_ids: tuple[str, ...]


@dataclass(frozen=True)
class LeakPair:
    """Counts for one (unseen task, other task) pair: held-out instances found there,
    and the other task's instances that repeat them (what removal drops)."""

    unseen_task: str
    other_task: str
    other_role: str
    test: int
    validation: int
    other_instances: int


@dataclass(frozen=True)
class LeakAudit:
    own_train_removed: dict[str, int]  # per unseen task: train instances its own split already dropped
    leaks: tuple[Leak, ...]

    def pairs(self) -> list[LeakPair]:
        grouped: dict[tuple[str, str, str], list[Leak]] = defaultdict(list)
        for leak in self.leaks:
            grouped[(leak.unseen_task, leak.other_task, leak.other_role)].append(leak)
        return [
            LeakPair(
                unseen_task=unseen,
                other_task=other,
                other_role=role,
                test=sum(leak.part == "test" for leak in leaks),
                validation=sum(leak.part == "validation" for leak in leaks),
                other_instances=len({i for leak in leaks for i in leak.other_ids}),
            )
            for (unseen, other, role), leaks in sorted(grouped.items())
        ]

    def training_exclusions(self) -> dict[str, frozenset[str]]:
        """Per task, the instance ids to drop from its training pool (train pool or pre-finetuning)."""
        excluded: dict[str, set[str]] = defaultdict(set)
        for leak in self.leaks:
            excluded[leak.other_task].update(leak.other_ids)
        return {task: frozenset(ids) for task, ids in sorted(excluded.items())}

    def to_json(self) -> dict[str, Any]:
        return {
            "own_train_removed": self.own_train_removed,
            "pairs": [vars(pair) for pair in self.pairs()],
            "leaks": [{**vars(leak), "other_ids": list(leak.other_ids)} for leak in self.leaks],
            "training_exclusions": {task: sorted(ids) for task, ids in self.training_exclusions().items()},
        }


def leak_audit(
    collection: Collection, seen: Sequence[str], unseen: Sequence[str], config: SplitConfig = SplitConfig()
) -> LeakAudit:
    """Every held-out (test, validation) instance of the unseen tasks whose normalised input
    occurs in another unseen task's train pool or in a seen task's instances (its own
    instances too, for a task both seen and unseen). Tasks are read one at a time."""
    held_out: dict[str, list[tuple[str, Instance, str]]] = defaultdict(list)
    own: dict[str, int] = {}
    for name in unseen:
        split = task_split(collection.task(name), config)
        own[name] = split.leaked_removed
        for part, instances in (("test", split.test), ("validation", split.validation)):
            for instance in instances:
                held_out[normalised_input(instance.input)].append((name, instance, part))
    found: dict[tuple[str, Instance, str, str, str], list[str]] = defaultdict(list)  # -> the other task's ids
    for other, role, pool in _training_pools(collection, seen, unseen, config):
        for candidate in pool:
            for unseen_task, instance, part in held_out.get(normalised_input(candidate.input), ()):
                if unseen_task != other or role == SEEN:
                    found[(unseen_task, instance, part, other, role)].append(candidate.id)
    leaks = [
        Leak(task, instance.id, part, instance.input, other, role, tuple(ids))
        for (task, instance, part, other, role), ids in found.items()
    ]
    return LeakAudit(own_train_removed=own, leaks=tuple(leaks))


def _training_pools(
    collection: Collection, seen: Sequence[str], unseen: Sequence[str], config: SplitConfig
) -> Iterator[tuple[str, str, list[Instance]]]:
    """(task, role, instances a study may train on): unseen train pools, then seen tasks' instances."""
    for name in unseen:
        yield name, UNSEEN_TRAIN, task_split(collection.task(name), config).train
    for name in seen:
        yield name, SEEN, collection.task(name).instances


def without_excluded(instances: Sequence[Instance], excluded: frozenset[str] | set[str]) -> list[Instance]:
    """The instances whose ids are not excluded, in their order."""
    return [instance for instance in instances if instance.id not in excluded] if excluded else list(instances)
