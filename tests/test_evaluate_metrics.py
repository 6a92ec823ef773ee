"""SuperNI metrics: the golden numbers, and equality with plain rouge-score."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
from nltk.stem.porter import PorterStemmer
from rouge_score import rouge_scorer, scoring
from rouge_score import tokenize as rouge_tokenize

from quickstudy.data.collection import Collection
from quickstudy.evaluate.metrics import (
    RougeMetrics,
    _Tokens,
    fmeasure,
    lcs_length,
    normalize_answer,
    score_records,
    superni_category_metric,
    with_scores,
)
from quickstudy.evaluate.porter import porter_stemmer
from quickstudy.evaluate.predictions import PredictionRecord, read_predictions

TRICKY = [
    "",
    "   ",
    "!!! ... ???",
    "-",
    "42",
    "3.14159 and 2,718",
    "(8, 9)",
    "Café naïve résumé",
    "日本語のテキスト",
    "İstanbul ΣΊΣΥΦΟΣ straße",
    "The the THE the",
    "running runs ran runner easily fairly",
    "generalizations conditional relational hopefully",
    "a b c a b c a b c",
    "Loose-Fish.owaugustGd",
    "\tNo\n",
    "don't won't it's",
    "x" * 40,
]


@pytest.fixture(scope="module")
def golden(golden_dir):
    return read_predictions(golden_dir / "predictions.jsonl"), json.loads((golden_dir / "metrics.json").read_text())


@pytest.mark.superni
def test_golden_metrics_reproduced_overall_per_task_category_instance(golden):
    records, expected = golden
    ours = score_records(records).reference_layout()
    assert ours["overall"] == expected["overall"]
    assert ours["per_task"] == expected["per_task"]
    assert ours["per_category"] == expected["per_category"]
    assert ours["per_instance_exact_match"] == expected["per_instance_exact_match"]
    assert ours["per_instance_rougeL"] == expected["per_instance_rougeL"]
    assert len(ours["per_instance_rougeL"]) == 479


@pytest.mark.superni
def test_report_json_views(golden):
    records, expected = golden
    report = score_records(records).to_json()
    assert report["n"] == 479
    assert report["overall"]["rougeL"] == expected["overall"]["rougeL"]
    assert report["per_category"]["Textual Entailment"]["n"] == 20
    assert report["per_task"]["task039_qasc_find_overlapping_words"]["rouge1"] == 61.0
    # SuperNI's own view: exact match for classification-like categories, ROUGE-L for generation.
    view = report["superni_category_view"]
    assert view["Textual Entailment"] == {
        "metric": "exact_match",
        "value": expected["per_category"]["exact_match_for_textual_entailment"],
    }
    assert view["Title Generation"] == {
        "metric": "rougeL",
        "value": expected["per_category"]["rougeL_for_title_generation"],
    }
    assert [row["id"] for row in report["per_instance"]] == [r.instance_id for r in records]


def test_superni_category_metric_mapping():
    assert superni_category_metric("Answerability Classification") == "exact_match"
    assert superni_category_metric("answerability_classification") == "exact_match"
    assert superni_category_metric("Data to Text") == "rougeL"
    assert superni_category_metric("Program Execution") == "rougeL"  # not a test category
    assert superni_category_metric("unknown") == "rougeL"


def test_normalize_answer_keeps_articles_drops_ascii_punctuation():
    assert normalize_answer("  The  Cat,\tsat!! ") == "the cat sat"
    assert normalize_answer("a an the") == "a an the"
    assert normalize_answer("“Quoted”…") == "“quoted”…"  # only string.punctuation is removed
    assert normalize_answer("ORGANISMS!!") == normalize_answer("organisms")
    assert normalize_answer("") == ""


def _plain_rouge(prediction: str, reference: str) -> tuple[float, float]:
    scores = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True).score(
        target=reference, prediction=prediction
    )
    return scores["rouge1"].fmeasure, scores["rougeL"].fmeasure


def test_fast_rouge_equals_rouge_score_on_tricky_strings():
    metrics = RougeMetrics()
    for prediction in TRICKY:
        for reference in TRICKY:
            assert metrics.rouge(prediction, reference) == _plain_rouge(prediction, reference), (prediction, reference)


@pytest.mark.superni
def test_fast_rouge_equals_rouge_score_on_real_texts(sample_dir, golden):
    rng = random.Random(7)
    texts = [r.prediction for r in golden[0]]
    collection = Collection(sample_dir)
    for name in collection.task_names()[::3]:
        instances = collection.task(name).instances[:6]
        texts += [i.references[0] for i in instances] + [i.input for i in instances[:2]]
    metrics = RougeMetrics()
    for _ in range(400):
        prediction, reference = rng.choice(texts), rng.choice(texts)
        assert metrics.rouge(prediction, reference) == _plain_rouge(prediction, reference)


def test_words_ending_in_a_digit_are_their_own_stem():
    stemmer = PorterStemmer()
    rng = random.Random(5)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    words = [
        "".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) + rng.choice("0123456789") for _ in range(3000)
    ]
    words += ["running1", "flies2", "agreed9", "controll0", "1111", "2024"]
    assert all(stemmer.stem(word) == word for word in words)
    metrics = RougeMetrics()
    assert metrics.tokens(" ".join(words)).tokens == tuple(rouge_tokenize.tokenize(" ".join(words), stemmer))


def test_bit_parallel_lcs_equals_dynamic_programming_table():
    rng = random.Random(3)
    for _ in range(300):
        target = tuple(rng.choice("abcde") for _ in range(rng.randint(1, 150)))
        candidate = tuple(rng.choice("abcdef") for _ in range(rng.randint(0, 150)))
        expected = rouge_scorer._lcs_table(list(target), list(candidate))[-1][-1]
        assert lcs_length(_Tokens(target), _Tokens(candidate)) == expected
        assert lcs_length(_Tokens(candidate), _Tokens(target)) == expected


def test_instance_scores_take_the_best_reference():
    metrics = RougeMetrics()
    scores = metrics.instance_scores("The cat sat.", ["a dog", "the cat sat", "cat"])
    assert scores.exact_match == 100.0 and scores.rouge1 == 100.0 and scores.rougeL == 100.0
    partial = metrics.instance_scores("the cat", ["the cat sat on the mat", "dog"])
    assert partial.exact_match == 0.0
    assert partial.rougeL == pytest.approx(100 * 2 * (1.0 * 2 / 6) / (1.0 + 2 / 6))
    with pytest.raises(ValueError):
        metrics.instance_scores("x", [])


def test_missing_categories_score_as_unknown_and_with_scores_fills_records():
    records = [
        PredictionRecord(task="t1", instance_id="1", input="", references=("Yes",), prediction="yes"),
        PredictionRecord(task="t1", instance_id="2", input="", references=("No",), prediction="yes"),
    ]
    report = score_records(records)
    assert list(report.per_category) == ["unknown"]
    assert report.per_category["unknown"].exact_match == 50.0
    scored = with_scores(records)
    assert [r.scores.exact_match for r in scored] == [100.0, 0.0]


# Prediction / reference pairs whose words match only after stemming: plurals, -ing / -ed,
# -ies, and the irregular forms NLTK's Porter stemmer maps (skies -> sky, dying -> die).
# Chosen so that the identity, Porter's original algorithm (NLTK's ORIGINAL_ALGORITHM and
# MARTIN_EXTENSIONS modes) and Snowball's English stemmer each score some pair differently.
INFLECTED = [
    ("the cats were running", "a cat runs"),
    ("she played", "playing and plays"),
    ("studies of ponies", "study a pony"),
    ("blue skies", "the sky is blue"),
    ("dying stars", "stars die"),
    ("tying knots", "tie the knot"),
    ("lying about lies", "lie"),
    ("taxes on boxes", "tax the box"),
    ("hopping and hoped", "hopped hope"),
    ("agreed", "agreeing to agree"),
    ("relational conditions", "relate conditional"),
    ("generously", "generalization"),
    ("fairly", "fair"),
    ("news", "new"),
    ("the proceedings proceed", "proceeding"),
    ("ties and dies", "tie die"),
    ("denied cries", "denies cried"),
    ("Flies FLY", "flying fly"),
]


def _rouge_with(stemmer, prediction: str, reference: str) -> tuple[float, float]:
    """rouge_score's ROUGE-1 / ROUGE-L with another stemmer in place of the Porter one."""
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
    scorer._tokenizer._stemmer = stemmer
    scores = scorer.score(target=reference, prediction=prediction)
    return scores["rouge1"].fmeasure, scores["rougeL"].fmeasure


