"""Prompt encoding under a token budget: quickstudy's PromptBuilder against the reference procedure.

Encodes N instances (default 50,000: the sample tasks' instances, cycled) with `def_pos2` and a
1,024-token budget, two ways, with one of three tokenizers (--tokenizer):
  byte           ByT5's byte tokenizer: ours adds up byte counts;
  word           a word-level tokenizer trained on the sample (offline);
  sentencepiece  a T5-style SentencePiece (unigram) tokenizer trained on the sample (offline);
                 for these two ours tokenizes each instance's part once and the task's fixed
                 text once per task, and the joined prompt only near the budget.
The two ways:
  reference  a straightforward re-implementation of SuperNI's reference encoder (DataCollatorForNI):
             lay the pieces out for each instance and tokenize the whole candidate prompt for every
             demonstration it tries, then the final prompt once more;
  ours       quickstudy.prompts.encoding.PromptBuilder, one per task (pieces laid out and measured once).
Both outputs must be identical. Prints instances per CPU-second (this process's CPU time: robust on a shared
machine) for each; the last line is `ratio: <ours over reference>`.

    .venv/bin/python benchmarks/encode.py [--tokenizer byte|word|sentencepiece] [--instances 50000] [--budget 1024]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from transformers import ByT5Tokenizer

from quickstudy.data.collection import Collection
from quickstudy.data.records import Instance, Task
from quickstudy.models.tiny import sentencepiece_tokenizer, word_level_tokenizer
from quickstudy.prompts.encoding import PromptBuilder, encoding_by_name
from realdata import SAMPLE  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_encoder import reference_prompt  # noqa: E402  (shared with the training benchmark)


def cycled_instances(collection: Collection, n: int) -> list[tuple[Task, Instance]]:
    pairs = [(task, instance) for task in collection.tasks() for instance in task.instances]
    return [pairs[i % len(pairs)] for i in range(n)]


def sample_tokenizer(kind: str, collection: Collection) -> Any:
    """ByT5's bytes, or a word-level / SentencePiece tokenizer trained on the collection's texts."""
    if kind == "byte":
        return ByT5Tokenizer()
    texts = []
    for task in collection.tasks():
        texts += [task.definition] + [f"{e.input} {e.output}" for e in task.positive_examples + task.negative_examples]
        texts += [f"{i.input} {' '.join(i.references)}" for i in task.instances]
    train = word_level_tokenizer if kind == "word" else sentencepiece_tokenizer
    return train(texts, vocab_size=8000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=50_000)
    parser.add_argument("--budget", type=int, default=1024)
    parser.add_argument("--collection", type=Path, default=SAMPLE)
    parser.add_argument("--tokenizer", choices=["byte", "word", "sentencepiece"], default="byte")
    args = parser.parse_args()

    encoding = encoding_by_name("def_pos2")
    collection = Collection(args.collection)
    tokenizer = sample_tokenizer(args.tokenizer, collection)
    work = cycled_instances(collection, args.instances)
    print(
        f"{len(work)} instances from {args.collection}, encoding {encoding.name}, {args.tokenizer} budget {args.budget}"
    )

    start = time.process_time()
    builders: dict[str, PromptBuilder] = {}
    ours = []
    for task, instance in work:
        builder = builders.get(task.name) or builders.setdefault(
            task.name, PromptBuilder(task, encoding, tokenizer, args.budget)
        )
        ours.append(builder.build(instance.input))
    ours_seconds = time.process_time() - start

    start = time.process_time()
    reference = [
        reference_prompt(
            task, instance.input, tokenizer, args.budget, encoding.num_pos_examples, encoding.num_neg_examples
        )
        for task, instance in work
    ]
    reference_seconds = time.process_time() - start

    mismatches = sum(built.text != text for built, text in zip(ours, reference))
    dropped = sum(built.dropped_examples > 0 for built in ours)
    cut = sum(built.truncated for built in ours)
    print(
        f"identical output: {mismatches == 0} ({mismatches} of {len(work)} differ; {dropped} dropped an example, {cut} cut at the budget)"
    )
    print(f"reference: {len(work) / reference_seconds:,.0f} instances/s ({reference_seconds:.2f} s CPU)")
    print(f"ours:      {len(work) / ours_seconds:,.0f} instances/s ({ours_seconds:.2f} s CPU)")
    if mismatches:
        sys.exit(1)
    print(f"ratio: {reference_seconds / ours_seconds:.1f}")


if __name__ == "__main__":
    main()
