"""The reference side of benchmarks/train_throughput.py, as a process of its own.

SuperNI's way of training Tk-Instruct, on a tiny T5 built from a config: the first N
instances of each task file, Hugging Face `Seq2SeqTrainer`, and a collator in the manner of
SuperNI's `DataCollatorForNI` that builds the prompt of every instance of every batch
(tokenizing each candidate prompt under the budget, reference_encoder.py), tokenizes it and
pads to the batch's longest; batches in random order; the model saved at the end. Prints the
real (non-padding) source and target tokens it trained on as `real tokens: N`.

    python benchmarks/reference_train.py COLLECTION OUT_DIR --tasks a,b,c [--per-task 40] ...
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from transformers import ByT5Tokenizer, Seq2SeqTrainer, Seq2SeqTrainingArguments, T5Config, T5ForConditionalGeneration

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_encoder import reference_prompt  # noqa: E402


class ReferenceCollator:
    """Prompt text built and tokenized for every batch, padded to the batch's longest."""

    def __init__(self, tokenizer, max_source_length: int, max_target_length: int, seed: int):
        self.tokenizer = tokenizer
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self.random = random.Random(seed)
        self.real_tokens = 0

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
            text_target=targets, max_length=self.max_target_length, padding="longest", truncation=True,
            return_tensors="pt",
        )  # fmt: skip
        inputs["labels"] = labels["input_ids"].masked_fill(labels["attention_mask"] == 0, -100)
        self.real_tokens += int(inputs["attention_mask"].sum() + labels["attention_mask"].sum())
        return dict(inputs)


def task_items(path: Path, per_task: int) -> list[dict]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    examples = [SimpleNamespace(input=e["input"], output=e["output"]) for e in raw.get("Positive Examples", [])]
    task = SimpleNamespace(definition=raw["Definition"][0], positive_examples=examples, negative_examples=[])
    return [
        {"task": task, "input": instance["input"], "references": instance["output"]}
        for instance in raw["Instances"][:per_task]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("collection", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--tasks", required=True, help="comma-separated task names")
    parser.add_argument("--per-task", type=int, default=40)
    parser.add_argument("--model-config", default="{}", help="T5Config values as JSON")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--max-source-length", type=int, default=1024)
    parser.add_argument("--max-target-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    items = [
        item
        for name in args.tasks.split(",")
        for item in task_items(args.collection / "tasks" / f"{name}.json", args.per_task)
    ]
    tokenizer = ByT5Tokenizer()
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id, **json.loads(args.model_config),
    )  # fmt: skip
    model = T5ForConditionalGeneration(config)
    collator = ReferenceCollator(tokenizer, args.max_source_length, args.max_target_length, args.seed)
    arguments = Seq2SeqTrainingArguments(
        output_dir=str(args.out_dir), per_device_train_batch_size=args.batch_size, max_steps=args.steps,
        learning_rate=args.learning_rate, lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=1.0,
        save_strategy="no", logging_strategy="no", report_to=[], disable_tqdm=True, remove_unused_columns=False,
        dataloader_num_workers=0, seed=args.seed, use_cpu=not torch.cuda.is_available(),
    )  # fmt: skip
    trainer = Seq2SeqTrainer(model=model, args=arguments, train_dataset=items, data_collator=collator)
    trainer.train()
    trainer.save_model(str(args.out_dir / "model"))
    print(f"real tokens: {collator.real_tokens}")


if __name__ == "__main__":
    main()
