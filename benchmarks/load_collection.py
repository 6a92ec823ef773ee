"""Load, split and count a synthetic collection the size of SuperNI (~1,600 tasks, ~3 GB).

Writes the collection to a temporary folder (deleted afterwards), then times:
  reference  json.loads of every task file and nothing else (the floor any loader pays),
  validate   quickstudy's loader over every task file and every instance,
  stats      the default split: load + split + sample the unseen tasks, load the seen tasks.
Wall and CPU seconds are printed per phase. Peak memory is the process's maximum resident set size (ru_maxrss), which covers
every phase. The last line is `seconds: <validate+stats> peak_gb: <peak RSS>`.

    .venv/bin/python benchmarks/load_collection.py [--tasks 1600] [--instances 5000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import string
import tempfile
import time
from pathlib import Path

from quickstudy.data.collection import Collection
from quickstudy.data.stats import collection_stats
from quickstudy.data.validate import validate_collection

CATEGORIES = [
    "Textual Entailment", "Title Generation", "Coreference Resolution", "Answerability Classification",
    "Question Rewriting", "Data to Text", "Word Analogy", "Cause Effect Classification",
    "Dialogue Act Recognition", "Keyword Tagging", "Overlap Extraction", "Grammar Error Correction",
]  # fmt: skip


def word_blob(rng: random.Random, length: int) -> str:
    """Lower-case words and spaces: JSON-safe without escaping."""
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(3000)]
    text = " ".join(rng.choices(words, k=length // 5))
    return text[:length]


def task_json(index: int, n_instances: int, blob: str, rng: random.Random) -> str:
    """One task file's text, built by formatting (json.dumps of 8M instances is itself slow).
    Every other task omits instance ids and gives Definition as a string, as real files do;
    a few train inputs repeat a test input (spaced and cased differently) to exercise leakage removal."""
    limit = len(blob) - 400
    starts = [rng.randrange(limit) for _ in range(n_instances)]
    inputs = [blob[s : s + 250 + s % 100] for s in starts]
    for k in range(5):
        inputs[200 + k] = "  " + inputs[k].upper() + " "
    with_ids = index % 2 == 0
    parts = []
    for i, (start, text) in enumerate(zip(starts, inputs)):
        id_part = f'"id": "task{index}-{i}", ' if with_ids else ""
        parts.append(f'{{{id_part}"input": "{text}", "output": ["{blob[start + 7 : start + 47]}"]}}')
    definition = f'"definition of task {index}"' if with_ids else f'["definition of task {index}"]'
    category = CATEGORIES[index % len(CATEGORIES)]
    example = f'{{"input": "{blob[:200]}", "output": "{blob[200:230]}", "explanation": "because"}}'
    return (
        f'{{"Definition": {definition}, "Categories": ["{category}"], "Source": ["synthetic"], '
        f'"Positive Examples": [{example}, {example}], "Negative Examples": [{example}], '
        f'"Instances": [\n' + ",\n".join(parts) + "\n]}"
    )


def write_collection(root: Path, n_tasks: int, n_instances: int, n_unseen: int, n_seen: int) -> int:
    rng = random.Random(0)
    blob = word_blob(rng, 2_000_000)
    (root / "tasks").mkdir(parents=True)
    names = [f"task{index:04d}_synthetic" for index in range(n_tasks)]
    total = 0
    for index, name in enumerate(names):
        text = task_json(index, n_instances, blob, rng)
        (root / "tasks" / f"{name}.json").write_text(text, encoding="utf-8")
        total += len(text)
    split = root / "splits" / "default"
    split.mkdir(parents=True)
    (split / "test_tasks.txt").write_text("\n".join(names[:n_unseen]) + "\n")
    (split / "train_tasks.txt").write_text("\n".join(names[n_unseen : n_unseen + n_seen]) + "\n")
    (split / "excluded_tasks.txt").write_text("\n".join(names[n_unseen + n_seen :]) + "\n")
    return total


def timed(action):
    """The action's result, wall-clock seconds and CPU seconds (on a shared machine the
    wall clock also measures the other processes; CPU seconds do not)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    result = action()
    return result, time.perf_counter() - start, time.process_time() - cpu_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1600)
    parser.add_argument("--instances", type=int, default=5000)
    parser.add_argument("--unseen", type=int, default=119)
    parser.add_argument("--seen", type=int, default=757)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="quickstudy-bench-"))
    try:
        size, write_s, _ = timed(lambda: write_collection(root, args.tasks, args.instances, args.unseen, args.seen))
        print(f"wrote {args.tasks} tasks x {args.instances} instances, {size / 1e9:.2f} GB, in {write_s:.1f} s")

        paths = sorted((root / "tasks").glob("*.json"))
        _, reference_s, reference_cpu = timed(lambda: [len(json.loads(p.read_bytes())["Instances"]) for p in paths])
        print(f"reference (json.loads only, every file): {reference_s:.1f} s ({reference_cpu:.1f} s CPU)")

        report, validate_s, validate_cpu = timed(lambda: validate_collection(root))
        assert report.tasks_checked == args.tasks and not report.problems, report.problems[:3]
        print(
            f"validate (load every task and instance): {validate_s:.1f} s ({validate_cpu:.1f} s CPU), "
            f"{validate_cpu / reference_cpu:.2f}x the reference's CPU time"
        )

        stats, stats_s, stats_cpu = timed(lambda: collection_stats(Collection(root)))
        summary = stats.to_json()
        print(
            f"stats (load + split + sample {summary['tasks']} unseen, load {summary['seen_tasks']} seen): "
            f"{stats_s:.1f} s ({stats_cpu:.1f} s CPU)"
        )
        print(f"  instances {summary['instances']}, leakage removed {summary['leaked_removed']}")
        print(
            "  per size: "
            + ", ".join(f"{label} {s['instances']} ({s['percent']}%)" for label, s in summary["sizes"].items())
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)

    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    print(f"validate + stats: {validate_cpu + stats_cpu:.1f} s CPU")
    print(f"seconds: {validate_s + stats_s:.2f} peak_gb: {peak_gb:.3f}")


if __name__ == "__main__":
    main()
