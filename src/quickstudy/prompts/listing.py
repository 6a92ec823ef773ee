"""The prompts of a collection's tasks, as records (what `quickstudy prompts` prints)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from quickstudy.data.collection import Collection
from quickstudy.errors import DataError
from quickstudy.prompts.chat import ChatTemplate, source_budget
from quickstudy.prompts.encoding import Encoding, PromptBuilder

ALL_TASKS = "all"


def selected_task_names(collection: Collection, requested: Sequence[str]) -> list[str]:
    """The tasks asked for, in the order asked (`all`: every task, sorted); each checked to exist."""
    if ALL_TASKS in requested:
        return collection.task_names()
    for name in requested:
        if not collection.has_task(name):
            raise DataError(f"{collection.tasks_dir}: task {name!r} not found in collection")
    return list(dict.fromkeys(requested))


def prompt_records(
    collection: Collection,
    task_names: Sequence[str],
    encoding: Encoding,
    tokenizer: Any = None,
    max_source_length: int | None = None,
    limit: int | None = None,
    chat_template: bool = False,
) -> Iterator[dict[str, str]]:
    """`{"task", "instance_id", "prompt"}` for each task's instances in file order (the first
    `limit` per task when given); with `chat_template`, the prompt as the model sees it: the
    template's generation prompt around the SuperNI prompt, within the same budget."""
    chat = ChatTemplate(tokenizer) if chat_template else None
    for name in task_names:
        task = collection.task(name)
        builder = PromptBuilder(task, encoding, tokenizer, source_budget(tokenizer, max_source_length, chat_template))
        for instance in task.instances[:limit]:
            prompt = builder.prompt(instance.input)
            yield {
                "task": task.name,
                "instance_id": instance.id,
                "prompt": chat.prompt_text(prompt) if chat is not None else prompt,
            }
