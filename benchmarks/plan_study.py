"""Planning's cost in task-file parses: `quickstudy study plan` against one parse of every file.

Builds a synthetic SuperNI-format collection in a temporary folder (--tasks files of
--instances instances each, a fifth of them unseen; unseen held-out inputs repeat in other
tasks, so the leakage audit has work) and times, each as a whole process, best of --repeats:
  plan       `.venv/bin/quickstudy study plan configs/smoke.yaml` on it, every task selected
             (pre-finetuning on, so seen tasks are audited too);
  one parse  a process that json-loads every task file once (the floor: planning must read
             each file at least once).
It also counts, in this process, how many times `plan_study` parses each task file (the
loader's `task_from_json` calls). The last lines are `reads per task file: X` (the most for
any file; 1 is the goal, the old planner parsed an unseen file 4 times and a seen file twice)
and `ratio: <plan seconds / one-parse seconds>` (lower is better; the process start-up and
the plan's own work count against plan).

    .venv/bin/python benchmarks/plan_study.py [--tasks 300] [--instances 3000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
CONFIG = PROJECT / "configs" / "smoke.yaml"
ONE_PARSE = "import json, pathlib, sys\nfor path in sorted(pathlib.Path(sys.argv[1]).glob('*.json')):\n    json.loads(path.read_bytes())\n"


def write_collection(root: Path, n_tasks: int, n_instances: int, seed: int = 0) -> list[str]:
    """The collection's task files and its default split; returns the overrides that select every task."""
    rng = random.Random(seed)
    names = [f"task{index:04d}_synthetic" for index in range(n_tasks)]
    unseen = names[: max(1, n_tasks // 5)]
    (root / "tasks").mkdir(parents=True)
    held_out = []
    for name in names:
        inputs = [
            f"{name} input {i} " + " ".join(rng.choices(("red", "blue", "dog", "cat", "runs"), k=12))
            for i in range(n_instances)
        ]
        if held_out:  # a few held-out inputs of earlier unseen tasks, in this task's pool
            for k in range(5):
                inputs[-1 - k] = rng.choice(held_out)
        if name in unseen:
            held_out += inputs[:110]
        task = {
            "Definition": [f"Repeat the input of {name}."],
            "Categories": ["Program Execution"],
            "Instances": [
                {"id": f"{name}-{i}", "input": text, "output": [text.upper()]} for i, text in enumerate(inputs)
            ],
        }
        (root / "tasks" / f"{name}.json").write_text(json.dumps(task))
    split = root / "splits" / "default"
    split.mkdir(parents=True)
    (split / "test_tasks.txt").write_text("\n".join(unseen) + "\n")
    (split / "train_tasks.txt").write_text("\n".join(name for name in names if name not in unseen) + "\n")
    return [f"collection={root}", "tasks.unseen.names=null", "tasks.seen.max_tasks=null"]


def best_seconds(command: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def parses_per_file(overrides: list[str]) -> Counter[str]:
    """How many times planning parses each task file, counted in this process."""
    import quickstudy.data.collection as collection_module
    from quickstudy.study.config import load_study_config
    from quickstudy.study.plan import plan_study

    parses: Counter[str] = Counter()
    real = collection_module.task_from_json

    def counted(raw, name, where, *args, **kwargs):
        parses[where] += 1
        return real(raw, name, where, *args, **kwargs)

    collection_module.task_from_json = counted
    try:
        plan_study(load_study_config(CONFIG, overrides))
    finally:
        collection_module.task_from_json = real
    return parses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--instances", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "collection"
        overrides = write_collection(root, args.tasks, args.instances)
        size = sum(path.stat().st_size for path in (root / "tasks").glob("*.json"))
        print(f"collection: {args.tasks} task files x {args.instances} instances, {size / 1e6:.0f} MB")
        quickstudy = str(Path(sys.executable).parent / "quickstudy")
        plan_command = [quickstudy, "study", "plan", str(CONFIG), *[f"--set={item}" for item in overrides]]
        one_parse = best_seconds([sys.executable, "-c", ONE_PARSE, str(root / "tasks")], args.repeats)
        plan = best_seconds(plan_command, args.repeats)
        parses = parses_per_file(overrides)
        print(f"one parse of every file: {one_parse:.2f} s; study plan: {plan:.2f} s")
        print(f"task files parsed: {len(parses)} of {args.tasks}")
        print(f"reads per task file: {max(parses.values())}")
        print(f"ratio: {plan / one_parse:.2f}")


if __name__ == "__main__":
    main()
