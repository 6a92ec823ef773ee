"""Evaluate one model on tasks' test instances: prompts, generation, scored records.

`evaluate_model` is what both a study's evaluate run and `quickstudy predict` do, so a
model scored either way gets the same predictions and the same metrics.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quickstudy.data.records import Instance, Task
from quickstudy.evaluate.generate import generate_predictions, predictions_for
from quickstudy.evaluate.metrics import RougeMetrics, ScoreReport, score_records
from quickstudy.evaluate.predictions import PredictionRecord, write_predictions
from quickstudy.files import write_text_atomic
from quickstudy.models.spec import ModelSpec
from quickstudy.prompts.chat import source_budget
from quickstudy.prompts.encoding import Encoding, PromptBuilder
from quickstudy.train.loop import MODEL_DIR


@dataclass(frozen=True)
class TaskInstances:
    """A task and the instances of it to predict (its test instances)."""

    task: Task
    instances: Sequence[Instance]


def evaluate_model(
    loaded: Any,
    selections: Sequence[TaskInstances],
    encoding: Encoding,
    *,
    max_source_length: int | None,
    batch_size: int,
    max_new_tokens: int,
    num_beams: int,
    progress: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
) -> list[PredictionRecord]:
    """Scored predictions of `loaded` (a models.loading.LoadedModel) for every selected
    instance: prompts built within the source budget (less a chat template's own tokens),
    all tasks generated together; `on_batch(done, total)` after every batch."""
    budget = source_budget(loaded.tokenizer, max_source_length, getattr(loaded, "chat_template", False))
    built = []
    for selection in selections:
        builder = PromptBuilder(selection.task, encoding, loaded.tokenizer, budget)
        built.append([builder.build(instance.input) for instance in selection.instances])
    outputs = generate_predictions(
        loaded,
        [prompt.text for prompts in built for prompt in prompts],
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        max_source_length=max_source_length,
        progress=progress,
        on_batch=on_batch,
    )
    records: list[PredictionRecord] = []
    offset, metrics = 0, RougeMetrics()
    for selection, prompts in zip(selections, built):
        task_outputs = outputs[offset : offset + len(prompts)]
        offset += len(prompts)
        texts, truncated = [p.text for p in prompts], [p.truncated for p in prompts]
        records += predictions_for(selection.task, selection.instances, task_outputs, texts, truncated, metrics)
    return records


def metrics_path(predictions_path: str | Path) -> Path:
    """Where `quickstudy predict` writes the scores of PRED.jsonl: PRED.metrics.json beside it."""
    path = Path(predictions_path)
    return path.with_name(f"{path.stem}.metrics.json")


def write_scored_predictions(path: str | Path, records: Sequence[PredictionRecord]) -> ScoreReport:
    """Write the predictions (reference layout, per-line scores) and their metrics beside them."""
    report = score_records(records)
    write_predictions(path, records)
    write_text_atomic(metrics_path(path), json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
    return report


def model_spec_for(name_or_path: str, tokenizer: str | None = None) -> ModelSpec:
    """The spec of a model to predict with: a hub id, a model folder, or the output folder
    of `quickstudy train` (whose model is in its `model/` folder)."""
    folder = Path(name_or_path)
    if folder.is_dir() and (folder / MODEL_DIR).is_dir() and not (folder / "config.json").is_file():
        name_or_path = str(folder / MODEL_DIR)
    return ModelSpec(name_or_path=name_or_path, tokenizer=tokenizer)
