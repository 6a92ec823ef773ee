"""Training throughput, whole process: `quickstudy train` against SuperNI's reference pipeline.

The configuration (issue 18): a tiny T5 built from a config (d_model 256, d_ff 1024, 2 + 2
layers), ByT5's byte tokenizer, `def_pos2` prompts under a 1,024-token source budget, 128-token
targets, batch 8, 16 steps, lr 5e-5, the first 40 instances of each of the sample's 24 tasks,
one thread. Each side runs as its own process, from interpreter start to the saved model:
  reference  benchmarks/reference_train.py: Hugging Face `Seq2SeqTrainer` with a collator in
             the manner of SuperNI's `DataCollatorForNI` (every batch's prompts built and
             tokenized under the budget, padded to the batch's longest), batches in random order;
  ours       `quickstudy train CONFIG.yaml` (finetune stage, the same instances through a
             sampling manifest): prompts encoded once, length-grouped batches.
Each counts the real (non-padding) source and target tokens it trained on. Each runs --repeats
times, alternating; the best of each counts. The clock is the child's CPU time (user + system;
other work on a shared machine barely disturbs it; one thread, so CPU time is the work done);
wall times are printed too. The last line is `ratio: <ours over reference>` in real tokens per
CPU-second.

    .venv/bin/python benchmarks/train_throughput.py [--steps 16] [--repeats 3] [--per-task 40]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from quickstudy.data.collection import Collection
from realdata import SAMPLE  # noqa: E402

HERE = Path(__file__).resolve().parent
QUICKSTUDY = Path(sys.executable).with_name("quickstudy")
MODEL = {"d_model": 256, "d_ff": 1024, "num_layers": 2, "num_decoder_layers": 2, "d_kv": 32, "num_heads": 4}
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def timed(command: list[str], cwd: Path) -> tuple[str, float, float]:
    """(stdout, child CPU seconds, wall seconds) of one process run to completion."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, check=False, env={**os.environ, **ONE_THREAD}
    )
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return done.stdout, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", type=Path, default=SAMPLE)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--per-task", type=int, default=40)
    parser.add_argument("--max-source-length", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    collection = Collection(args.collection)
    names = collection.task_names()
    tmp = Path(tempfile.mkdtemp(prefix="qs-train-bench-"))
    manifest = {
        "seed": 1,
        "sizes": [str(args.per_task)],
        "tasks": {
            n: {str(args.per_task): [i.id for i in collection.task(n).instances[: args.per_task]]} for n in names
        },
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest))
    config = {
        "stage": "finetune",
        "model": {"name_or_path": "tiny-t5", "tokenizer": "byte", "tiny_config": MODEL},
        "data": {
            "collection": str(args.collection.resolve()), "tasks": names, "size": str(args.per_task),
            "manifest": str(tmp / "manifest.json"), "n_test": 0, "n_validation": 0,
        },
        "encoding": "def_pos2",
        "train": {
            "max_steps": args.steps, "batch_size": args.batch_size, "learning_rate": 5e-5,
            "max_source_length": args.max_source_length, "max_target_length": 128,
            "checkpoint_every_steps": None, "progress_bar": False, "seed": 1,
        },
        "output_dir": "OUT",
    }  # fmt: skip
    print(f"{len(names)} tasks x first {args.per_task} instances; tiny T5 {MODEL}; ByT5 bytes, def_pos2, source "
          f"budget {args.max_source_length}, batch {args.batch_size}, {args.steps} steps, one thread; whole processes")  # fmt: skip

    def ours(out: Path) -> list[str]:
        (tmp / "train.yaml").write_text(yaml.safe_dump({**config, "output_dir": str(out)}))
        return [str(QUICKSTUDY), "train", str(tmp / "train.yaml")]

    def reference(out: Path) -> list[str]:
        return [
            sys.executable, str(HERE / "reference_train.py"), str(args.collection), str(out), "--tasks", ",".join(names),
            "--per-task", str(args.per_task), "--model-config", json.dumps({**MODEL, "dropout_rate": 0.1}),
            "--steps", str(args.steps), "--batch-size", str(args.batch_size),
            "--max-source-length", str(args.max_source_length),
        ]  # fmt: skip

    best = {"reference": (0.0, 0.0), "ours": (0.0, 0.0)}  # (tokens per CPU-second, tokens per wall-second)
    try:
        for repeat in range(args.repeats):
            for name in ("reference", "ours"):
                out = tmp / f"{name}-{repeat}"
                stdout, cpu, wall = timed((reference if name == "reference" else ours)(out), tmp)
                if name == "reference":
                    tokens = int(re.search(r"real tokens: (\d+)", stdout).group(1))
                else:
                    tokens = json.loads((out / "train_result.json").read_text())["train_tokens"]
                best[name] = (max(best[name][0], tokens / cpu), max(best[name][1], tokens / wall))
                print(f"{name:9s} run {repeat + 1}: {tokens} real tokens, cpu {cpu:.1f} s, wall {wall:.1f} s, "
                      f"{tokens / cpu:,.0f} tokens per CPU-second")  # fmt: skip
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for name in best:
        print(f"{name:9s} best: {best[name][0]:,.0f} tokens per CPU-second, {best[name][1]:,.0f} per wall-second")
    print(f"wall-time ratio: {best['ours'][1] / best['reference'][1]:.2f}")
    print(f"ratio: {best['ours'][0] / best['reference'][0]:.2f}")


if __name__ == "__main__":
    main()
