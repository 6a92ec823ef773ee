"""Cells of the study (setting x arm x size) and their bootstrap estimates.

One set of bootstrap weights over test instances is shared by every cell, so the
difference between two cells is a paired comparison on the same resampled test
set. Test instances are resampled within each task (tasks are fixed; instances are
the sample); when a cell has several seeds, seeds are resampled too. The point
estimate goes through the same function with all weights one, so the numbers in
tables, text and figures are one computation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from quickstudy.report.results import RunScores, StudyResults
from quickstudy.study.layout import known_setting

CONFIDENCE = 0.95


@dataclass(frozen=True)
class CellKey:
    setting: str
    arm: str
    size: str

    @property
    def label(self) -> str:
        setting = known_setting(self.setting)
        if setting is not None and not setting.trains:
            return self.arm if self.arm.lower().replace("-", "_") == setting.name else f"{setting.label} {self.arm}"
        if self.arm.lower().startswith(self.setting):
            return f"{self.arm} @ {self.size}"
        return f"{setting.label if setting else self.setting.upper()} {self.arm} @ {self.size}"

    @property
    def slug(self) -> str:
        return f"{self.setting}/{self.arm}/{self.size}"


@dataclass
class Cell:
    """The scores of one cell: per seed, instance positions and per-metric scores."""

    key: CellKey
    role: str
    seeds: list[int | None] = field(default_factory=list)
    positions: list[np.ndarray] = field(default_factory=list)
    scores: list[dict[str, np.ndarray]] = field(default_factory=list)
    tasks: set[str] = field(default_factory=set)

    @property
    def n_instances(self) -> int:
        return max((len(p) for p in self.positions), default=0)


@dataclass(frozen=True)
class Estimate:
    """A point value with its 95% bootstrap interval; `samples` feed paired differences."""

    value: float
    low: float
    high: float
    samples: np.ndarray = field(repr=False, compare=False)

    def __sub__(self, other: Estimate) -> Estimate:
        return estimate_from(self.value - other.value, self.samples - other.samples)

    def to_json(self) -> dict[str, float | None]:
        return {"value": _rounded(self.value), "low": _rounded(self.low), "high": _rounded(self.high)}


def _rounded(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)


def estimate_from(value: float, samples: np.ndarray) -> Estimate:
    """An Estimate with the percentile interval of `samples` (NaN replicates ignored), widened
    to hold `value` when rounding leaves the point a hair outside (an interval holds its estimate)."""
    tail = (1 - CONFIDENCE) / 2 * 100
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return Estimate(float(value), float("nan"), float("nan"), samples)
    low, high = containing(value, *np.percentile(finite, [tail, 100 - tail]))
    return Estimate(float(value), low, high, samples)


def containing(value: float, low: float, high: float) -> tuple[float, float]:
    """(low, high) widened to hold `value` (a finite value; NaN leaves them as they are)."""
    if not np.isfinite(value):
        return float(low), float(high)
    return float(min(low, value)), float(max(high, value))


def mean_estimate(estimates: list[Estimate]) -> Estimate:
    """The mean of several estimates, replicate by replicate."""
    value = float(np.mean([e.value for e in estimates]))
    return estimate_from(value, np.mean([e.samples for e in estimates], axis=0))


class InstanceIndex:
    """Positions for every (task, instance id) evaluated anywhere in the study."""

    def __init__(self, scored: list[RunScores]) -> None:
        self.position: dict[tuple[str, str], int] = {}
        for run in scored:
            for key in zip(run.tasks, run.instance_ids):
                self.position.setdefault(key, len(self.position))
        self.task = np.array([task for task, _ in self.position], dtype=object)

    def __len__(self) -> int:
        return len(self.position)

    def positions_of(self, run: RunScores) -> np.ndarray:
        return np.fromiter((self.position[k] for k in zip(run.tasks, run.instance_ids)), dtype=np.int64)


def collect_cells(results: StudyResults, index: InstanceIndex) -> dict[CellKey, Cell]:
    """Group done evaluate runs into cells; runs of one cell and seed are concatenated (STL: one per task)."""
    cells: dict[CellKey, Cell] = {}
    by_seed: dict[tuple[CellKey, int | None], list[RunScores]] = {}
    for run in results.scored:
        spec = run.run
        if spec.arm is None or spec.setting is None or spec.size is None:
            continue
        key = CellKey(spec.setting, spec.arm, spec.size)
        by_seed.setdefault((key, spec.seed), []).append(run)
    for (key, seed), runs in sorted(by_seed.items(), key=lambda item: (item[0][0].slug, str(item[0][1]))):
        arm = results.arms.get((key.setting, key.arm))
        cell = cells.setdefault(key, Cell(key=key, role=arm.role if arm else "proposed"))
        cell.seeds.append(seed)
        cell.positions.append(np.concatenate([index.positions_of(r) for r in runs]))
        cell.scores.append({m: np.concatenate([r.scores[m] for r in runs]) for m in runs[0].scores})
        cell.tasks.update(t for r in runs for t in r.tasks)
    return cells


class Resampler:
    """Shared bootstrap weights over instances (stratified by task) and per-cell seed draws."""

    def __init__(self, index: InstanceIndex, n_boot: int = 1000, seed: int = 0) -> None:
        self.n_boot = n_boot
        self.seed = seed
        rng = np.random.default_rng(seed)
        # counts stored as float32 (exact for counts); the sums are taken in float64 (_seed_means)
        self.weights = np.zeros((n_boot, len(index)), dtype=np.float32)
        for task in sorted(set(index.task)):
            members = np.flatnonzero(index.task == task)
            counts = rng.multinomial(len(members), np.full(len(members), 1 / len(members)), size=n_boot)
            self.weights[:, members] = counts
        self.ones = np.ones((1, len(index)), dtype=np.float64)  # the point estimate, in full precision

    def _seed_draws(self, key: CellKey, n_seeds: int) -> np.ndarray:
        digest = hashlib.sha256(f"{self.seed}:{key.slug}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        return rng.integers(0, n_seeds, size=(self.n_boot, n_seeds))

    def point(self, cell: Cell, metric: str, mask: np.ndarray | None = None) -> float:
        """The point value of `estimates` without the bootstrap."""
        return float(_seed_means(cell, (metric,), self.ones, mask).mean(axis=1)[0, 0])

    def estimates(self, cell: Cell, metrics: tuple[str, ...], mask: np.ndarray | None = None) -> dict[str, Estimate]:
        """Mean of each metric over the cell's instances (those in `mask` when given), averaged over seeds."""
        points = _seed_means(cell, metrics, self.ones, mask).mean(axis=1)[0]
        per_seed = _seed_means(cell, metrics, self.weights, mask)
        if per_seed.shape[1] > 1:
            draws = self._seed_draws(cell.key, per_seed.shape[1])
            per_seed = np.take_along_axis(per_seed, draws[:, :, None], axis=1)
        samples = per_seed.mean(axis=1)
        return {metric: estimate_from(float(points[i]), samples[:, i]) for i, metric in enumerate(metrics)}


def _seed_means(cell: Cell, metrics: tuple[str, ...], weights: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """(replicates, seeds, metrics) weighted means; NaN where a seed has no instance in `mask`."""
    columns = []
    for positions, scores in zip(cell.positions, cell.scores):
        values = np.stack([scores[metric] for metric in metrics], axis=1)
        if mask is not None:
            keep = mask[positions]
            positions, values = positions[keep], values[keep]
        if positions.size == 0:
            columns.append(np.full((weights.shape[0], len(metrics)), np.nan))
            continue
        # Sums in float64 around the first value: a cell whose instances all score the same gets
        # exactly that score in every replicate, so its interval has zero width and holds the estimate.
        selected = weights[:, positions].astype(np.float64)
        totals = selected.sum(axis=1)
        centre = values[0].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            columns.append(centre + (selected @ (values.astype(np.float64) - centre)) / totals[:, None])
    return np.stack(columns, axis=1)
