"""Load SuperNI-format task collections.

A collection is a folder with `tasks/*.json` and, optionally,
`splits/<name>/{train,test,excluded}_tasks.txt`. A bare folder of task files
(no `tasks/` subfolder, no splits) is accepted too: every task is then unseen
and none is seen (nothing to pre-finetune on; evaluating on a task a model was
pre-finetuned on would leak its test data). Tasks are parsed lazily, one file at a time, so a
3 GB collection is never held in memory at once.

Every check reports through an `on_problem(where, message)` callback. The
loader's default raises DataError on the first problem; `validate.py` passes
one that collects them all, so both share the same rules.
"""

from __future__ import annotations

import json
import math
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quickstudy.data.records import Example, Instance, Task
from quickstudy.errors import DataError

_TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

OnProblem = Callable[[str, str], None]
"""Called with (where, message) for each problem found: where names the file (and field)."""


def raise_problem(where: str, message: str) -> None:
    """The loader's policy: stop at the first problem with a one-line DataError."""
    raise DataError(f"{where}: {message}")


@dataclass(frozen=True)
class SplitLists:
    """Task names of one split: seen (train), unseen (test) and excluded."""

    name: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    excluded: tuple[str, ...]


def is_plain_task_name(name: str) -> bool:
    """True for a name usable as a file name: no folders, no traversal, no odd characters."""
    return bool(_TASK_NAME.match(name)) and ".." not in name


def checked_task_name(name: str, where: str) -> str:
    """The name itself, if it is a plain file name (no paths, no traversal)."""
    if not is_plain_task_name(name):
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
        self._inside = (self.root.resolve(), self.tasks_dir.resolve())
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

    def file_problem(self, path: Path) -> str | None:
        """Why `path` cannot be read as a file of this collection (a link pointing out of
        it, a folder, a FIFO or device), or None. Never opens the file, so a FIFO cannot hang."""
        try:
            resolved = path.resolve(strict=True)
            mode = resolved.stat().st_mode
        except FileNotFoundError:
            return "not found (a link to nothing?)" if path.is_symlink() else "not found"
        except (OSError, RuntimeError) as error:  # a link loop
            return f"cannot be resolved ({getattr(error, 'strerror', None) or error})"
        if not any(resolved.is_relative_to(inside) for inside in self._inside):
            return f"is a link to {resolved}, outside the collection"
        if not stat.S_ISREG(mode):
            return "is not a regular file"
        return None

    def task(self, name: str) -> Task:
        """Parse one task file; raises DataError naming the file and field."""
        path = self.task_path(name)
        if not path.exists() and not path.is_symlink():
            raise DataError(f"{path}: task {name!r} not found in collection")
        problem = self.file_problem(path)
        if problem is not None:
            raise DataError(f"{path}: {problem}")
        task = task_from_file(path)
        assert task is not None, "raise_problem stops before an unusable task is returned"
        return task

    def tasks(self, names: list[str] | None = None) -> Iterator[Task]:
        for name in names if names is not None else self.task_names():
            yield self.task(name)

    def split_names(self) -> list[str]:
        splits = self.root / "splits"
        return sorted(p.name for p in splits.iterdir() if p.is_dir()) if splits.is_dir() else []

    def split(
        self,
        name: str = "default",
        on_problem: OnProblem = raise_problem,
        folder: Path | None = None,
        allow_overlap: bool = False,
    ) -> SplitLists:
        """The split's task lists (from `folder`, default splits/<name>). With no split folder
        at all, every task is unseen and none seen. Every listed seen or unseen task must
        exist in the collection, none may be listed twice, and none may be both seen and
        unseen unless `allow_overlap` (a study with `leakage: report`)."""
        folder = folder if folder is not None else self.root / "splits" / name
        if not folder.is_dir():
            if not (self.root / "splits").is_dir():
                return SplitLists(name=name, train=(), test=tuple(self.task_names()), excluded=())
            raise DataError(f"{folder}: split {name!r} not found")
        lists = {}
        for part in ("train", "test", "excluded"):
            path = folder / f"{part}_tasks.txt"
            names = []
            if path.exists() or path.is_symlink():
                problem = self.file_problem(path)
                if problem is None:
                    names = read_task_list(path, on_problem)
                else:
                    on_problem(str(path), problem)
            if part != "excluded":
                for task_name in names:
                    if not self.has_task(task_name):
                        on_problem(str(path), f"task {task_name!r} is listed but missing from {self.tasks_dir}")
            lists[part] = tuple(names)
        for task_name in sorted(set(lists["train"]) & set(lists["test"]) if not allow_overlap else ()):
            on_problem(str(folder), f"task {task_name!r} is listed as both seen (train) and unseen (test)")
        return SplitLists(name=name, **lists)


