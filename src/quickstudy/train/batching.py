"""Length-grouped batches with per-batch padding.

Examples of similar length go in the same batch, so a batch pads only to its own
longest example instead of to the maximum length; the order of batches is
shuffled with a seeded generator, so an epoch's batches depend only on
(seed, epoch) and a resumed run can skip exactly the batches it has done.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from quickstudy.prompts.features import EncodedExample

# Examples are shuffled, then sorted by length within windows of this many batches
# (as transformers' LengthGroupedSampler does): batches stay tight without being
# identical in every epoch.
GROUP_WINDOW_BATCHES = 50


def example_length(example: EncodedExample) -> int:
    return len(example.input_ids) + len(example.labels)


def real_token_count(example: EncodedExample) -> int:
    """The source and target tokens an example trains on: padding and -100 prompt labels excluded."""
    return len(example.input_ids) + sum(1 for label in example.labels if label != -100)


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Index batches for one epoch: seeded shuffle, sort by length (longest first)
    inside windows of GROUP_WINDOW_BATCHES batches, then shuffle the batches."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    window = batch_size * GROUP_WINDOW_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        group = sorted(order[start : start + window], key=lambda i: -lengths[i])
        batches += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffled]


def shard_batches(batches: list[list[int]], process_index: int, num_processes: int) -> list[list[int]]:
    """This process's share of the batches; the list is first padded by repeating its
    start so every process gets the same number (a process with fewer would hang the others)."""
    if num_processes == 1:
        return batches
    missing = (-len(batches)) % num_processes
    padded = batches + [batches[i % len(batches)] for i in range(missing)]
    return padded[process_index::num_processes]


def collate(examples: Sequence[EncodedExample], pad_token_id: int, is_seq2seq: bool) -> dict[str, torch.Tensor]:
    """Tensors for one batch, padded to its longest member (labels padded with -100).
    Seq2seq: encoder ids and target labels; decoder-only: prompt+target ids whose
    prompt positions are already -100 in the labels."""
    input_ids = _padded([e.input_ids for e in examples], pad_token_id)
    labels = _padded([e.labels for e in examples], -100)
    attention_mask = _padded([[1] * len(e.input_ids) for e in examples], 0)
    if not is_seq2seq and labels.shape != input_ids.shape:
        raise ValueError("decoder-only examples need labels aligned with input_ids")
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def _padded(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    width = max(len(row) for row in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out