def test_inflected_pairs_tell_the_porter_stemmer_apart_from_others():
    """The pairs below are a real check: each other stemmer scores at least one of them differently."""
    from nltk.stem.snowball import EnglishStemmer

    class Identity:
        def stem(self, word: str) -> str:
            return word

    others = [
        Identity(),
        PorterStemmer(PorterStemmer.ORIGINAL_ALGORITHM),
        PorterStemmer(PorterStemmer.MARTIN_EXTENSIONS),
        EnglishStemmer(),
    ]
    for other in others:
        differing = [pair for pair in INFLECTED if _rouge_with(other, *pair) != _plain_rouge(*pair)]
        assert differing, type(other).__name__


def test_fast_rouge_equals_rouge_score_where_stemming_matters():
    metrics = RougeMetrics()
    for prediction, reference in INFLECTED:
        assert metrics.rouge(prediction, reference) == _plain_rouge(prediction, reference), (prediction, reference)
        assert metrics.rouge(reference, prediction) == _plain_rouge(reference, prediction), (reference, prediction)


def test_tokens_stem_inflected_words_as_rouge_score_does():
    stemmer = PorterStemmer()
    text = " ".join(word for pair in INFLECTED for word in pair)
    assert RougeMetrics().tokens(text).tokens == tuple(rouge_tokenize.tokenize(text, stemmer))


def test_best_reference_chosen_after_stemming():
    """Stemming decides which reference is best: the scores are the maximum rouge-score gives."""
    records = [
        PredictionRecord(
            task="t", instance_id=str(index), input="", references=(reference, "unrelated words here"), prediction=p
        )
        for index, (p, reference) in enumerate(INFLECTED)
    ]
    records.append(
        PredictionRecord(
            task="t", instance_id="x", input="", references=("the skies darken", "a sky darkening"), prediction="sky"
        )
    )
    for record, result in zip(records, score_records(records).per_instance):
        best = [max(values) for values in zip(*(_plain_rouge(record.prediction, r) for r in record.references))]
        assert (result.scores.rouge1, result.scores.rougeL) == (100.0 * best[0], 100.0 * best[1]), record.prediction


def test_porter_stemmer_is_nltks_and_leaves_nltk_unimported():
    """In a fresh process: the stemmer loads without NLTK's package (nor scipy), stems as
    nltk.stem.porter does, and a later `import nltk` is the whole package."""
    words = sorted({word for pair in INFLECTED for text in pair for word in text.lower().split()})
    script = f"""
import sys
from quickstudy.evaluate.metrics import RougeMetrics
from quickstudy.evaluate.porter import porter_stemmer
RougeMetrics().tokens("running skies")
ours = [porter_stemmer().stem(w) for w in {words!r}]
assert not any(name == "nltk" or name.startswith(("nltk.", "scipy", "numpy")) for name in sys.modules), sorted(sys.modules)
import nltk
from nltk.stem.porter import PorterStemmer
assert hasattr(nltk, "word_tokenize")
assert ours == [PorterStemmer().stem(w) for w in {words!r}], ours
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert [porter_stemmer().stem(w) for w in words] == [PorterStemmer().stem(w) for w in words]


def test_fmeasure_is_rouge_scores():
    rng = random.Random(11)
    pairs = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)] + [(rng.random(), rng.random()) for _ in range(2000)]
    pairs += [(a / b, a / c) for a in range(1, 30) for b in range(a, 40) for c in range(a, 40, 3)]
    assert all(fmeasure(p, r) == scoring.fmeasure(p, r) for p, r in pairs)
