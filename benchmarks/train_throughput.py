"""Training throughput: quickstudy's training loop against a SuperNI-style reference pipeline.

Trains the same tiny T5 (same seeded start and tokenizer) on the same sample-task training
instances (`def_pos2` prompts, 1,024-token source budget, 128-token targets), with the
same batch size, number of steps and learning rate, two ways:
  reference  the way SuperNI's reference code trains Tk-Instruct: Hugging Face `Seq2SeqTrainer`
             over raw instances, with a collator that builds the prompt of every instance of
             every batch (tokenizing each candidate prompt under the budget, as the reference
             encoder does), tokenizes it and pads to the batch's longest; batches in random order;
  ours       quickstudy: token ids encoded once (as the token cache serves them to every run),
             length-grouped batches padded per batch, `quickstudy.train.loop.train_model`.
Both count the real (non-padding) source and target tokens they train on. Each pipeline runs
`--repeats` times, alternating, and the faster run of each is kept. On CPU the clock is this
process's CPU time (one thread by default), which other programs sharing the machine barely
disturb; wall-clock tokens/s are printed too. On a GPU the clock is wall time.
Prints tokens/s for both; the last line is `ratio: <ours over reference>`.

`--tokenizer word` (default): a word-level tokenizer trained on the selected tasks, whose prompt
lengths (about 4 characters a token) resemble T5's SentencePiece ones, so the 1,024 budget is
rarely reached, as in the real study. `--tokenizer byte`: ByT5's bytes, where most prompts hit
the budget, so padding (what length grouping saves) matters less.

    .venv/bin/python benchmarks/train_throughput.py [--steps 12] [--batch-size 8] [--tasks all-test]
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

from quickstudy.data.collection import Collection
from quickstudy.data.splits import SplitConfig
from quickstudy.models.loading import LoadedModel, load_model
from quickstudy.models.spec import ModelSpec
from quickstudy.models.tiny import word_level_tokenizer
from quickstudy.prompts.encoding import PromptBuilder, encoding_by_name
from quickstudy.train.batching import example_length, length_grouped_batches
from quickstudy.train.config import TrainConfig
from quickstudy.train.loop import train_model
from quickstudy.train.stages import TaskSelection, downstream_selections, training_features

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encode import reference_prompt  # noqa: E402  (the reference encoder, shared with benchmarks/encode.py)

CLOCK = "wall" if torch.cuda.is_available() else "CPU time"
SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "superni-sample"


def clock() -> float:
    """Seconds: wall time on a GPU, this process's CPU time on CPU (robust on a shared machine)."""
    return time.perf_counter() if torch.cuda.is_available() else time.process_time()


class ReferenceCollator:
    """SuperNI-style collator: prompt text built and tokenized for every batch, padded to the longest."""

    def __init__(self, tokenizer, max_source_length: int, max_target_length: int, seed: int):
        self.tokenizer = tokenizer
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self.random = random.Random(seed)
        self.real_tokens = 0
        self.positions = 0  # padded source and target positions: what the model computes on

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        sources = [
            reference_prompt(item["task"], item["input"], self.tokenizer, self.max_source_length, 2, 0)
            for item in batch
        ]
        inputs = self.tokenizer(
            sources, max_length=self.max_source_length, padding="longest", truncation=True, return_tensors="pt"
        )
        targets = [self.random.choice(item["references"]) for item in batch]
        labels = self.tokenizer(
            text_target=targets,
            max_length=self.max_target_length,
            padding="longest",
            truncation=True,
            return_tensors="pt",
        )
        inputs["labels"] = labels["input_ids"].masked_fill(labels["attention_mask"] == 0, -100)
        self.real_tokens += int(inputs["attention_mask"].sum() + labels["attention_mask"].sum())
        self.positions += inputs["input_ids"].numel() + labels["input_ids"].numel()
        return dict(inputs)


def run_reference(loaded: LoadedModel, items: list[dict], config: TrainConfig, out_dir: Path) -> tuple[int, int, float]:
    collator = ReferenceCollator(loaded.tokenizer, config.max_source_length, config.max_target_length, config.seed)
    arguments = Seq2SeqTrainingArguments(
        output_dir=str(out_dir), per_device_train_batch_size=config.batch_size, max_steps=config.max_steps,
        learning_rate=config.learning_rate, lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=1.0,
        save_strategy="no", logging_strategy="no", report_to=[], disable_tqdm=True, remove_unused_columns=False,
        dataloader_num_workers=0, seed=config.seed, use_cpu=not torch.cuda.is_available(),
        bf16=config.mixed_precision() == "bf16",
    )  # fmt: skip
    trainer = Seq2SeqTrainer(model=loaded.model, args=arguments, train_dataset=items, data_collator=collator)
    start = clock()
    trainer.train()
    return collator.real_tokens, collator.positions, clock() - start


