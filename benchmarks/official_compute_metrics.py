"""SuperNI's official scoring procedure, as a program: the reference for benchmarks/evaluate_process.py.

A faithful copy of the English track of Tk-Instruct's `src/compute_metrics.py` (the same
functions as allenai/natural-instructions `eval/automatic/evaluation.py`): read a
predictions file, then exact match, ROUGE-1 and ROUGE-L overall, per category and per
task, each through `metric_max_over_ground_truths` with a new
`RougeScorer([metric], use_stemmer=True)` per (prediction, reference) pair and metric.
Left out, in the reference's favour: the xlingual track's GPT-2 tokenizer, which the
original builds at import time (it imports transformers and loads `gpt2` from the hub).

    python benchmarks/official_compute_metrics.py --predictions PREDICTIONS.jsonl \
        --compute_per_category_metrics --compute_per_task_metrics
"""

import argparse
import json
import string

from rouge_score import rouge_scorer


def normalize_answer(s):
    """Lower text and remove punctuation, and extra whitespace."""

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_punc(lower(s)))


def exact_match(prediction, ground_truth):
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def rouge1(prediction, ground_truth):
    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    scores = scorer.score(prediction=prediction, target=ground_truth)
    return scores["rouge1"].fmeasure


def rougeL(prediction, ground_truth):
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = scorer.score(prediction=prediction, target=ground_truth)
    return scores["rougeL"].fmeasure


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


def compute_metrics(predictions, references):
    assert len(predictions) == len(references), (
        f"# of predictions {len(predictions)} doesn't match # of references {len(references)}."
    )
    em, r1, rl = 0, 0, 0
    for pred, gold in zip(predictions, references):
        assert isinstance(gold, list)
        em += metric_max_over_ground_truths(exact_match, prediction=pred, ground_truths=gold)
        r1 += metric_max_over_ground_truths(rouge1, prediction=pred, ground_truths=gold)
        rl += metric_max_over_ground_truths(rougeL, prediction=pred, ground_truths=gold)
    metrics = {
        "exact_match": 100.0 * em / len(references),
        "rouge1": 100.0 * r1 / len(references),
        "rougeL": 100.0 * rl / len(references),
    }
    return {k: round(v, 4) for k, v in metrics.items()}


def compute_grouped_metrics(predictions, references, groups):
    assert len(predictions) == len(references) == len(groups)
    examples_by_group = {}
    for pred, gold, group in zip(predictions, references, groups):
        if group not in examples_by_group:
            examples_by_group[group] = []
        examples_by_group[group].append((pred, gold))
    results = {}
    for group, group_examples in examples_by_group.items():
        task_predictions, task_references = zip(*group_examples)
        group_metrics = compute_metrics(task_predictions, task_references)
        for metric, value in group_metrics.items():
            results[f"{metric}_for_{group}"] = value
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--predictions", required=True, help="Path to predictions file.")
    parser.add_argument("--compute_per_category_metrics", action="store_true")
    parser.add_argument("--compute_per_task_metrics", action="store_true")
    args = parser.parse_args()

    with open(args.predictions) as fin:
        examples = [json.loads(line) for line in fin]
    predictions = [e["prediction"] for e in examples]
    references = [e["Instance"]["output"] for e in examples]
    tasks = [e["Task"] for e in examples]

    results = compute_metrics(predictions, references)
    print("======== Overall Metrics ========")
    for metric, value in results.items():
        print(f"{metric}: {value}")
    if args.compute_per_category_metrics:
        print("======== Metrics per Category ========")
        categories = ["_".join(e["Categories"][0].lower().split()) for e in examples]
        for metric, value in compute_grouped_metrics(predictions, references, categories).items():
            print(f"{metric}: {value}")
    if args.compute_per_task_metrics:
        print("======== Metrics per Task ========")
        for metric, value in compute_grouped_metrics(predictions, references, tasks).items():
            print(f"{metric}: {value}")