def read_task_list(path: Path, on_problem: OnProblem = raise_problem) -> list[str]:
    """Task names in a split file, one per line; blank lines and '#' comments skipped.
    A name listed twice is a problem (a plan is a set: it would train and count it twice)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        on_problem(str(path), f"not UTF-8 text (byte {error.start})")
        return []
    except OSError as error:
        on_problem(str(path), f"cannot be read ({error.strerror})")
        return []
    names: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not is_plain_task_name(line):
            on_problem(f"{path}:{number}", f"task name {line!r} is not a plain file name")
        elif line in first_line:
            on_problem(f"{path}:{number}", f"task {line!r} is listed twice (first on line {first_line[line]})")
        else:
            first_line[line] = number
            names.append(line)
    return names


def task_from_file(path: Path, on_problem: OnProblem = raise_problem) -> Task | None:
    """Parse one task file. Returns None only when on_problem did not raise and
    the file could not be parsed into a task at all."""
    data = task_file_bytes(path, on_problem)
    return None if data is None else task_from_bytes(data, path, on_problem)


def task_file_bytes(path: Path, on_problem: OnProblem = raise_problem) -> bytes | None:
    """A task file's bytes; None when on_problem did not raise and it cannot be read."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the read forever
            on_problem(str(path), "is not a regular file")
            return None
        return path.read_bytes()
    except OSError as error:
        on_problem(str(path), f"cannot be read ({error.strerror})")
        return None


def task_from_bytes(data: bytes, path: Path, on_problem: OnProblem = raise_problem) -> Task | None:
    """Parse a task file's bytes (read from `path`, which names it in problems)."""
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        on_problem(str(path), f"invalid JSON ({error})")
        return None
    except (ValueError, RecursionError) as error:  # a 5000-digit number, 100,000 nested lists
        on_problem(str(path), f"invalid JSON ({type(error).__name__}: {str(error)[:80]})")
        return None
    return task_from_json(raw, name=path.stem, where=str(path), on_problem=on_problem)


def task_from_json(raw: Any, name: str, where: str, on_problem: OnProblem = raise_problem) -> Task | None:
    """Build a Task from a parsed task file, tolerating the collection's older layouts.

    With a collecting on_problem, every field is still checked after a problem;
    broken instances and examples are left out and None is returned when the
    definition or the instance list is unusable."""
    if not isinstance(raw, dict):
        on_problem(where, "top level must be a JSON object")
        return None
    definition = _definition(raw, where, on_problem)
    instances = _instances(raw, name, where, on_problem)
    positive_examples = _examples(raw, "Positive Examples", where, on_problem)
    negative_examples = _examples(raw, "Negative Examples", where, on_problem)
    if definition is None or instances is None:
        return None
    return Task(
        name=name,
        definition=definition,
        positive_examples=positive_examples,
        negative_examples=negative_examples,
        categories=_strings(raw.get("Categories")),
        domains=_strings(raw.get("Domains")),
        input_languages=_strings(raw.get("Input_language")),
        output_languages=_strings(raw.get("Output_language")),
        instruction_languages=_strings(raw.get("Instruction_language")),
        source=_strings(raw.get("Source")),
        instances=instances,
    )


def _definition(raw: dict, where: str, on_problem: OnProblem) -> str | None:
    if "Definition" not in raw:
        on_problem(where, "field 'Definition' is missing")
        return None
    value = raw["Definition"]
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, str):
        on_problem(where, "field 'Definition' must be a string or a non-empty list of strings")
        return None
    return value


def _instances(raw: dict, task_name: str, where: str, on_problem: OnProblem) -> list[Instance] | None:
    if "Instances" not in raw:
        on_problem(where, "field 'Instances' is missing")
        return None
    items = raw["Instances"]
    if not isinstance(items, list):
        on_problem(where, "field 'Instances' must be a list")
        return None
    # The hot loop of loading a 3 GB collection (8M instances): exact type checks,
    # a fast path for the usual one-reference list, positional construction, and
    # location strings built only when something is wrong.
    instances: list[Instance] = []
    seen_ids: set[str] = set()
    for index, item in enumerate(items):
        if type(item) is not dict:
            on_problem(f"{where}: Instances[{index}]", "must be an object")
            continue
        text = item.get("input")
        if type(text) is not str:
            on_problem(f"{where}: Instances[{index}]", "field 'input' is missing or not a string")
            continue
        output = item.get("output")
        if type(output) is list and len(output) == 1 and type(output[0]) is str:
            references: tuple[str, ...] = (output[0],)
        else:
            references = _references(output)
        if not references:
            on_problem(f"{where}: Instances[{index}]", "field 'output' has no reference")
            continue
        instance_id = item.get("id")
        instance_id = f"{task_name}-{index}" if instance_id is None else str(instance_id)
        if instance_id in seen_ids:
            on_problem(f"{where}: Instances[{index}]", f"duplicate instance id {instance_id!r}")
            continue
        seen_ids.add(instance_id)
        instances.append(Instance(instance_id, text, references))
    return instances


def _references(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return ()


def _examples(raw: dict, field: str, where: str, on_problem: OnProblem) -> list[Example]:
    items = raw.get(field) or []
    if not isinstance(items, list):
        on_problem(where, f"field {field!r} must be a list")
        return []
    examples = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("input"), str):
            on_problem(f"{where}: {field}[{index}]", "field 'input' is missing or not a string")
            continue
        output = item.get("output")
        if isinstance(output, list):
            output = output[0] if output else ""
        if not isinstance(output, str):
            on_problem(f"{where}: {field}[{index}]", "field 'output' must be a string")
            continue
        explanation = item.get("explanation")
        examples.append(
            Example(
                input=item["input"], output=output, explanation=explanation if isinstance(explanation, str) else None
            )
        )
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