def run_ours(loaded: LoadedModel, encoded: list, config: TrainConfig, out_dir: Path) -> tuple[int, int, float]:
    start = clock()
    result = train_model(loaded, encoded, config, out_dir)
    seconds = clock() - start
    return result.train_tokens, padded_positions(encoded, config), seconds


def padded_positions(encoded: list, config: TrainConfig) -> int:
    """Source and target positions of the batches `train_model` trained on (one process, no accumulation)."""
    lengths = [example_length(e) for e in encoded]
    epochs = math.ceil(config.max_steps / math.ceil(len(encoded) / config.batch_size))
    batches = [
        b for epoch in range(epochs) for b in length_grouped_batches(lengths, config.batch_size, config.seed, epoch)
    ]
    return sum(
        len(b) * (max(len(encoded[i].input_ids) for i in b) + max(len(encoded[i].labels) for i in b))
        for b in batches[: config.max_steps]
    )


def collection_texts(selections: list[TaskSelection]) -> list[str]:
    """Every text a prompt or target can hold, to train the word-level tokenizer on."""
    texts = []
    for selection in selections:
        task = selection.task
        texts += [task.definition] + [f"{e.input} {e.output}" for e in task.positive_examples + task.negative_examples]
        texts += [f"{i.input} {' '.join(i.references)}" for i in selection.instances]
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--max-source-length", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--tasks", default="all-test", help="comma-separated task names, or all-test: the split's unseen tasks (MTL)"
    )
    parser.add_argument("--collection", type=Path, default=SAMPLE)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokenizer", choices=["word", "byte"], default="word")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    collection = Collection(args.collection)
    names = list(collection.split().test) if args.tasks == "all-test" else args.tasks.split(",")
    # the sample's files are cut short: hold out 20 + 5 instances per task so each keeps a train pool
    selections = downstream_selections(
        collection, names, "all", seed=1, split_config=SplitConfig(n_test=20, n_validation=5)
    )
    config = TrainConfig(
        learning_rate=args.learning_rate, max_steps=args.steps, batch_size=args.batch_size,
        max_source_length=args.max_source_length, checkpoint_every_steps=None, progress_bar=False, seed=1,
    )  # fmt: skip
    encoding = encoding_by_name("def_pos2")
    tmp = Path(tempfile.mkdtemp(prefix="qs-bench-"))
    tokenizer_dir = tmp / "tokenizer"
    word_level_tokenizer(collection_texts(selections), vocab_size=20_000).save_pretrained(tokenizer_dir)
    spec = ModelSpec(name_or_path="tiny-t5", tokenizer=str(tokenizer_dir) if args.tokenizer == "word" else "byte")
    probe = load_model(spec)

    start = time.perf_counter()
    encoded = training_features(selections, encoding, probe, config, seed=1)
    encode_seconds = time.perf_counter() - start
    items = [
        {"task": s.task, "input": i.input, "references": list(i.references)} for s in selections for i in s.instances
    ]
    builder = PromptBuilder(selections[0].task, encoding, probe.tokenizer, config.max_source_length)
    first = selections[0].instances[0].input
    assert builder.prompt(first) == reference_prompt(
        selections[0].task, first, probe.tokenizer, config.max_source_length, 2, 0
    )
    print(f"{len(items)} training instances of {len(names)} sample tasks; tiny T5, batch {args.batch_size}, "
          f"{args.steps} steps, lr {args.learning_rate}, source budget {args.max_source_length}, "
          f"{args.tokenizer} tokenizer, {torch.get_num_threads()} threads, device {'cuda' if torch.cuda.is_available() else 'cpu'}")  # fmt: skip
    print(
        f"ours: encoding once took {encode_seconds:.2f} s (served from the token cache in a study; not in the timing below)"
    )

    best = {"reference": 0.0, "ours": 0.0}
    try:
        for repeat in range(args.repeats):
            for name, run, data in (("reference", run_reference, items), ("ours", run_ours, encoded)):
                wall_start = time.perf_counter()
                tokens, positions, seconds = run(load_model(spec), data, config, tmp / f"{name}-{repeat}")
                wall = time.perf_counter() - wall_start
                best[name] = max(best[name], tokens / seconds)
                print(f"{name:9s} run {repeat + 1}: {tokens} real tokens ({1 - tokens / positions:.0%} of positions are padding), "
                      f"{tokens / seconds:,.0f} tokens/s ({CLOCK}), {tokens / wall:,.0f} tokens/s (wall)")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"reference: {best['reference']:,.0f} tokens/s ({CLOCK}, best of {args.repeats})")
    print(f"ours:      {best['ours']:,.0f} tokens/s ({CLOCK}, best of {args.repeats})")
    print(f"ratio: {best['ours'] / best['reference']:.2f}")


if __name__ == "__main__":
    main()
