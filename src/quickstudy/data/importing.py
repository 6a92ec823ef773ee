"""Import your own tasks: rows of input/output pairs plus an instruction paragraph
become SuperNI task files and split lists of a collection.

Sources are read through the `datasets` library: `.jsonl`, `.json`, `.csv`, `.tsv` and
`.parquet` files, a folder written by `Dataset.save_to_disk` (optionally `FOLDER:SPLIT`),
and `hf:NAME[:CONFIG][:SPLIT]` for the Hugging Face hub (`datasets.load_dataset`, which
takes a local dataset folder as NAME too). A row is bad when its input is missing or not
a string, or its output is missing, empty or not a string / list of strings; bad rows are
reported by row number (1 = the first data row) and nothing is written, unless
`skip_bad` drops them. `examples: N` takes the first N good rows as the task's positive
examples (shown in instruction prompts) and removes them from the instances.

A task is added to `splits/<split>/test_tasks.txt` (unseen: split, fine-tuned on,
evaluated) or, marked `seen`, to `train_tasks.txt` (pre-finetuning). An existing task
is never overwritten without `replace`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError, field_validator

from quickstudy.data.collection import checked_task_name, is_plain_task_name, task_from_json
from quickstudy.errors import DataError, first_line
from quickstudy.files import write_json_atomic, write_text_atomic

HUB_PREFIX = "hf:"
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}
TASK_CONFIG_SUFFIXES = (".yaml", ".yml")
UNSEEN_LIST, SEEN_LIST, EXCLUDED_LIST = "test_tasks.txt", "train_tasks.txt", "excluded_tasks.txt"
_SHOWN_BAD_ROWS = 10


class TaskImport(BaseModel):
    """One task to import: its source, name, instruction and where its fields are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1)
    name: str = Field(min_length=1)
    definition: str = Field(min_length=1, description="the instruction paragraph, or @FILE to read it from")
    input_field: str = "input"
    output_field: str = "output"
    category: str | None = None
    examples: NonNegativeInt = 0
    seen: bool = False

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not is_plain_task_name(value):
            raise ValueError(f"{value!r} is not a plain file name (letters, digits, _ . -)")
        return value


@dataclass(frozen=True)
class BadRow:
    row: int  # 1 = the first data row of the source
    problem: str


@dataclass(frozen=True)
class ImportedTask:
    """A task ready to write: its SuperNI JSON, counts, and the rows left out."""

    name: str
    seen: bool
    task_json: dict[str, Any]
    n_instances: int
    n_examples: int
    bad_rows: tuple[BadRow, ...]


def default_task_name(source: str) -> str:
    """The task name a source gives when none is set: its file or dataset name, made plain."""
    stem = source.removeprefix(HUB_PREFIX).split(":")[0].rstrip("/").split("/")[-1]
    stem = stem.rsplit(".", 1)[0] if Path(stem).suffix.lower() in FILE_BUILDERS else stem
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in stem).lstrip("._-") or "task"


