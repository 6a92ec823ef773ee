"""Prediction files in SuperNI's reference layout.

One JSON object per line:

    {"id": ..., "Task": ..., "Categories": [...],
     "Instance": {"id": ..., "input": ..., "output": [reference, ...]},
     "prediction": ...}

which is what Tk-Instruct writes and what its `compute_metrics` reads. quickstudy
adds three optional fields: `prompt` (the exact source text), `scores`
(`{"exact_match", "rouge1", "rougeL"}`, x100) and `prompt_truncated`.

A plain layout is read too (any other tool's output), one object per line:

    {"prediction": ..., "references": [...]}   or   {"prediction": ..., "output": "..." | [...]}

with optional `task` (default: the file's name without extension), `id` (default: the line
number), `category` (a string or a list) and `input`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from quickstudy.data.collection import Collection
from quickstudy.errors import PredictionsError
from quickstudy.files import write_text_atomic

# An evaluation's two files in its output folder (evaluate_model writes them, the report reads them).
PREDICTIONS_FILE = "predictions.jsonl"
METRICS_FILE = "metrics.json"


class InstanceScores(NamedTuple):
    """One prediction's scores, x100, each the maximum over the references."""

    exact_match: float
    rouge1: float
    rougeL: float

    def to_json(self) -> dict[str, float]:
        return {"exact_match": self.exact_match, "rouge1": self.rouge1, "rougeL": self.rougeL}


@dataclass(frozen=True)
class PredictionRecord:
    """A model's output for one instance, with everything needed to score it."""

    task: str
    instance_id: str
    input: str
    references: tuple[str, ...]
    prediction: str
    categories: tuple[str, ...] = ()
    prompt: str | None = None
    scores: InstanceScores | None = None
    prompt_truncated: bool | None = None

    @property
    def category(self) -> str:
        """The task's category as SuperNI's scorer takes it: the first entry, or "unknown"."""
        return self.categories[0] if self.categories else "unknown"

    def to_json(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "id": self.instance_id,
            "Task": self.task,
            "Categories": list(self.categories),
            "Instance": {"id": self.instance_id, "input": self.input, "output": list(self.references)},
            "prediction": self.prediction,
        }
        if self.prompt is not None:
            line["prompt"] = self.prompt
        if self.scores is not None:
            line["scores"] = self.scores.to_json()
        if self.prompt_truncated is not None:
            line["prompt_truncated"] = self.prompt_truncated
        return line


