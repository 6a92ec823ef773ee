"""Per-run overhead of a study: the old path against a resident start model and fused fine-tune + evaluate.

A small STL study (issue 18): a T5 of ~60M parameters built from a config (d_model 512, d_ff
2048, 8 + 8 layers, ByT5's byte tokenizer), two unseen tasks of the synthetic collection, sizes
8 and 16, one epoch at batch 8, 8 test instances per task, on the CPU, one thread. The same
study runs twice in this process, each into a fresh folder from a cold start (caches cleared):
  after   executor.resident and executor.fuse on (the default): the start model is reset in
          place per run; each evaluation runs on its fine-tune's model in memory; no model saved;
  before  both off (the previous path): a deep copy of the cached start model per run, the
          fine-tuned model saved, then read back by its evaluate run.
"after" runs first, so library warm-up counts against it, not against "before". Each side first
builds the start model into its worker's cache (once per worker, the same either way; printed,
not counted), so the runs show the steady state of a long study.
Every run's seconds are split, by timing the functions that do each part, into load/reset,
tokenization, training steps, save, reload, generation and scoring; the run's overhead is its
wall (status.json) less its training steps and generation. The last line is
`ratio: <overhead seconds before / after>` (goal >= 5), each side's best of --repeats
alternating repeats (the machine may be shared; the runs' own work is the same every time).

    .venv/bin/python benchmarks/study_overhead.py [--layers 8] [--d-model 512] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

PARTS = ("load/reset", "tokenize", "steps", "save", "reload", "generate", "score")


class Clock:
    """Seconds per (run, part), from wrapped functions; `run` is the run executing now."""

    def __init__(self) -> None:
        self.seconds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.run = "?"

    def wrap(self, module: Any, name: str, part: str | Callable[..., str]) -> None:
        inner = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                label = part(*args, **kwargs) if callable(part) else part
                self.seconds[self.run][label] += time.perf_counter() - started

        setattr(module, name, timed)


def instrument(clock: Clock) -> None:
    from quickstudy.evaluate import evaluation, generate
    from quickstudy.study import execute
    from quickstudy.train import loop, stages

    inner_run = execute.leased_execute_run

    def leased(spec: Any, *args: Any, **kwargs: Any) -> Any:
        clock.run = spec.id
        return inner_run(spec, *args, **kwargs)

    execute.leased_execute_run = leased
    clock.wrap(execute, "load_start_model", lambda spec, *a, **k: "load/reset" if spec.kind.trains else "reload")
    clock.wrap(execute, "in_memory_start", "reload")
    clock.wrap(stages, "training_features", "tokenize")
    clock.wrap(loop, "save_model", "save")
    clock.wrap(stages, "train_model", "steps")  # less its save, below
    clock.wrap(evaluation, "generate_predictions", "generate")
    clock.wrap(evaluation, "predictions_for", "score")
    clock.wrap(generate, "write_evaluation", "score")


def study_config(collection: Path, args: argparse.Namespace, fused: bool) -> Any:
    from quickstudy.study.config import StudyConfig

    model = {
        "name_or_path": "tiny-t5",
        "init_seed": 1,
        "tiny_config": {
            "d_model": args.d_model, "d_ff": 4 * args.d_model, "d_kv": 64, "num_heads": args.d_model // 64,
            "num_layers": args.layers, "num_decoder_layers": args.layers, "dropout_rate": 0.1,
        },
    }  # fmt: skip
    return StudyConfig.model_validate(
        {
            "name": "overhead",
            "collection": str(collection),
            "tasks": {"unseen": {"names": ["task066_coref_referent", "task031_analogy_solve"]}},
            "splits": {"n_test": 8, "n_validation": 2},
            "models": {"start": model},
            "arms": [{"name": "stl", "start": "start", "encoding": "def_pos2", "setting": "stl", "sizes": [8, 16]}],
            "training": {
                "learning_rate": 1e-4,
                "num_epochs": 1,
                "batch_size": 8,
                "max_source_length": 128,
                "max_target_length": 16,
                "precision": "fp32",
                "checkpoint_every_steps": None,
            },  # fmt: skip
            "generation": {"batch_size": 8, "max_new_tokens": 8, "num_beams": 1},
            "executor": {"kind": "local", "resident": fused, "fuse": fused},
        }
    )


def run_side(
    name: str, clock: Clock, collection: Path, root: Path, args: argparse.Namespace, fused: bool
) -> dict[str, Any]:
    from quickstudy.models.loading import DEFAULT_CACHE, load_model
    from quickstudy.models.spec import ModelSpec
    from quickstudy.study.execute import resident_models
    from quickstudy.study.runner import run_study

    DEFAULT_CACHE.clear()
    resident_models().clear()
    cache = resident_models() if fused else DEFAULT_CACHE
    started = time.perf_counter()  # built once per worker, the same either way: not a run's overhead
    load_model(ModelSpec.model_validate(study_config(collection, args, fused).models["start"]), cache=cache)
    print(f"\n{name}: start model built into the worker's cache in {time.perf_counter() - started:.2f} s (not counted)")
    clock.seconds.clear()
    study_dir = root / name
    result = run_study(study_config(collection, args, fused), study_dir)
    if not result.complete:
        raise SystemExit(f"{name}: the study failed: {result.failed}")
    rows = {}
    for run_id in result.done:
        parts = {part: clock.seconds[run_id].get(part, 0.0) for part in PARTS}
        parts["steps"] -= parts["save"]  # train_model saves inside its own time
        wall = json.loads((study_dir / "runs" / run_id / "status.json").read_text())["wall_seconds"]
        rows[run_id] = {**parts, "wall": wall, "overhead": wall - parts["steps"] - parts["generate"]}
    return rows


def print_side(name: str, rows: dict[str, dict[str, float]]) -> float:
    print(f"{name}: seconds per run ({', '.join(PARTS)}; overhead = wall - steps - generate)")
    print(f"{'run':<28}" + "".join(f"{p:>11}" for p in (*PARTS, "wall", "overhead", "share")))
    for run_id, row in rows.items():
        share = row["overhead"] / row["wall"] if row["wall"] else 0.0
        print(f"{run_id:<28}" + "".join(f"{row[p]:>11.3f}" for p in (*PARTS, "wall", "overhead")) + f"{share:>11.1%}")
    total, wall = sum(r["overhead"] for r in rows.values()), sum(r["wall"] for r in rows.values())
    print(f"{name}: overhead {total:.2f} s of {wall:.2f} s ({total / wall:.1%} outside training steps and generation)")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--d-model", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2, help="alternating after/before; the best of each counts")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from quickstudy.data.synth import write_synth_collection
    from quickstudy.models.loading import load_model
    from quickstudy.models.spec import ModelSpec

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_synth_collection(root / "collection", seed=0)
        spec = study_config(root / "collection", args, True).models["start"]
        loaded = load_model(ModelSpec.model_validate(spec))
        print(f"model: T5 from a config, {sum(p.numel() for p in loaded.model.parameters()) / 1e6:.1f}M parameters")
        del loaded
        clock = Clock()
        instrument(clock)
        totals: dict[str, list[float]] = {"after": [], "before": []}
        for repeat in range(args.repeats):
            for name, fused in (("after", True), ("before", False)):
                rows = run_side(name, clock, root / "collection", root / f"{repeat}", args, fused)
                totals[name].append(print_side(name, rows))
    after, before = min(totals["after"]), min(totals["before"])
    print(f"\noverhead, best of {args.repeats}: {before:.2f} s before, {after:.2f} s after")
    print(f"ratio: {before / after:.2f}")


if __name__ == "__main__":
    main()
