"""Where a sample size sits on the x axis, and what fraction of the train pool it is.

x for a size label is the mean number of training instances actually used per task:
- from the specs' `train_instances` (per task) when the study wrote them;
- else from `train_pool` (per task): min(size, pool) for a number, the pool for "all",
  round(pool x p) for "p%";
- else the nominal number; "all" with nothing known is drawn past the largest
  numeric size (2x) and flagged as a placeholder.
The fraction of training data, as in the thesis's Table 4.3, is
sum over tasks of instances used / sum over tasks of the train pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quickstudy.report.results import ZERO_SHOT_SIZE, StudyResults


@dataclass(frozen=True)
class SizeInfo:
    label: str
    x: float  # mean training instances per task
    total: int | None  # instances used over all tasks
    fraction: float | None  # total / train pool (0-1)
    placeholder: bool = False  # x is a drawing position only (actual size unknown)

    @property
    def tick(self) -> str:
        if self.label == "all":
            return "all (size unknown)" if self.placeholder else f"all\n(≈{self.x:,.0f})"
        return self.label


def nominal(label: str) -> float | None:
    """The number in a numeric size label; None for "all" and percentages."""
    try:
        return float(label)
    except ValueError:
        return None


def _counts_from_pool(label: str, pool: dict[str, int]) -> dict[str, int]:
    if label == "all":
        return dict(pool)
    if label.endswith("%"):
        share = float(label[:-1]) / 100
        return {task: round(n * share) for task, n in pool.items()}
    number = nominal(label)
    return {task: min(int(number), n) for task, n in pool.items()} if number is not None else {}


def size_infos(results: StudyResults, labels: set[str]) -> dict[str, SizeInfo]:
    """SizeInfo for every size label (zero-shot's "0" excluded)."""
    pool_total = sum(results.train_pool.values()) or None
    infos: dict[str, SizeInfo] = {}
    for label in labels - {ZERO_SHOT_SIZE}:
        counts = results.train_instances.get(label) or _counts_from_pool(label, results.train_pool)
        if counts:
            total = sum(counts.values())
            fraction = total / pool_total if pool_total else None
            infos[label] = SizeInfo(label, total / len(counts), total, fraction)
        elif nominal(label) is not None:
            infos[label] = SizeInfo(label, float(nominal(label)), None, None)
    numeric = [info.x for info in infos.values()]
    for label in labels - {ZERO_SHOT_SIZE} - set(infos):
        infos[label] = SizeInfo(label, 2 * max(numeric, default=500.0), None, None, placeholder=True)
    return dict(sorted(infos.items(), key=lambda item: item[1].x))


def fraction_at(x: float, pool: dict[str, int]) -> float | None:
    """Fraction of the train pool used when every task takes min(x, its pool) instances."""
    total = sum(pool.values())
    if not total or not np.isfinite(x):
        return None
    return sum(min(x, n) for n in pool.values()) / total
