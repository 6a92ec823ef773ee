"""How long a task's prompts are in tokens before any budget cuts them (thesis Table 4.2, section 5.2.5)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from quickstudy.data.records import Instance, Task
from quickstudy.prompts.encoding import Encoding, PromptBuilder

_BATCH = 512  # prompts tokenized at once


@dataclass(frozen=True)
class PromptLengths:
    """Token counts of one task's whole prompts (the tokenizer's special tokens included)."""

    n: int
    mean: float
    max: int
    over_budget: int  # prompts longer than the source budget (cut or stripped of examples)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def prompt_lengths(
    task: Task, instances: Sequence[Instance], encoding: Encoding, tokenizer: Any, budget: int | None
) -> PromptLengths:
    """Lengths of the prompts of `instances` under `encoding`, with every demonstration kept."""
    builder = PromptBuilder(task, encoding)
    counts: list[int] = []
    for start in range(0, len(instances), _BATCH):
        texts = [builder.prompt(instance.input) for instance in instances[start : start + _BATCH]]
        counts += [len(ids) for ids in tokenizer(texts)["input_ids"]]
    if not counts:
        return PromptLengths(0, 0.0, 0, 0)
    over = sum(count > budget for count in counts) if budget is not None else 0
    return PromptLengths(len(counts), sum(counts) / len(counts), max(counts), over)
