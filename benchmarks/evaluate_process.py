"""Whole-process scoring: `quickstudy evaluate` against SuperNI's official scoring program.

Writes 11,810 predictions (the size of a full study's test set; drawn from those
benchmarks/score.py builds from the sample tasks' real instances) to a predictions file in
the reference layout, then runs, each as its own process:
  reference  benchmarks/official_compute_metrics.py, the official procedure, overall only
             (the least it does; with its per-category and per-task views, which quickstudy
             evaluate also computes, it scores everything three times: printed for context);
  ours       `quickstudy evaluate PREDICTIONS.jsonl` (overall, per category and per task,
             the table a user sees).
Whole process: interpreter start, imports, reading the file, scoring, printing. Both must
report the same overall numbers. Each runs --repeat times, alternating; the best run of each
counts. The clock is the child process's CPU time (user + system, so other work on a shared
machine barely disturbs it); wall times are printed too. The last line is
`ratio: <official overall-only over quickstudy evaluate>`.

    .venv/bin/python benchmarks/evaluate_process.py [--predictions 11810] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quickstudy.data.collection import Collection
from quickstudy.evaluate.predictions import write_predictions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score import DEFAULT_COLLECTION, varied_predictions  # noqa: E402  (the predictions benchmarks/score.py scores)

HERE = Path(__file__).resolve().parent
QUICKSTUDY = Path(sys.executable).with_name("quickstudy")


def timed(command: list[str]) -> tuple[str, float, float]:
    """(stdout, child CPU seconds, wall seconds) of one process run to completion."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done.stdout, cpu, wall


def reference_overall(stdout: str) -> dict[str, float]:
    """The official program's overall block: `exact_match: X`, `rouge1: X`, `rougeL: X`."""
    block = stdout.split("======== Metrics per Category")[0]
    return {key: float(value) for key, value in re.findall(r"^(\w+): ([\d.]+)$", block, re.MULTILINE)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", default=str(DEFAULT_COLLECTION))
    parser.add_argument("--predictions", type=int, default=11_810)
    parser.add_argument("--repeat", type=int, default=3, help="timings are the best of this many runs of each")
    args = parser.parse_args()

    records = varied_predictions(Collection(args.collection), args.predictions)
    chosen = sorted(random.Random(0).sample(range(len(records)), args.predictions))
    records = [records[index] for index in chosen]
    with tempfile.TemporaryDirectory(prefix="qs-evaluate-") as tmp:
        path = Path(tmp) / "predictions.jsonl"
        write_predictions(path, records)
        print(f"{len(records)} predictions in {path.name}")
        reference = [sys.executable, str(HERE / "official_compute_metrics.py"), "--predictions", str(path)]
        grouped = [*reference, "--compute_per_category_metrics", "--compute_per_task_metrics"]
        ours = [str(QUICKSTUDY), "evaluate", str(path)]

        expected = reference_overall(timed(reference)[0])
        got = json.loads(timed([*ours, "--json"])[0])["overall"]
        if any(got[metric] != value for metric, value in expected.items()) or len(expected) != 3:
            raise SystemExit(f"overall scores differ: official {expected}, quickstudy {got}")
        print(f"overall scores identical to the official program: {expected}")

        runs = {"reference": reference, "grouped": grouped, "ours": ours}
        best = {name: (float("inf"), float("inf")) for name in runs}
        for repeat in range(args.repeat):
            for name, command in runs.items():
                if name == "grouped" and repeat:  # three times the reference's work: context, timed once
                    continue
                _, cpu, wall = timed(command)
                best[name] = (min(best[name][0], cpu), min(best[name][1], wall))
    labels = {
        "reference": "official program, overall only",
        "grouped": "official, + per category + per task",
        "ours": "quickstudy evaluate",
    }
    for name, label in labels.items():
        cpu, wall = best[name]
        runs_counted = 1 if name == "grouped" else args.repeat
        print(f"{label:37s} cpu {cpu:6.2f} s, wall {wall:6.2f} s (whole process, best of {runs_counted})")
    print(f"ratio with the official per-category and per-task views: {best['grouped'][0] / best['ours'][0]:.2f}")
    print(f"wall-time ratio: {best['reference'][1] / best['ours'][1]:.2f}")
    print(f"ratio: {best['reference'][0] / best['ours'][0]:.2f}")


if __name__ == "__main__":
    main()