def read_predictions(path: str | Path) -> list[PredictionRecord]:
    """Every record in a predictions file; PredictionsError names the line at fault."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PredictionsError(f"{path}: predictions file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PredictionsError(f"{path}: cannot read predictions ({error})") from None
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            raw, where = _parsed_line(line, f"{path}:{number}"), f"{path}:{number}"
            is_plain = "Instance" not in raw and ("references" in raw or "output" in raw)
            records.append(plain_record(raw, where, path.stem, number) if is_plain else record_from_json(raw, where))
    if not records:
        raise PredictionsError(f"{path}: no predictions in file (it is empty)")
    return records


def _parsed_line(line: str, where: str) -> dict[str, Any]:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as error:
        raise PredictionsError(f"{where}: not valid JSON ({error.msg})") from None
    except (ValueError, RecursionError) as error:  # a 5000-digit number; 100,000 nested lists
        raise PredictionsError(f"{where}: not valid JSON ({str(error).split(':')[0] or 'nested too deeply'})") from None
    if not isinstance(raw, dict):
        raise PredictionsError(f"{where}: a line must be a JSON object")
    return raw


def record_from_json(raw: dict[str, Any], where: str) -> PredictionRecord:
    """One record from a parsed line of the reference layout."""
    instance = raw.get("Instance")
    if not isinstance(instance, dict):
        raise PredictionsError(f"{where}: field 'Instance' is missing or not an object")
    task = raw.get("Task")
    if not isinstance(task, str) or not task:
        raise PredictionsError(f"{where}: field 'Task' is missing or not a string")
    # Older Tk-Instruct files spell it "Prediction".
    prediction = raw.get("prediction", raw.get("Prediction"))
    if not isinstance(prediction, str):
        raise PredictionsError(f"{where}: field 'prediction' is missing or not a string")
    references = instance.get("output")
    if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
        raise PredictionsError(f"{where}: field 'Instance.output' must be a list of strings (the references)")
    if not references:
        raise PredictionsError(f"{where}: field 'Instance.output' has no reference")
    instance_id = instance.get("id", raw.get("id"))
    if not isinstance(instance_id, (str, int)) or isinstance(instance_id, bool):
        raise PredictionsError(f"{where}: field 'Instance.id' is missing or not a string")
    source = instance.get("input", "")
    if not isinstance(source, str):
        raise PredictionsError(f"{where}: field 'Instance.input' must be a string")
    return PredictionRecord(
        task=task,
        instance_id=str(instance_id),
        input=source,
        references=tuple(references),
        prediction=prediction,
        categories=_categories(raw.get("Categories"), where),
        prompt=_optional(raw, "prompt", str, where),
        scores=_scores(raw.get("scores"), where),
        prompt_truncated=_optional(raw, "prompt_truncated", bool, where),
    )


def plain_record(raw: dict[str, Any], where: str, default_task: str, line_number: int) -> PredictionRecord:
    """One record from a line of the plain layout (`prediction` + `references` or `output`)."""
    prediction = raw.get("prediction")
    if not isinstance(prediction, str):
        raise PredictionsError(f"{where}: field 'prediction' is missing or not a string")
    field = "references" if "references" in raw else "output"
    references = raw[field]
    if isinstance(references, str) and field == "output":
        references = [references]
    if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
        kind = "a list of strings" if field == "references" else "a string or a list of strings"
        raise PredictionsError(f"{where}: field {field!r} must be {kind}")
    if not references:
        raise PredictionsError(f"{where}: field {field!r} has no reference")
    task = raw.get("task", default_task)
    if not isinstance(task, str) or not task:
        raise PredictionsError(f"{where}: field 'task' must be a non-empty string")
    instance_id = raw.get("id", line_number)
    if not isinstance(instance_id, (str, int)) or isinstance(instance_id, bool):
        raise PredictionsError(f"{where}: field 'id' must be a string or an integer")
    return PredictionRecord(
        task=task,
        instance_id=str(instance_id),
        input=_optional(raw, "input", str, where) or "",
        references=tuple(references),
        prediction=prediction,
        categories=_categories(raw.get("category"), where, "category"),
    )


def _categories(value: Any, where: str, field: str = "Categories") -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise PredictionsError(f"{where}: field {field!r} must be a string or a list of strings")


def _optional(raw: dict[str, Any], field: str, kind: type, where: str) -> Any:
    value = raw.get(field)
    if value is not None and not isinstance(value, kind):
        raise PredictionsError(f"{where}: field {field!r} must be a {kind.__name__}")
    return value


def _scores(value: Any, where: str) -> InstanceScores | None:
    if value is None:
        return None
    names = ("exact_match", "rouge1", "rougeL")
    if not isinstance(value, dict) or not all(isinstance(value.get(n), (int, float)) for n in names):
        raise PredictionsError(f"{where}: field 'scores' must hold numbers for {', '.join(names)}")
    return InstanceScores(**{n: float(value[n]) for n in names})


def write_predictions(path: str | Path, records: Iterable[PredictionRecord]) -> None:
    """Write records in the reference layout, atomically (temp file + rename)."""
    write_text_atomic(path, "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in records))


def with_task_categories(records: Iterable[PredictionRecord], collection: Collection | None) -> list[PredictionRecord]:
    """Records whose line had no `Categories`, given their task file's categories when
    the collection holds the task; otherwise left empty (scored as "unknown")."""
    found: dict[str, tuple[str, ...]] = {}
    resolved = []
    for record in records:
        if not record.categories and collection is not None and collection.has_task(record.task):
            if record.task not in found:
                found[record.task] = tuple(collection.task(record.task).categories)
            record = replace(record, categories=found[record.task])
        resolved.append(record)
    return resolved
