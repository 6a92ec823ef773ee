"""Each task file a plan reads, read and parsed once, and only what planning uses kept.

Planning checks every task file the study reads, narrows the split's lists by category,
hashes each file into run ids, sizes each unseen task's train pool and audits leakage. A
3 GB collection is too large to hold parsed and too slow to parse four times, so a file is
parsed here once and dropped, keeping its `TaskFacts`: its problems, categories and
fingerprint; for an unseen task its train pool's size and `leaks.UnseenKeys`; for a seen task
read once the held-out inputs are fixed (`hold_out`), the leaks its instances hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from quickstudy.data.collection import Collection
from quickstudy.data.leaks import SEEN, Found, HeldOutIndex, LeakAudit, UnseenKeys
from quickstudy.data.splits import SplitConfig
from quickstudy.data.validate import Problem, checked_split, checked_task_file


def content_fingerprint(data: bytes) -> str:
    """A task file's content hash, as run ids record it."""
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True)
class TaskFacts:
    """What planning keeps of one task file."""

    problems: tuple[Problem, ...]
    categories: tuple[str, ...] | None  # None: the file cannot be parsed into a task
    fingerprint: str | None  # None: the file cannot be read
    read_as_unseen: bool
    unseen: UnseenKeys | None = None  # read as an unseen task (None also when it cannot be parsed)
    train_pool: int | None = None  # read as an unseen task: its train instances
    seen_matches: Found | None = None  # read as a seen task after hold_out, when seen tasks are audited


class TaskSurvey:
    """The facts of a plan's task files, each file parsed on first use. Read the unseen tasks
    (`unseen`) first, fix the audited ones (`hold_out`), then the seen ones (`seen`)."""

    def __init__(self, collection: Collection, split: SplitConfig):
        self.collection = collection
        self.split = split
        self.index: HeldOutIndex | None = None
        self.audit_seen = False
        self._facts: dict[str, TaskFacts] = {}

    def unseen(self, name: str) -> TaskFacts:
        facts = self._facts.get(name)
        if facts is None or not facts.read_as_unseen:
            facts = self._facts[name] = self._read(name, as_unseen=True)
        return facts

    def seen(self, name: str) -> TaskFacts:
        facts = self._facts.get(name)
        if facts is None:
            facts = self._facts[name] = self._read(name, as_unseen=False)
        return facts

    def hold_out(self, unseen: Sequence[str], audit_seen: bool) -> None:
        """Fix the unseen tasks the audit holds out (read before); seen tasks read from now on
        are matched against them when `audit_seen`."""
        self.index = HeldOutIndex([keys for name in unseen if (keys := self.unseen(name).unseen) is not None])
        self.audit_seen = audit_seen

    def leak_audit(self, seen: Sequence[str]) -> LeakAudit:
        """The audit of the held-out tasks against their train pools and the `seen` tasks."""
        assert self.index is not None, "hold_out fixes the held-out inputs before the audit"
        return self.index.audit(self._seen_matches(name) for name in seen)

    def _seen_matches(self, name: str) -> Found:
        assert self.index is not None
        facts = self.seen(name)
        if facts.unseen is not None:  # a task both seen and unseen: matched from its kept digests
            return self.index.key_matches(facts.unseen, SEEN)
        assert facts.seen_matches is not None or facts.categories is None, "hold_out runs before seen tasks are read"
        return facts.seen_matches or {}

    def _read(self, name: str, as_unseen: bool) -> TaskFacts:
        problems: list[Problem] = []

        def collect(where: str, message: str) -> None:
            problems.append(Problem(where, message))

        task, data = checked_task_file(self.collection, name, collect)
        unseen = train_pool = seen_matches = None
        if task is not None and as_unseen:
            split = checked_split(task, self.split, str(self.collection.tasks_dir / f"{name}.json"), collect)
            unseen, train_pool = UnseenKeys.of(split), len(split.train)
        elif task is not None and self.index is not None and self.audit_seen:
            seen_matches = self.index.seen_matches(name, task.instances)
        return TaskFacts(
            problems=tuple(problems),
            categories=tuple(task.categories) if task is not None else None,
            fingerprint=content_fingerprint(data) if data is not None else None,
            read_as_unseen=as_unseen,
            unseen=unseen,
            train_pool=train_pool,
            seen_matches=seen_matches,
        )