def task_imports_from_yaml(path: str | Path) -> list[TaskImport]:
    """The tasks a task config file lists (a YAML list of TaskImport fields); relative
    `source` and `@FILE` paths are relative to the file's folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise DataError(f"{path}: invalid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{path}: a task config must be a non-empty YAML list of tasks")
    imports = []
    for index, item in enumerate(raw):
        if isinstance(item, dict):
            item = {**item, "name": item.get("name") or default_task_name(str(item.get("source", "")))}
            item = _relative_paths(item, path.parent)
        try:
            imports.append(TaskImport.model_validate(item))
        except ValidationError as error:
            problem = error.errors()[0]
            key = ".".join(str(part) for part in problem["loc"])
            raise DataError(f"{path}: [{index}].{key}: {problem['msg'].removeprefix('Value error, ')}") from None
    return imports


def _relative_paths(item: dict[str, Any], folder: Path) -> dict[str, Any]:
    source, definition = item.get("source"), item.get("definition")
    if isinstance(source, str) and not source.startswith(HUB_PREFIX) and not Path(source).is_absolute():
        item["source"] = str(folder / source)
    if isinstance(definition, str) and definition.startswith("@") and not Path(definition[1:]).is_absolute():
        item["definition"] = "@" + str(folder / definition[1:])
    return item


def definition_text(value: str) -> str:
    """The instruction paragraph: the text itself, or the contents of FILE for `@FILE`."""
    if not value.startswith("@"):
        return value
    path = Path(value[1:])
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise DataError(f"{path}: definition file cannot be read ({error.strerror})") from None
    if not text:
        raise DataError(f"{path}: definition file is empty")
    return text


def source_rows(source: str) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The source's rows as dicts, and the label names of its class-label columns."""
    import datasets

    datasets.disable_progress_bars()
    try:
        if source.startswith(HUB_PREFIX):
            name, config, split = (source.removeprefix(HUB_PREFIX).split(":") + ["", ""])[:3]
            if not name:
                raise DataError(f"{source}: expected hf:NAME[:CONFIG][:SPLIT]")
            dataset = datasets.load_dataset(name, config or None, split=split or "train")
            return dataset.to_list(), _label_names(dataset)
        folder, split = _disk_source(source)
        if folder is not None:
            return _disk_rows(datasets.load_from_disk(str(folder)), source, split)
        path = Path(source)
        builder = FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise DataError(
                f"{source}: unknown source type (expected {', '.join(FILE_BUILDERS)}, a save_to_disk folder or hf:NAME)"
            )
        if not path.is_file():
            raise DataError(f"{source}: file not found")
        options = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        with tempfile.TemporaryDirectory(prefix="quickstudy-import-") as cache:  # no stale cache, nothing left behind
            dataset = datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache, **options)
            return dataset.to_list(), _label_names(dataset)
    except DataError:
        raise
    except Exception as error:  # the datasets library's own errors (missing dataset, offline, parse errors)
        raise DataError(f"{source}: cannot be read ({first_line(error, with_type=True)})") from None


def _disk_source(source: str) -> tuple[Path | None, str | None]:
    """(folder, split) for a save_to_disk folder given as FOLDER or FOLDER:SPLIT."""
    path = Path(source)
    if path.is_dir():
        return path, None
    folder, sep, split = source.rpartition(":")
    if sep and folder and Path(folder).is_dir():
        return Path(folder), split
    return None, None


def _disk_rows(loaded: Any, source: str, split: str | None) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        chosen = split or ("train" if "train" in loaded else splits[0] if len(splits) == 1 else None)
        if chosen not in loaded:
            raise DataError(f"{source}: choose a split as FOLDER:SPLIT (it has {', '.join(splits)})")
        loaded = loaded[chosen]
    elif split:
        raise DataError(f"{source}: the folder holds one dataset, not splits; drop ':{split}'")
    return loaded.to_list(), _label_names(loaded)


def _label_names(dataset: Any) -> dict[str, list[str]]:
    import datasets

    return {
        column: list(feature.names)
        for column, feature in dataset.features.items()
        if isinstance(feature, datasets.ClassLabel)
    }


def imported_task(spec: TaskImport, rows: Sequence[dict[str, Any]], labels: dict[str, list[str]]) -> ImportedTask:
    """The SuperNI task built from the rows; bad rows are left out and listed."""
    good: list[tuple[int, str, list[str]]] = []
    bad: list[BadRow] = []
    names = labels.get(spec.output_field)
    for number, row in enumerate(rows, start=1):
        text = row.get(spec.input_field)
        references = _references(row.get(spec.output_field), names)
        if spec.input_field not in row:
            bad.append(BadRow(number, f"field {spec.input_field!r} is missing"))
        elif not isinstance(text, str) or not text.strip():
            bad.append(BadRow(number, f"field {spec.input_field!r} is {_what(text)}, not a non-empty string"))
        elif not references:
            bad.append(BadRow(number, f"field {spec.output_field!r} is missing, empty or not a string (list)"))
        else:
            good.append((number, text, references))
    examples, instances = good[: spec.examples], good[spec.examples :]
    task_json = {
        "Source": [spec.source],
        "Categories": [spec.category] if spec.category else [],
        "Definition": [definition_text(spec.definition)],
        "Positive Examples": [{"input": text, "output": refs[0]} for _, text, refs in examples],
        "Negative Examples": [],
        "Instances": [
            {"id": f"{spec.name}-{number}", "input": text, "output": refs} for number, text, refs in instances
        ],
    }
    return ImportedTask(spec.name, spec.seen, task_json, len(instances), len(examples), tuple(bad))


def _references(value: Any, label_names: list[str] | None) -> list[str]:
    if label_names is not None and isinstance(value, int) and 0 <= value < len(label_names):
        value = label_names[value]
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return value
    return []


