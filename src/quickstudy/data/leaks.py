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

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from quickstudy.data.collection import Collection
from quickstudy.data.records import Instance
from quickstudy.data.splits import SplitConfig, TaskSplit, normalised_input, task_split

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


Found = dict[tuple[str, Instance, str, str, str], list[str]]
"""(unseen task, held-out instance, part, other task, its role) -> the other task's ids that repeat it."""


def input_digest(normalised: str) -> bytes:
    """16 bytes standing for a normalised input (equal digests: equal inputs, but for odds of 2**-128)."""
    return hashlib.blake2b(normalised.encode("utf-8", "surrogatepass"), digest_size=16).digest()


@dataclass(frozen=True)
class UnseenKeys:
    """What the audit keeps of an unseen task once its parsed task is dropped: its held-out
    instances, and per instance in file order the digest of its input, its id and whether it
    is in the train pool (about 90 bytes an instance instead of its texts)."""

    name: str
    own_removed: int
    held_out: tuple[tuple[str, Instance, str], ...]  # (normalised input, instance, part)
    digests: bytes  # 16 bytes an instance
    ids: tuple[str, ...]
    in_train: bytes  # 1 for an instance of the train pool, else 0

    @classmethod
    def of(cls, split: TaskSplit) -> UnseenKeys:
        instances = split.task.instances
        train = {id(instance) for instance in split.train}
        return cls(
            name=split.task.name,
            own_removed=split.leaked_removed,
            held_out=tuple(
                (normalised_input(instance.input), instance, part)
                for part, held in (("test", split.test), ("validation", split.validation))
                for instance in held
            ),
            digests=b"".join(input_digest(normalised_input(instance.input)) for instance in instances),
            ids=tuple(instance.id for instance in instances),
            in_train=bytes(id(instance) in train for instance in instances),
        )

    def pool(self, role: str) -> Iterator[tuple[bytes, str]]:
        """(digest, id) of each instance a study may train on in this role: its train pool as an
        unseen task, every instance as a seen one."""
        for index, instance_id in enumerate(self.ids):
            if role == SEEN or self.in_train[index]:
                yield self.digests[16 * index : 16 * index + 16], instance_id


class HeldOutIndex:
    """The held-out inputs of a study's unseen tasks, against which each training pool is
    matched as it is read (one task at a time)."""

    def __init__(self, unseen: Sequence[UnseenKeys]):
        self.unseen = tuple(unseen)
        self.held_out: dict[str, list[tuple[str, Instance, str]]] = defaultdict(list)
        for keys in self.unseen:
            for text, instance, part in keys.held_out:
                self.held_out[text].append((keys.name, instance, part))
        self.by_digest = {input_digest(text): text for text in self.held_out}

    def seen_matches(self, name: str, instances: Sequence[Instance]) -> Found:
        """The held-out inputs a seen task's instances repeat."""
        return self._found(name, SEEN, ((normalised_input(instance.input), instance.id) for instance in instances))

    def key_matches(self, keys: UnseenKeys, role: str) -> Found:
        """The held-out inputs an unseen task's pool in `role` repeats, from its kept digests."""
        return self._found(keys.name, role, ((self.by_digest.get(digest), i) for digest, i in keys.pool(role)))

    def _found(self, other: str, role: str, candidates: Iterable[tuple[str | None, str]]) -> Found:
        found: Found = defaultdict(list)
        for text, candidate_id in candidates:
            for unseen_task, instance, part in self.held_out.get(text, ()) if text is not None else ():
                if unseen_task != other or role == SEEN:
                    found[(unseen_task, instance, part, other, role)].append(candidate_id)
        return found

    def audit(self, seen: Iterable[Found]) -> LeakAudit:
        """The audit: the unseen tasks' train pools, then the seen tasks' matches, in order."""
        found: Found = {}
        for matches in [*(self.key_matches(keys, UNSEEN_TRAIN) for keys in self.unseen), *seen]:
            found.update(matches)
        leaks = [
            Leak(task, instance.id, part, instance.input, other, role, tuple(ids))
            for (task, instance, part, other, role), ids in found.items()
        ]
        return LeakAudit(own_train_removed={keys.name: keys.own_removed for keys in self.unseen}, leaks=tuple(leaks))


def leak_audit(
    collection: Collection, seen: Sequence[str], unseen: Sequence[str], config: SplitConfig = SplitConfig()
) -> LeakAudit:
    """Every held-out (test, validation) instance of the unseen tasks whose normalised input
    occurs in another unseen task's train pool or in a seen task's instances (its own
    instances too, for a task both seen and unseen). Each task file is read once, one at a time."""
    kept = {name: UnseenKeys.of(task_split(collection.task(name), config)) for name in unseen}
    index = HeldOutIndex([kept[name] for name in unseen])
    return index.audit(
        index.key_matches(kept[name], SEEN)
        if name in kept
        else index.seen_matches(name, collection.task(name).instances)
        for name in seen
    )


def without_excluded(instances: Sequence[Instance], excluded: frozenset[str] | set[str]) -> list[Instance]:
    """The instances whose ids are not excluded, in their order."""
    return [instance for instance in instances if instance.id not in excluded] if excluded else list(instances)
