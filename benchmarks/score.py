"""Scoring speed: quickstudy's metrics against a straightforward per-pair use of rouge-score.

Builds at least 11,810 predictions (the size of a full study's test set) from the sample
tasks' real instances, with varied predictions: the reference itself, another
instance's answer, a truncated answer, case and punctuation changes, extra words, the
instance's own input (long texts) and the empty string. Scores them with
`quickstudy.evaluate.metrics.score_records` and with the reference approach, a new
`RougeScorer(['rouge1', 'rougeL'], use_stemmer=True)` for every (prediction, reference)
pair, checks every per-instance score is identical, and prints the speed ratio last
(CPU time, best of --repeat runs). For context it also times, once, what Tk-Instruct's
`compute_metrics` does: a new scorer per metric and pair, so each text is tokenized twice.

    .venv/bin/python benchmarks/score.py [--collection ../shared/superni-sample] [--min-predictions 11810]
"""

from __future__ import annotations

import argparse
import random
import time

from rouge_score import rouge_scorer

from quickstudy.data.collection import Collection
from quickstudy.evaluate.metrics import normalize_answer, score_records
from quickstudy.evaluate.predictions import PredictionRecord
from realdata import SAMPLE  # noqa: E402

DEFAULT_COLLECTION = SAMPLE  # QUICKSTUDY_SUPERNI_SAMPLE


def varied_predictions(collection: Collection, minimum: int, seed: int = 0) -> list[PredictionRecord]:
    """Predictions made from real instances, each instance once per variant, cycling until `minimum`."""
    rng = random.Random(seed)
    base = []
    for task in collection.tasks():
        answers = [instance.references[0] for instance in task.instances]
        for instance in task.instances:
            reference = instance.references[0]
            words = reference.split()
            variants = [
                reference,
                rng.choice(answers),
                " ".join(words[: max(1, len(words) // 2)]),
                reference.upper() + "!!",
                f"the {reference} running quickly",
                instance.input,
                "",
            ]
            for prediction in variants:
                base.append((task, instance, prediction))
    records = []
    while len(records) < minimum:
        for task, instance, prediction in base:
            records.append(
                PredictionRecord(
                    task=task.name,
                    instance_id=f"{instance.id}-{len(records)}",
                    input=instance.input,
                    references=instance.references,
                    prediction=prediction,
                    categories=tuple(task.categories),
                )
            )
    return records


def reference_scores(record: PredictionRecord) -> tuple[float, float, float]:
    """Exact match, ROUGE-1, ROUGE-L (x100) with a new scorer per pair, as the official script does."""
    exact, rouge1, rougeL = 0.0, 0.0, 0.0
    for reference in record.references:
        scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
        scores = scorer.score(target=reference, prediction=record.prediction)
        exact = max(exact, float(normalize_answer(record.prediction) == normalize_answer(reference)))
        rouge1 = max(rouge1, scores["rouge1"].fmeasure)
        rougeL = max(rougeL, scores["rougeL"].fmeasure)
    return 100.0 * exact, 100.0 * rouge1, 100.0 * rougeL


def official_scores(record: PredictionRecord) -> tuple[float, float]:
    """ROUGE-1, ROUGE-L (x100) as Tk-Instruct's compute_metrics does: a new scorer per metric and pair."""
    best = {}
    for kind in ("rouge1", "rougeL"):
        best[kind] = max(
            rouge_scorer.RougeScorer([kind], use_stemmer=True)
            .score(target=t, prediction=record.prediction)[kind]
            .fmeasure
            for t in record.references
        )
    return 100.0 * best["rouge1"], 100.0 * best["rougeL"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", default=str(DEFAULT_COLLECTION))
    parser.add_argument("--min-predictions", type=int, default=11_810)
    parser.add_argument("--repeat", type=int, default=5, help="timings are the best of this many runs of each")
    args = parser.parse_args()

    records = varied_predictions(Collection(args.collection), args.min_predictions)
    pairs = sum(len(r.references) for r in records)
    print(f"predictions: {len(records)}  (prediction, reference) pairs: {pairs}")

    # Best of several interleaved runs; each of our runs starts from a fresh scorer (cold
    # caches). The ratio uses CPU time (time.process_time): on a machine shared with other
    # work, wall time mostly measures the other work. Wall times are printed too.
    reference_cpu = reference_wall = ours_cpu = ours_wall = float("inf")
    for _ in range(args.repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        reference = [reference_scores(r) for r in records]
        reference_cpu = min(reference_cpu, time.process_time() - cpu)
        reference_wall = min(reference_wall, time.perf_counter() - wall)
        wall, cpu = time.perf_counter(), time.process_time()
        report = score_records(records)
        ours_cpu = min(ours_cpu, time.process_time() - cpu)
        ours_wall = min(ours_wall, time.perf_counter() - wall)

    ours = [(r.scores.exact_match, r.scores.rouge1, r.scores.rougeL) for r in report.per_instance]
    mismatches = sum(a != b for a, b in zip(ours, reference))
    if mismatches or len(ours) != len(reference):
        raise SystemExit(f"scores differ from rouge-score on {mismatches} of {len(records)} predictions")
    print("per-instance scores identical to rouge-score: yes")
    print(
        f"reference (new RougeScorer per pair): cpu {reference_cpu:.2f} s, wall {reference_wall:.2f} s (best of {args.repeat})"
    )
    print(f"quickstudy score_records:            cpu {ours_cpu:.2f} s, wall {ours_wall:.2f} s (best of {args.repeat})")
    cpu = time.process_time()
    official = [official_scores(r) for r in records]
    official_cpu = time.process_time() - cpu
    if official != [(r1, rl) for _, r1, rl in ours]:
        raise SystemExit("scores differ from the official per-metric scoring")
    print(
        f"official style (new scorer per metric and pair): cpu {official_cpu:.2f} s, ratio {official_cpu / ours_cpu:.2f}"
    )
    print(f"wall-time ratio: {reference_wall / ours_wall:.2f}")
    print(f"ratio: {reference_cpu / ours_cpu:.2f}")


if __name__ == "__main__":
    main()