def _what(value: Any) -> str:
    return "empty" if value is None or value == "" else f"a {type(value).__name__}"


def checked_import(task: ImportedTask, source: str, skip_bad: bool) -> ImportedTask:
    """The task if it can be written: no bad rows (or `skip_bad`), instances left, and
    a file the collection loader accepts. Otherwise a DataError naming the rows."""
    if task.bad_rows and not skip_bad:
        shown = "; ".join(f"row {bad.row}: {bad.problem}" for bad in task.bad_rows[:_SHOWN_BAD_ROWS])
        more = len(task.bad_rows) - _SHOWN_BAD_ROWS
        more_text = f"; and {more} more" if more > 0 else ""
        raise DataError(
            f"{source}: {len(task.bad_rows)} bad row(s), nothing written ({shown}{more_text}); fix them or pass --skip-bad"
        )
    if task.n_instances == 0:
        raise DataError(f"{source}: task {task.name!r} has no instances left (examples: {task.n_examples})")
    task_from_json(task.task_json, task.name, where=f"{source} (as task {task.name})")  # the loader's own rules
    return task


def imported_tasks(specs: Sequence[TaskImport], skip_bad: bool = False) -> list[ImportedTask]:
    """Every task read and checked; nothing is written, so one bad source stops the whole import."""
    names = [spec.name for spec in specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"task name(s) {', '.join(repeated)} given more than once in one import")
    tasks = []
    for spec in specs:
        rows, labels = source_rows(spec.source)
        tasks.append(checked_import(imported_task(spec, rows, labels), spec.source, skip_bad))
    return tasks


def write_imported(
    out: str | Path, tasks: Sequence[ImportedTask], split: str = "default", replace: bool = False
) -> None:
    """Add the tasks to the collection at `out` (created if needed): task files, then split lists."""
    out = Path(out)
    tasks_dir = out / "tasks"
    if out.is_dir() and not tasks_dir.is_dir() and any(out.glob("*.json")):
        raise DataError(f"{out}: a bare folder of task files; import into a collection folder (tasks/ and splits/)")
    checked_task_name(split, f"{out}: split")
    if not replace:
        for task in tasks:
            path = tasks_dir / f"{task.name}.json"
            if path.exists():
                raise DataError(f"{path}: task {task.name!r} already exists; pass --replace to overwrite it")
    for task in tasks:
        write_json_atomic(tasks_dir / f"{task.name}.json", task.task_json)
    folder = out / "splits" / split
    seen = [task.name for task in tasks if task.seen]
    unseen = [task.name for task in tasks if not task.seen]
    update_task_list(folder / SEEN_LIST, add=seen, remove=unseen)
    update_task_list(folder / UNSEEN_LIST, add=unseen, remove=seen)
    if not (folder / EXCLUDED_LIST).exists():
        write_text_atomic(folder / EXCLUDED_LIST, "")


def update_task_list(path: Path, add: Sequence[str], remove: Sequence[str]) -> None:
    """Add and remove names in a split list, keeping its other lines (comments too) as they are."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    kept = [line for line in lines if line.strip() not in set(remove)]
    present = {line.strip() for line in kept}
    kept += [name for name in add if name not in present]
    if kept != lines or not path.exists():
        write_text_atomic(path, "".join(f"{line}\n" for line in kept))


def task_imports(sources: Sequence[str], name: str | None = None, **fields: Any) -> list[TaskImport]:
    """The tasks named on a command line: each task config file's list, and one task per
    other source with the given fields (`name` only when there is one such source)."""
    imports: list[TaskImport] = []
    plain = [source for source in sources if Path(source).suffix.lower() not in TASK_CONFIG_SUFFIXES]
    if name is not None and len(plain) != 1:
        raise DataError(f"--name names one task, but {len(plain)} sources other than task configs were given")
    for source in sources:
        if source not in plain:
            imports += task_imports_from_yaml(source)
            continue
        if not fields.get("definition"):
            raise DataError(f"{source}: --definition is required (the task's instruction paragraph, or @FILE)")
        try:
            imports.append(TaskImport(source=source, name=name or default_task_name(source), **fields))
        except ValidationError as error:
            problem = error.errors()[0]
            key = "--" + "-".join(str(part) for part in problem["loc"]).replace("_", "-")
            raise DataError(f"{source}: {key}: {problem['msg'].removeprefix('Value error, ')}") from None
    return imports
