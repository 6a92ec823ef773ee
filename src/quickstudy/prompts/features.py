"""Text-level examples (prompt, target) and their token ids for training.

`text_examples` is the task-level view (seqio's "task features"); `encode_examples`
turns it into model features for encoder-decoder or decoder-only models, in one place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from quickstudy.data.records import Instance, Task
from quickstudy.errors import PromptError
from quickstudy.prompts.chat import ChatTemplate, source_budget, templated_prompt_ids
from quickstudy.prompts.encoding import Encoding, PromptBuilder
from quickstudy.prompts.tokenizers import ByteCounter, token_counter

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TextExample:
    """One instance as text. `target` is the reference trained on; `references` all of them.
    `truncated`: the prompt was cut at the token budget; `dropped_examples`: demonstrations
    left out to fit it."""

    task: str
    instance_id: str
    prompt: str
    target: str
    references: tuple[str, ...]
    truncated: bool = False
    dropped_examples: int = 0


@dataclass(frozen=True)
class EncodedExample:
    """Token ids for one example; `labels` uses -100 where no loss is taken.
    `truncated`: the prompt lost text or tokens to the source budget."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False


def chosen_reference(references: Sequence[str], seed: int, task: str, instance_id: str) -> str:
    """One reference, chosen by a stateless seeded hash: the same seed gives the same
    choice for an instance anywhere, whatever else is sampled."""
    if len(references) == 1:
        return references[0]
    digest = hashlib.sha256(f"{seed}\0{task}\0{instance_id}".encode()).digest()
    return references[int.from_bytes(digest[:8], "big") % len(references)]


def text_examples(
    task: Task,
    instances: Sequence[Instance],
    encoding: Encoding,
    tokenizer: Any = None,
    max_source_length: int | None = None,
    seed: int = 0,
    chat_template: bool = False,
) -> list[TextExample]:
    """Prompt and target text for each instance, in order; with `chat_template` the budget
    leaves room for the template's tokens."""
    builder = PromptBuilder(task, encoding, tokenizer, source_budget(tokenizer, max_source_length, chat_template))
    examples = []
    for instance in instances:
        built = builder.build(instance.input)
        examples.append(
            TextExample(
                task=task.name,
                instance_id=instance.id,
                prompt=built.text,
                target=chosen_reference(instance.references, seed, task.name, instance.id),
                references=instance.references,
                truncated=built.truncated,
                dropped_examples=built.dropped_examples,
            )
        )
    return examples


def encode_examples(
    examples: Sequence[TextExample],
    tokenizer: Any,
    max_source_length: int | None,
    max_target_length: int | None,
    decoder_only: bool,
    chat_template: bool = False,
) -> list[EncodedExample]:
    """Token ids for training.

    Encoder-decoder: input_ids = prompt ids (special tokens as the tokenizer adds them)
    cut to `max_source_length`, labels = target ids cut to `max_target_length` with the
    end-of-sequence token kept (Hugging Face truncation). Decoder-only: prompt ids
    (see `decoder_prompt_ids`) followed by target ids and end-of-sequence, the prompt
    positions masked with -100 in labels.
    """
    if not examples:
        return []
    if decoder_only and chat_template:
        chat = ChatTemplate(tokenizer)
        return [_chat_example(example, chat, max_source_length, max_target_length) for example in examples]
    if decoder_only:
        return [_decoder_example(example, tokenizer, max_source_length, max_target_length) for example in examples]
    if chat_template:
        raise PromptError("chat templates apply to decoder-only models only")
    return _seq2seq_examples(examples, tokenizer, max_source_length, max_target_length)


def _seq2seq_examples(
    examples: Sequence[TextExample], tokenizer: Any, max_source_length: int | None, max_target_length: int | None
) -> list[EncodedExample]:
    counter = token_counter(tokenizer)
    if isinstance(counter, ByteCounter):  # ByT5: the same ids straight from the bytes
        from_bytes = [_byte_example(example, counter, max_source_length, max_target_length) for example in examples]
        if all(from_bytes):
            return from_bytes  # type: ignore[return-value]
    prompts = [example.prompt for example in examples]
    sources = tokenizer(prompts)["input_ids"]
    targets = tokenizer(text_target=[example.target for example in examples], **_truncation(max_target_length))[
        "input_ids"
    ]
    encoded = []
    for index, (example, source, target) in enumerate(zip(examples, sources, targets)):
        over = max_source_length is not None and len(source) > max_source_length
        if over:
            source = tokenizer(prompts[index], **_truncation(max_source_length))["input_ids"]
        encoded.append(EncodedExample(input_ids=list(source), labels=list(target), truncated=example.truncated or over))
    return encoded


def _byte_example(
    example: TextExample, counter: ByteCounter, max_source_length: int | None, max_target_length: int | None
) -> EncodedExample | None:
    source, target = counter.ids(example.prompt), counter.ids(example.target, max_target_length)
    if source is None or target is None:
        return None
    over = max_source_length is not None and len(source) > max_source_length
    if over:
        source = counter.ids(example.prompt, max_source_length)
    return EncodedExample(input_ids=source, labels=target, truncated=example.truncated or over)  # type: ignore[arg-type]


def _truncation(max_length: int | None) -> dict[str, Any]:
    return {"truncation": True, "max_length": max_length} if max_length is not None else {}


def decoder_prompt_ids(
    tokenizer: Any, prompt: str, chat_template: bool = False, max_source_length: int | None = None
) -> list[int]:
    """Prompt ids for a decoder-only model, for training and generation alike, cut to
    `max_source_length`: the chat template's generation prompt when asked (see prompts.chat),
    otherwise beginning-of-sequence (when the tokenizer has one) then the prompt's ids
    without end-of-sequence."""
    if chat_template:
        return templated_prompt_ids(tokenizer, prompt, max_source_length)[0]
    ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    ids = [tokenizer.bos_token_id, *ids] if tokenizer.bos_token_id is not None else ids
    return ids[:max_source_length] if max_source_length is not None else ids


def _chat_example(
    example: TextExample, chat: ChatTemplate, max_source_length: int | None, max_target_length: int | None
) -> EncodedExample:
    """The conversation's ids: the generation prompt (no loss), then the answer and the
    end-of-turn token (the labels)."""
    prompt_ids, cut = templated_prompt_ids(chat.tokenizer, example.prompt, max_source_length)
    answer_ids = chat.answer_ids(example.prompt, example.target, max_target_length)
    return EncodedExample(
        input_ids=prompt_ids + answer_ids,
        labels=[IGNORE_INDEX] * len(prompt_ids) + answer_ids,
        truncated=example.truncated or cut,
    )


def _decoder_example(
    example: TextExample, tokenizer: Any, max_source_length: int | None, max_target_length: int | None
) -> EncodedExample:
    eos = tokenizer.eos_token_id
    if eos is None:
        raise PromptError(f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no end-of-sequence token")
    prompt_ids = decoder_prompt_ids(tokenizer, example.prompt)
    over = max_source_length is not None and len(prompt_ids) > max_source_length
    if over:
        prompt_ids = prompt_ids[:max_source_length]
    target_ids = list(tokenizer(example.target, add_special_tokens=False)["input_ids"])
    if max_target_length is not None:
        target_ids = target_ids[: max(max_target_length - 1, 0)]
    target_ids.append(eos)
    return EncodedExample(
        input_ids=prompt_ids + target_ids,
        labels=[IGNORE_INDEX] * len(prompt_ids) + target_ids,
        truncated=example.truncated or over,
    )
