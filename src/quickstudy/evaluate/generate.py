"""Batched greedy (or beam) decoding, and turning outputs into scored prediction records.

Prompts are tokenized once, sorted by length so each batch pads little, generated
batch by batch without gradients (bf16 autocast on CUDA), and put back in the
caller's order. Encoder-decoder models get right padding; decoder-only models get
left padding, their prompts encoded as in training (`decoder_prompt_ids`), and only
the new tokens are decoded. With a chat template the prompt is the template's
generation prompt and decoding stops at its end-of-turn token (prompts.chat).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from quickstudy.data.records import Instance, Task
from quickstudy.evaluate.metrics import RougeMetrics, score_records
from quickstudy.evaluate.predictions import METRICS_FILE, PREDICTIONS_FILE, PredictionRecord, write_predictions
from quickstudy.files import write_text_atomic
from quickstudy.prompts.chat import ChatTemplate
from quickstudy.prompts.features import decoder_prompt_ids


def generate_texts(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 128,
    num_beams: int = 1,
    max_source_length: int | None = None,
    progress: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
    chat_template: bool = False,
) -> list[str]:
    """The model's output text for every prompt, in the prompts' order; `on_batch(done, total)`
    after every batch. `chat_template`: prompts go through the tokenizer's chat template, as
    in training."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
    encoded = prompt_ids(tokenizer, prompts, seq2seq, max_source_length, chat_template)
    stop_ids = ChatTemplate(tokenizer).stop_ids() if chat_template else None
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    outputs: list[str] = [""] * len(encoded)
    was_training = model.training
    model.eval()
    try:
        columns = (TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, transient=True, disable=not progress) as bar:
            job = bar.add_task("generating", total=len(encoded))
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                input_ids, attention_mask = padded([encoded[i] for i in batch], pad_id, left=not seq2seq)
                texts = _generate_batch(
                    model,
                    tokenizer,
                    input_ids.to(device),
                    attention_mask.to(device),
                    seq2seq,
                    pad_id,
                    max_new_tokens,
                    num_beams,
                    stop_ids,
                )
                for index, text in zip(batch, texts):
                    outputs[index] = text
                bar.advance(job, len(batch))
                if on_batch is not None:
                    on_batch(start + len(batch), len(order))
    finally:
        model.train(was_training)
    return outputs


def generate_predictions(
    loaded: Any,
    prompts: Sequence[str],
    batch_size: int = 16,
    max_new_tokens: int = 128,
    num_beams: int = 1,
    **options: Any,
) -> list[str]:
    """generate_texts for a `models.loading.LoadedModel` (anything with .model and .tokenizer),
    through its chat template when it uses one."""
    options.setdefault("chat_template", getattr(loaded, "chat_template", False))
    return generate_texts(
        loaded.model,
        loaded.tokenizer,
        prompts,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        **options,
    )


def prompt_ids(
    tokenizer: Any,
    prompts: Sequence[str],
    seq2seq: bool,
    max_source_length: int | None,
    chat_template: bool = False,
) -> list[list[int]]:
    """Token ids per prompt, as training encodes them, cut to max_source_length."""
    if seq2seq:
        truncation = {"truncation": True, "max_length": max_source_length} if max_source_length else {}
        return [list(ids) for ids in tokenizer(list(prompts), **truncation)["input_ids"]] if prompts else []
    return [decoder_prompt_ids(tokenizer, prompt, chat_template, max_source_length or None) for prompt in prompts]


def padded(sequences: Sequence[list[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and attention_mask for a batch, padded on the left or the right."""
    width = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        span = slice(width - len(ids), width) if left else slice(0, len(ids))
        input_ids[row, span] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, span] = 1
    return input_ids, attention_mask


def _generate_batch(
    model: Any,
    tokenizer: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    seq2seq: bool,
    pad_id: int,
    max_new_tokens: int,
    num_beams: int,
    stop_ids: list[int] | None = None,
) -> list[str]:
    on_cuda = input_ids.device.type == "cuda"
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_cuda):
        generated = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            do_sample=False,
            pad_token_id=pad_id,
            **({"eos_token_id": stop_ids} if stop_ids else {}),
        )
    new_tokens = generated if seq2seq else generated[:, input_ids.shape[1] :]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def predictions_for(
    task: Task,
    instances: Sequence[Instance],
    outputs: Sequence[str],
    prompts: Sequence[str] | None = None,
    prompt_truncated: Sequence[bool] | None = None,
    metrics: RougeMetrics | None = None,
) -> list[PredictionRecord]:
    """Scored prediction records for one task's instances and the model's outputs."""
    if len(outputs) != len(instances):
        raise ValueError(f"task {task.name}: {len(outputs)} outputs for {len(instances)} instances")
    metrics = metrics or RougeMetrics()
    return [
        PredictionRecord(
            task=task.name,
            instance_id=instance.id,
            input=instance.input,
            references=instance.references,
            prediction=output,
            categories=tuple(task.categories),
            prompt=prompts[i] if prompts is not None else None,
            scores=metrics.instance_scores(output, instance.references),
            prompt_truncated=prompt_truncated[i] if prompt_truncated is not None else None,
        )
        for i, (instance, output) in enumerate(zip(instances, outputs))
    ]


def write_evaluation(folder: str | Path, records: Sequence[PredictionRecord]) -> None:
    """Write `predictions.jsonl` and its `metrics.json` (ScoreReport JSON) into folder, each atomically."""
    folder = Path(folder)
    write_predictions(folder / PREDICTIONS_FILE, records)
    report = score_records(records)
    write_text_atomic(folder / METRICS_FILE, json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
