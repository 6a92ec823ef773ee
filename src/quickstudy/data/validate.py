"""Check a whole collection and report every problem, not just the first.

Uses the loader's own rules (collection.py) with a collecting callback, so
what validate accepts is exactly what the loader accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from quickstudy.data.collection import Collection, OnProblem, is_plain_task_name, task_file_bytes, task_from_bytes
from quickstudy.data.records import Task
from quickstudy.data.splits import SplitConfig, TaskSplit, task_split
from quickstudy.errors import DataError


@dataclass(frozen=True)
class Problem:
    """One problem: where (file, and field or line) and what."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class ValidationReport:
    tasks_checked: int
    splits_checked: tuple[str, ...]
    problems: list[Problem]


def validate_collection(root: str | Path, on_task: Callable[[str], None] | None = None) -> ValidationReport:
    """Check every task file (every instance) and every split file of the collection."""
    collection = Collection(root)
    problems: list[Problem] = []
    names = collection.task_names()
    problems += task_problems(collection, names, on_task=on_task)
    splits = collection.split_names()
    for split_name in splits:
        collection.split(split_name, on_problem=lambda where, message: problems.append(Problem(where, message)))
    return ValidationReport(tasks_checked=len(names), splits_checked=tuple(splits), problems=problems)


def task_problems(
    collection: Collection, names: Iterable[str], on_task: Callable[[str], None] | None = None
) -> list[Problem]:
    """Every problem of these task files."""
    problems: list[Problem] = []

    def collect(where: str, message: str) -> None:
        problems.append(Problem(where, message))

    for name in names:
        checked_task_file(collection, name, collect)
        if on_task:
            on_task(name)
    return problems


def checked_task_file(collection: Collection, name: str, on_problem: OnProblem) -> tuple[Task | None, bytes | None]:
    """One task file parsed, each problem reported: (the task, None when it is unusable; the
    file's bytes, None when they cannot be read)."""
    path = collection.tasks_dir / f"{name}.json"
    if not is_plain_task_name(name):
        on_problem(str(path), f"task name {name!r} is not a plain file name")
    problem = collection.file_problem(path)
    if problem is not None:
        on_problem(str(path), problem)
        return None, None
    data = task_file_bytes(path, on_problem)
    return (None, None) if data is None else (task_from_bytes(data, path, on_problem), data)


def checked_split(task: Task, config: SplitConfig, where: str, on_problem: OnProblem) -> TaskSplit:
    """An unseen task's split (`where`: its file); one with no test instance is a problem."""
    split = task_split(task, config)
    if not split.test:
        on_problem(where, "no instances to test on")
    return split


def raise_problems(where: str, problems: list[Problem]) -> None:
    """Raise one DataError listing every problem, one line each, after a summary line."""
    if problems:
        summary = f"{where}: {len(problems)} problem(s) (`quickstudy data validate` checks the whole collection)"
        raise DataError("\n".join([summary, *map(str, problems)]))
