"""Check a whole collection and report every problem, not just the first.

Uses the loader's own rules (collection.py) with a collecting callback, so
what validate accepts is exactly what the loader accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from quickstudy.data.collection import Collection, is_plain_task_name, task_from_file


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

    def collect(where: str, message: str) -> None:
        problems.append(Problem(where, message))

    names = collection.task_names()
    for name in names:
        path = collection.tasks_dir / f"{name}.json"
        if not is_plain_task_name(name):
            collect(str(path), f"task name {name!r} is not a plain file name")
        problem = collection.file_problem(path)
        if problem is not None:
            collect(str(path), problem)
        else:
            task_from_file(path, on_problem=collect)
        if on_task:
            on_task(name)
    splits = collection.split_names()
    for split_name in splits:
        collection.split(split_name, on_problem=collect)
    return ValidationReport(tasks_checked=len(names), splits_checked=tuple(splits), problems=problems)
