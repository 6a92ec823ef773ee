"""Load SuperNI-format task collections.

A collection is a folder with `tasks/*.json` and, optionally,
`splits/<name>/{train,test,excluded}_tasks.txt`. A bare folder of task files
(no `tasks/` subfolder, no splits) is accepted too: every task is then usable
as both seen and unseen. Tasks are parsed lazily, one file at a time, so a
3 GB collection is never held in memory at once.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from quickstudy.data.records import Example, Instance, Task
from quickstudy.errors import DataError

_TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class SplitLists:
    """Task names of one split: seen (train), unseen (test) and excluded."""

    name: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    excluded: tuple[str, ...]


def checked_task_name(name: str, where: str) -> str:
    """The name itself, if it is a plain file name (no paths, no traversal)."""
    if not _TASK_NAME.match(name) or ".." in name:
        raise DataError(f"{where}: task name {name!r} is not a plain file name")
    return name


class Collection:
    """A task collection on disk. Use `task(name)` to load one task."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: collection folder not found")
        tasks_dir = self.root / "tasks"
        self.tasks_dir = tasks_dir if tasks_dir.is_dir() else self.root
        self._names: list[str] | None = None

    def task_names(self) -> list[str]:
        """Every task in the collection, sorted, from file names alone."""
        if self._names is None:
            self._names = sorted(p.stem for p in self.tasks_dir.glob("*.json"))
        return list(self._names)

    def task_path(self, name: str) -> Path:
        return self.tasks_dir / f"{checked_task_name(name, str(self.tasks_dir))}.json"

    def has_task(self, name: str) -> bool:
        return self.task_path(name).is_file()

    def task(self, name: str) -> Task:
        """Parse one task file; raises DataError naming the file and field."""
        path = self.task_path(name)
        if not path.is_file():
            raise DataError(f"{path}: task {name!r} not found in collection")
        return task_from_file(path)

    def tasks(self, names: list[str] | None = None) -> Iterator[Task]:
        for name in names if names is not None else self.task_names():
            yield self.task(name)

    def split_names(self) -> list[str]:
        splits = self.root / "splits"
        return sorted(p.name for p in splits.iterdir() if p.is_dir()) if splits.is_dir() else []

    def split(self, name: str = "default") -> SplitLists:
        """The split's task lists. With no split folder at all, every task is
        both seen and unseen. Every listed task must exist in the collection."""
        folder = self.root / "splits" / name
        if not folder.is_dir():
            if not (self.root / "splits").is_dir():
                every = tuple(self.task_names())
                return SplitLists(name=name, train=every, test=every, excluded=())
            raise DataError(f"{folder}: split {name!r} not found")
        lists = {}
        for part in ("train", "test", "excluded"):
            path = folder / f"{part}_tasks.txt"
            names = read_task_list(path) if path.is_file() else []
            if part != "excluded":
                for task_name in names:
                    if not self.has_task(task_name):
                        raise DataError(f"{path}: task {task_name!r} is listed but missing from {self.tasks_dir}")
            lists[part] = tuple(names)
        return SplitLists(name=name, **lists)


def read_task_list(path: Path) -> list[str]:
    """Task names in a split file, one per line; blank lines and '#' comments skipped."""
    names = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(checked_task_name(line, f"{path}:{number}"))
    return names


def task_from_file(path: Path) -> Task:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: invalid JSON ({error})") from None
    return task_from_json(raw, name=path.stem, where=str(path))


def task_from_json(raw: Any, name: str, where: str) -> Task:
    """Build a Task from a parsed task file, tolerating the collection's older layouts."""
    if not isinstance(raw, dict):
        raise DataError(f"{where}: top level must be a JSON object")
    definition = _definition(raw, where)
    instances = _instances(raw, name, where)
    return Task(
        name=name,
        definition=definition,
        positive_examples=_examples(raw, "Positive Examples", where),
        negative_examples=_examples(raw, "Negative Examples", where),
        categories=_strings(raw.get("Categories")),
        domains=_strings(raw.get("Domains")),
        input_languages=_strings(raw.get("Input_language")),
        output_languages=_strings(raw.get("Output_language")),
        instruction_languages=_strings(raw.get("Instruction_language")),
        source=_strings(raw.get("Source")),
        instances=instances,
    )


def _definition(raw: dict, where: str) -> str:
    if "Definition" not in raw:
        raise DataError(f"{where}: field 'Definition' is missing")
    value = raw["Definition"]
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, str):
        raise DataError(f"{where}: field 'Definition' must be a string or a list of strings")
    return value


def _instances(raw: dict, task_name: str, where: str) -> list[Instance]:
    if "Instances" not in raw:
        raise DataError(f"{where}: field 'Instances' is missing")
    items = raw["Instances"]
    if not isinstance(items, list):
        raise DataError(f"{where}: field 'Instances' must be a list")
    instances: list[Instance] = []
    seen_ids: set[str] = set()
    for index, item in enumerate(items):
        at = f"{where}: Instances[{index}]"
        if not isinstance(item, dict):
            raise DataError(f"{at} must be an object")
        if not isinstance(item.get("input"), str):
            raise DataError(f"{at}: field 'input' is missing or not a string")
        references = _references(item.get("output"))
        if not references:
            raise DataError(f"{at}: field 'output' has no reference")
        instance_id = item.get("id")
        instance_id = f"{task_name}-{index}" if instance_id is None else str(instance_id)
        if instance_id in seen_ids:
            raise DataError(f"{at}: duplicate instance id {instance_id!r}")
        seen_ids.add(instance_id)
        instances.append(Instance(id=instance_id, input=item["input"], references=references))
    return instances


def _references(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return ()


def _examples(raw: dict, field: str, where: str) -> list[Example]:
    items = raw.get(field) or []
    if not isinstance(items, list):
        raise DataError(f"{where}: field {field!r} must be a list")
    examples = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("input"), str):
            raise DataError(f"{where}: {field}[{index}]: field 'input' is missing or not a string")
        output = item.get("output")
        if isinstance(output, list):
            output = output[0] if output else ""
        if not isinstance(output, str):
            raise DataError(f"{where}: {field}[{index}]: field 'output' must be a string")
        explanation = item.get("explanation")
        examples.append(Example(input=item["input"], output=output, explanation=explanation if isinstance(explanation, str) else ""))
    return examples


def _strings(value: Any) -> list[str]:
    """A metadata list as strings; NaN, None and non-strings (as real files have) dropped."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []
