"""SuperNI's official metrics (default English track), computed fast.

The reference is `compute_metrics` in Tk-Instruct's `src/compute_metrics.py` (the same
functions as allenai/natural-instructions `eval/automatic/evaluation.py`):

- exact match: `normalize_answer` (lower-case, drop `string.punctuation`, collapse white
  space; unlike SQuAD it keeps articles) of prediction and reference are equal;
- ROUGE-1 / ROUGE-L: F-measure of `rouge_score.rouge_scorer.RougeScorer([type], use_stemmer=True)`
  (its default tokenizer and the Porter stemmer);
- each the maximum over the references; group value = round(100 * sum / n, 4).

(The xlingual track swaps in GPT-2's tokenizer; quickstudy scores the English track only.)

The reference builds a new RougeScorer for every (prediction, reference) pair and metric.
Here one `RougeMetrics` stems each distinct word once and tokenizes each distinct text
once, and computes the LCS length with a bit-parallel algorithm; the F-measures come from
the same integers through the same expression as rouge_score's `scoring.fmeasure`, so they
are identical (tests/test_evaluate_metrics.py checks this against plain rouge_score;
benchmarks/score.py measures the speed-up). For a fast start it imports neither NLTK's
package (see porter.py) nor rouge_score.scoring (which imports numpy).
"""

from __future__ import annotations

import gc
import re
import string
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from rouge_score import tokenize as rouge_tokenize

from quickstudy.evaluate.porter import porter_stemmer
from quickstudy.evaluate.predictions import InstanceScores, PredictionRecord

METRICS = ("exact_match", "rouge1", "rougeL")

# SuperNI's own per-category metric: Tk-Instruct `src/compute_metrics.py`, the
# `category_metrics` list in its __main__ (exact match where the output is a label,
# ROUGE-L where it is free text). It covers the 12 test categories; any other
# category falls back to ROUGE-L, the metric SuperNI reports overall.
SUPERNI_CATEGORY_METRIC = {
    "Textual Entailment": "exact_match",
    "Cause Effect Classification": "exact_match",
    "Coreference Resolution": "exact_match",
    "Dialogue Act Recognition": "exact_match",
    "Answerability Classification": "exact_match",
    "Word Analogy": "exact_match",
    "Overlap Extraction": "rougeL",
    "Keyword Tagging": "rougeL",
    "Question Rewriting": "rougeL",
    "Title Generation": "rougeL",
    "Data to Text": "rougeL",
    "Grammar Error Correction": "rougeL",
}

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_WORD_RE = re.compile(r"[a-z0-9]+")


def normalize_answer(text: str) -> str:
    """SuperNI's normalize_answer: lower-case, remove ASCII punctuation, collapse white space."""
    return " ".join(text.lower().translate(_PUNCTUATION).split())


def group_key(name: str) -> str:
    """A category as the reference scorer keys it: lower-case, white space runs to '_'."""
    return "_".join(name.lower().split())


def superni_category_metric(category: str) -> str:
    """The metric SuperNI reports for a category (see SUPERNI_CATEGORY_METRIC)."""
    return _METRIC_BY_GROUP_KEY.get(group_key(category), "rougeL")


_METRIC_BY_GROUP_KEY = {group_key(name): metric for name, metric in SUPERNI_CATEGORY_METRIC.items()}


class _Tokens:
    """A text's rouge tokens with what the two scores need, computed once per text."""

    __slots__ = ("tokens", "unigrams", "_positions")

    def __init__(self, tokens: tuple[str, ...]):
        self.tokens = tokens
        self.unigrams: dict[str, int] = {}
        for token in tokens:
            self.unigrams[token] = self.unigrams.get(token, 0) + 1
        self._positions: dict[str, int] | None = None

    @property
    def positions(self) -> dict[str, int]:
        """token -> bit mask of the positions it occupies; built on the first LCS that needs it."""
        if self._positions is None:
            self._positions = {}
            for index, token in enumerate(self.tokens):
                self._positions[token] = self._positions.get(token, 0) | (1 << index)
        return self._positions


class _RawScores(NamedTuple):
    """Per-instance scores as fractions, summed exactly as the reference sums them."""

    exact_match: int
    rouge1: float
    rougeL: float

    def x100(self) -> InstanceScores:
        return InstanceScores(100.0 * self.exact_match, 100.0 * self.rouge1, 100.0 * self.rougeL)


class RougeMetrics:
    """Official SuperNI per-instance scores with caches shared across calls.

    Keep one instance for a whole predictions file (or many): each distinct word is
    stemmed once, each distinct text tokenized once, each distinct (prediction,
    references) scored once.
    """

    def __init__(self) -> None:
        self._stemmer = porter_stemmer()
        self._word_tokens: dict[str, str] = {}
        self._tokens: dict[str, _Tokens] = {}
        self._normalized: dict[str, str] = {}
        self._scored: dict[tuple[str, tuple[str, ...]], _RawScores] = {}

    def _word_token(self, word: str) -> str:
        """rouge_score's rule for one word: stemmed when longer than 3 characters,
        "" when the result is not a valid token (rouge_score then drops it)."""
        token = self._word_tokens.get(word)
        if token is None:
            # Every Porter rule (and NLTK's irregular forms) needs a word ending in a
            # letter, so a word ending in a digit stems to itself: skip the stemmer.
            token = self._stemmer.stem(word) if len(word) > 3 and not word[-1].isdigit() else word
            token = self._word_tokens[word] = token if rouge_tokenize.VALID_TOKEN_RE.match(token) else ""
        return token

    def tokens(self, text: str) -> _Tokens:
        """The text's tokens exactly as rouge_score.tokenize.tokenize(text, PorterStemmer()) makes them."""
        cached = self._tokens.get(text)
        if cached is None:
            # rouge_score.tokenize lower-cases, turns runs of non-[a-z0-9] into spaces and
            # splits: the words are exactly the runs of [a-z0-9] in the lower-cased text.
            known = self._word_tokens
            tokens = [known[w] if w in known else self._word_token(w) for w in _WORD_RE.findall(text.lower())]
            cached = self._tokens[text] = _Tokens(tuple(filter(None, tokens)))
        return cached

    def _normalize(self, text: str) -> str:
        cached = self._normalized.get(text)
        if cached is None:
            cached = self._normalized[text] = normalize_answer(text)
        return cached

    def rouge(self, prediction: str, reference: str) -> tuple[float, float]:
        """ROUGE-1 and ROUGE-L F-measures, equal to RougeScorer(['rouge1', 'rougeL'], use_stemmer=True)'s."""
        return rouge_fmeasures(self.tokens(reference), self.tokens(prediction))

    def exact_match(self, prediction: str, reference: str) -> bool:
        """SuperNI's exact match: equal after normalize_answer."""
        return self._normalize(prediction) == self._normalize(reference)

    def raw_scores(self, prediction: str, references: Sequence[str]) -> _RawScores:
        key = (prediction, tuple(references))
        cached = self._scored.get(key)
        if cached is None:
            if not references:
                raise ValueError("an instance needs at least one reference")
            candidate, normalized = self.tokens(prediction), self._normalize(prediction)
            exact, rouge1, rougeL = False, 0.0, 0.0
            for reference in references:
                target = self.tokens(reference)
                exact = exact or normalized == self._normalize(reference)
                one, longest = rouge_fmeasures(target, candidate)
                rouge1, rougeL = max(rouge1, one), max(rougeL, longest)
            cached = self._scored[key] = _RawScores(int(exact), rouge1, rougeL)
        return cached

    def instance_scores(self, prediction: str, references: Sequence[str]) -> InstanceScores:
        """One prediction's scores x100, each the maximum over its references."""
        return self.raw_scores(prediction, references).x100()


def rouge_fmeasures(target: _Tokens, candidate: _Tokens) -> tuple[float, float]:
    """ROUGE-1 and ROUGE-L F-measures as rouge_score's _score_ngrams and _score_lcs
    compute them (same integers, same F-measure), from the cached tokens."""
    ours, theirs = target.unigrams, candidate.unigrams
    common = ours.keys() & theirs.keys()
    if not common:  # no overlap: both scores are 0 (and there is no LCS to compute)
        return 0.0, 0.0
    overlap = sum(min(ours[token], theirs[token]) for token in common)
    predicted, wanted = len(candidate.tokens), len(target.tokens)
    rouge1 = fmeasure(overlap / predicted, overlap / wanted)
    lcs = lcs_length(target, candidate)
    return rouge1, fmeasure(lcs / predicted, lcs / wanted)


def fmeasure(precision: float, recall: float) -> float:
    """rouge_score.scoring.fmeasure, the same expression (that module imports numpy)."""
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def lcs_length(first: _Tokens, second: _Tokens) -> int:
    """Length of the longest common subsequence, by the bit-parallel algorithm
    (Allison & Dix 1986; Hyyrö 2004): the longer text's positions are bit masks and
    each token of the shorter one is a few big-integer operations instead of a row of
    the dynamic-programming table. A token absent from the longer text leaves the row
    unchanged, so it is skipped."""
    if len(first.tokens) < len(second.tokens):
        first, second = second, first
    full = (1 << len(first.tokens)) - 1
    row = full
    positions = first.positions
    for token in second.tokens:
        matches = positions.get(token)
        if matches:
            matches &= row
            row = ((row + matches) | (row - matches)) & full
    return len(first.tokens) - row.bit_count()


@dataclass(frozen=True)
class MetricSet:
    """A group's metrics as the reference reports them: x100, rounded to 4 decimals."""

    exact_match: float
    rouge1: float
    rougeL: float
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"exact_match": self.exact_match, "rouge1": self.rouge1, "rougeL": self.rougeL, "n": self.n}


@dataclass(frozen=True)
class CategoryView:
    """SuperNI's headline number for a category: the metric it reports there and its value."""

    metric: str
    value: float


class InstanceResult(NamedTuple):
    task: str
    instance_id: str
    category: str
    scores: InstanceScores


@dataclass(frozen=True)
class ScoreReport:
    """Scores of one predictions file: overall, per task, per category (keyed by the
    category's name as the task file spells it) and per instance in file order."""

    overall: MetricSet
    per_task: dict[str, MetricSet]
    per_category: dict[str, MetricSet]
    superni_category_view: dict[str, CategoryView]
    per_instance: list[InstanceResult]

    @property
    def n(self) -> int:
        return self.overall.n

    def to_json(self, per_instance: bool = True) -> dict[str, Any]:
        """The `metrics.json` layout (and, without per_instance, `quickstudy evaluate --json`)."""
        out: dict[str, Any] = {
            "overall": self.overall.to_json(),
            "per_category": {name: m.to_json() for name, m in self.per_category.items()},
            "per_task": {name: m.to_json() for name, m in self.per_task.items()},
            "superni_category_view": {
                name: {"metric": v.metric, "value": v.value} for name, v in self.superni_category_view.items()
            },
            "n": self.n,
        }
        if per_instance:
            out["per_instance"] = [
                {"task": r.task, "id": r.instance_id, **{k: round(v, 4) for k, v in r.scores.to_json().items()}}
                for r in self.per_instance
            ]
        return out

    def reference_layout(self) -> dict[str, Any]:
        """The same numbers keyed as SuperNI's scorer keys them (`<metric>_for_<group>`)."""

        def flat(groups: dict[str, MetricSet], key=lambda name: name) -> dict[str, float]:
            return {f"{m}_for_{key(name)}": getattr(s, m) for name, s in groups.items() for m in METRICS}

        return {
            "overall": {m: getattr(self.overall, m) for m in METRICS},
            "per_task": flat(self.per_task),
            "per_category": flat(self.per_category, group_key),
            "per_instance_exact_match": [int(r.scores.exact_match == 100.0) for r in self.per_instance],
            "per_instance_rougeL": [round(r.scores.rougeL, 4) for r in self.per_instance],
        }


def _metric_set(raws: list[_RawScores]) -> MetricSet:
    n = len(raws)
    exact, rouge1, rougeL = zip(*raws)
    # Same order of operations as the reference: sum the fractions, then x100 / n, round 4.
    return MetricSet(
        exact_match=round(100.0 * sum(exact) / n, 4),
        rouge1=round(100.0 * sum(rouge1) / n, 4),
        rougeL=round(100.0 * sum(rougeL) / n, 4),
        n=n,
    )


def _grouped(keys: list[str], raws: list[_RawScores]) -> dict[str, MetricSet]:
    groups: dict[str, list[_RawScores]] = {}
    for key, raw in zip(keys, raws):
        groups.setdefault(key, []).append(raw)
    return {key: _metric_set(members) for key, members in groups.items()}


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Scoring allocates many small objects and frees none of them, so the cyclic
    garbage collector only burns time scanning the caches (about 10% of cold scoring)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def score_records(records: Sequence[PredictionRecord], metrics: RougeMetrics | None = None) -> ScoreReport:
    """The official metrics of a predictions file: overall, per task, per category, per instance."""
    if not records:
        raise ValueError("no predictions to score")
    metrics = metrics or RougeMetrics()
    with _gc_paused():
        raws = [metrics.raw_scores(r.prediction, r.references) for r in records]
        per_category = _grouped([r.category for r in records], raws)
        return ScoreReport(
            overall=_metric_set(raws),
            per_task=_grouped([r.task for r in records], raws),
            per_category=per_category,
            superni_category_view={
                name: CategoryView(metric, getattr(scores, metric))
                for name, scores in per_category.items()
                for metric in [superni_category_metric(name)]
            },
            per_instance=[
                InstanceResult(r.task, r.instance_id, r.category, raw.x100()) for r, raw in zip(records, raws)
            ],
        )


def with_scores(records: Iterable[PredictionRecord], metrics: RougeMetrics | None = None) -> list[PredictionRecord]:
    """The records with their per-instance `scores` filled in."""
    metrics = metrics or RougeMetrics()
    return [replace(r, scores=metrics.instance_scores(r.prediction, r.references)) for r in records]
