"""SuperNI's reference encoder (DataCollatorForNI, text mode) for the benchmarks' reference side.

No quickstudy import: benchmarks/reference_train.py runs it in a process of its own, as the
reference pipeline would. `task` needs `definition` and `positive_examples` /
`negative_examples` whose items have `input` and `output` (a quickstudy Task, or the same
read straight from a task file).
"""

from __future__ import annotations

import string
from typing import Any


def reference_prompt(task: Any, instance_input: str, tokenizer: Any, budget: int, num_pos: int, num_neg: int) -> str:
    """SuperNI's reference procedure (definition on, no task name, no explanations), as written there."""

    def with_period(text: str) -> str:
        return text if text[-1] in string.punctuation else text + "."

    def count(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    task_input = (
        "Now complete the following example -\n" + with_period(f"Input: {instance_input.strip()}") + "\n" + "Output: "
    )
    definition = with_period("Definition: " + task.definition.strip()) + "\n\n"
    positives: list[str] = []
    for index, example in enumerate(task.positive_examples[:num_pos]):
        text = f" Positive Example {index + 1} -\n" + with_period(f"Input: {example.input.strip()}") + "\n"
        text = with_period(text + f" Output: {example.output.strip()}") + "\n" + "\n"
        if count(definition + " ".join(positives) + text + task_input) > budget:
            break
        positives.append(text)
    negatives: list[str] = []
    for index, example in enumerate(task.negative_examples[:num_neg]):
        text = f" Negative Example {index + 1} -\n" + with_period(f"Input: {example.input.strip()}") + "\n"
        text = with_period(text + f" Output: {example.output.strip()}") + "\n" + "\n"
        if count(definition + " ".join(positives) + " ".join(negatives) + text + task_input) > budget:
            break
        negatives.append(text)
    source = definition + "".join(positives) + "".join(negatives) + task_input
    ids = tokenizer(source)["input_ids"]
    if len(ids) > budget:
        source = tokenizer.decode(ids[:budget], skip_special_tokens=True)
    return source
