"""Learning-curve forecasts of a study: per arm overall and per (arm, task), with intervals and a backtest.

For every arm (not zero-shot) with >= MIN_SIZES distinct measured sizes, overall and per
task, fit.fit_point fits the curve to the points; every bootstrap replicate of the points
(the report's shared, paired replicates) is refitted with the vectorised path, which gives:
- the predicted score at n with a 95% prediction interval: the replicate curves at n plus
  the test-set noise of one measured point (normal, sd = the points' bootstrap sd);
- the smallest n reaching a target (a fixed ROUGE-L level, or "sota": the same task's score
  of the full-data no-instruction baseline, replicate by replicate), with its 95% interval;
- "beyond the data" flags: n more than BEYOND_FACTOR x the largest measured size, or a
  target at or above the fitted ceiling c.
Backtest, for curves with >= BACKTEST_SIZES sizes: refit without the largest size and
predict it; per arm the mean absolute error and the share of tasks whose measured score
falls inside the prediction interval (coverage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quickstudy.errors import ConfigError, StudyError
from quickstudy.report.analysis import Analysis
from quickstudy.report.bootstrap import CONFIDENCE, CellKey, Estimate, InstanceIndex, Resampler
from quickstudy.report.forecast.fit import (
    B_MAX,
    B_MIN,
    C_MAX,
    LOG_LINEAR,
    POWER_LAW,
    Params,
    fit_log_linear,
    fit_point,
    fit_power_law,
    n_for_target,
    predict,
    weights_from,
)
from quickstudy.study.layout import ZERO_SHOT

TARGET_SOTA = "sota"
MIN_SIZES = 3
BACKTEST_SIZES = 4
BEYOND_FACTOR = 4.0
COVERAGE_WARNING = 0.80
COVERAGE_WARNING_TEXT = "intervals too narrow; treat forecasts as rough"
CEILING = "target above the fitted ceiling c"
FORECAST_FILE = "forecast.json"
_NOISE_SEED = 15


def parse_target(text: str | float) -> float | None:
    """`sota` -> None (each task's full-data no-instruction baseline); a number -> that ROUGE-L level."""
    if isinstance(text, str) and text.strip().lower() == TARGET_SOTA:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--target {text!r}: expected 'sota' or a ROUGE-L level such as 70") from None
    if not 0 < value <= C_MAX:
        raise ConfigError(f"--target {text!r}: a ROUGE-L level must be above 0 and at most {C_MAX:g}")
    return value


@dataclass(frozen=True)
class Range:
    """A value with its 95% interval (inf: not reached within that replicate)."""

    value: float
    low: float
    high: float

    def to_json(self, digits: int = 4) -> dict[str, float | str | None]:
        return {
            "value": _json_number(self.value, digits),
            "low": _json_number(self.low, digits),
            "high": _json_number(self.high, digits),
        }


def _json_number(value: float, digits: int) -> float | str | None:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return None if not math.isfinite(value) else round(float(value), digits)


def percentile_interval(samples: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval, without interpolation (samples may hold inf); NaN ignored."""
    finite = samples[~np.isnan(samples)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = (1 - CONFIDENCE) / 2 * 100
    return float(np.percentile(finite, tail, method="lower")), float(np.percentile(finite, 100 - tail, method="higher"))


@dataclass(frozen=True)
class Series:
    """The measured points of one curve: an arm overall (task None) or one task in an arm."""

    setting: str
    arm: str
    task: str | None
    category: str | None
    sizes: tuple[str, ...]
    x: np.ndarray  # training instances per task at each size
    y: np.ndarray  # ROUGE-L point estimates
    samples: np.ndarray  # (replicates, points)
    target: Estimate | None  # the level to reach, with replicates; None: no target known
    target_source: str

    @property
    def largest(self) -> float:
        return float(np.max(self.x))

    def without_largest(self) -> Series:
        keep = self.x < self.largest
        return Series(
            self.setting,
            self.arm,
            self.task,
            self.category,
            tuple(s for s, k in zip(self.sizes, keep) if k),
            self.x[keep],
            self.y[keep],
            self.samples[:, keep],
            self.target,
            self.target_source,
        )


@dataclass(frozen=True)
class Fitted:
    """One fitted curve: the point fit, its bootstrap refits and the noise of one measured point."""

    series: Series
    params: Params  # scalars
    reason: str | None  # why the log-linear fallback was used
    replicates: Params  # (replicates,)
    noise_sd: float

    @property
    def model(self) -> str:
        return self.params.kind

    def prediction(self, n: float, rng: np.random.Generator) -> Range:
        """Predicted score at n with its 95% prediction interval (clipped to 0-100)."""
        value = float(np.clip(predict(self.params, n), 0, C_MAX))
        draws = predict(self.replicates, n) + rng.normal(0.0, self.noise_sd, self.replicates.c.shape)
        low, high = percentile_interval(np.clip(draws, 0, C_MAX))
        return Range(value, low, high)

    def n_for(self, target: Estimate) -> Range:
        value = float(n_for_target(self.params, target.value))
        low, high = percentile_interval(n_for_target(self.replicates, target.samples))
        return Range(value, low, high)


@dataclass(frozen=True)
class Backtest:
    held_out_size: str
    held_out_x: float
    measured: float
    predicted: Range
    model: str

    @property
    def error(self) -> float:
        return self.predicted.value - self.measured

    @property
    def covered(self) -> bool:
        return self.predicted.low <= self.measured <= self.predicted.high

    def to_json(self) -> dict[str, Any]:
        return {
            "held_out_size": self.held_out_size,
            "held_out_x": round(self.held_out_x, 2),
            "measured": round(self.measured, 4),
            "predicted": self.predicted.to_json(),
            "error": round(self.error, 4),
            "covered": self.covered,
            "model": self.model,
        }


@dataclass(frozen=True)
class CurveForecast:
    fitted: Fitted
    n_target: Range | None  # None: no target known for this curve
    predictions: dict[float, Range]
    backtest: Backtest | None

    @property
    def series(self) -> Series:
        return self.fitted.series

    @property
    def more_labels(self) -> float | None:
        """Instances per task to label beyond the largest measured size (0 when already reached)."""
        if self.n_target is None or not math.isfinite(self.n_target.value):
            return None
        return max(0.0, math.ceil(self.n_target.value) - self.series.largest)

    @property
    def flags(self) -> tuple[str, ...]:
        target, n = self.series.target, self.n_target
        if target is None or n is None:
            return ()
        if self.fitted.model == POWER_LAW and target.value >= float(self.fitted.params.c):
            return (CEILING,)
        if not math.isfinite(n.value):
            return ("the fitted curve never reaches the target",)
        if n.value > BEYOND_FACTOR * self.series.largest:
            return (f"beyond the data: n > {BEYOND_FACTOR:g}x the largest measured size",)
        return ()

    def to_json(self) -> dict[str, Any]:
        series, params = self.series, self.fitted.params
        power = self.fitted.model == POWER_LAW
        return {
            "setting": series.setting,
            "arm": series.arm,
            "task": series.task,
            "category": series.category,
            "sizes": list(series.sizes),
            "x": [round(float(v), 2) for v in series.x],
            "rougeL": [round(float(v), 4) for v in series.y],
            "model": self.fitted.model,
            "fallback_reason": self.fitted.reason,
            "c": _json_number(float(params.c), 4),
            "a": _json_number(float(params.a), 4),
            "b": _json_number(float(params.b), 4) if power else None,
            "target": None
            if series.target is None
            else {"value": round(series.target.value, 4), "source": series.target_source},
            "n_for_target": self.n_target.to_json(1) if self.n_target else None,
            "more_labels": self.more_labels,
            "flags": list(self.flags),
            "predictions": [
                {"n": n, **r.to_json(), "beyond_data": n > BEYOND_FACTOR * series.largest}
                for n, r in self.predictions.items()
            ],
            "backtest": self.backtest.to_json() if self.backtest else None,
        }


@dataclass(frozen=True)
class ArmBacktest:
    setting: str
    arm: str
    tasks: int  # task curves backtested
    mae: float  # ROUGE-L points
    coverage: float  # share of task curves whose measured score is inside the interval
    overall: Backtest | None

    @property
    def warning(self) -> str | None:
        return COVERAGE_WARNING_TEXT if self.tasks and self.coverage < COVERAGE_WARNING else None

    def to_json(self) -> dict[str, Any]:
        return {
            "setting": self.setting,
            "arm": self.arm,
            "tasks_backtested": self.tasks,
            "mae": _json_number(self.mae, 4),
            "coverage": _json_number(self.coverage, 4),
            "warning": self.warning,
            "overall": self.overall.to_json() if self.overall else None,
        }


@dataclass
class Forecast:
    target: float | None  # None: "sota"
    n_boot: int
    curves: list[CurveForecast]
    backtests: list[ArmBacktest]
    skipped: list[str] = field(default_factory=list)  # arms with too few sizes, in words

    @property
    def target_label(self) -> str:
        return "the full-data no-instruction baseline (sota)" if self.target is None else f"ROUGE-L {self.target:g}"

    def overall(self) -> list[CurveForecast]:
        return [c for c in self.curves if c.series.task is None]

    def per_task(self) -> list[CurveForecast]:
        return [c for c in self.curves if c.series.task is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "target": TARGET_SOTA if self.target is None else self.target,
            "bootstrap_replicates": self.n_boot,
            "model": f"y(n) = c - a * n^(-b), a >= 0, {B_MIN} <= b <= {B_MAX}, c <= {C_MAX:g}; "
            "log-linear y = c + a * ln(n) where the power law does not converge",
            "intervals": "95%: bootstrap refits of the curve (shared paired replicates); predictions add "
            "the test-set noise of one measured point",
            "beyond_data_factor": BEYOND_FACTOR,
            "backtests": [b.to_json() for b in self.backtests],
            "overall": [c.to_json() for c in self.overall()],
            "tasks": [c.to_json() for c in self.per_task()],
            "skipped": self.skipped,
        }


# --- building the forecast ---------------------------------------------------------------------


def forecast_study(
    analysis: Analysis,
    target: float | None = None,
    arm: str | None = None,
    task: str | None = None,
    at: tuple[float, ...] = (),
    seed: int = 0,
) -> Forecast:
    """Forecasts for every arm and (arm, task) with enough sizes, narrowed to `arm` / `task` when given."""
    results = analysis.results
    index = InstanceIndex(results.scored)  # the same positions and replicates as the analysis
    resampler = Resampler(index, n_boot=max(analysis.n_boot, 1), seed=seed)
    groups, skipped = _arm_groups(analysis)
    if arm is not None:
        if not any(name == arm for _, name in groups):
            known = ", ".join(sorted({name for _, name in groups})) or "none"
            raise StudyError(f"--arm {arm}: no arm with >= {MIN_SIZES} measured sizes (arms that have: {known})")
        groups = {key: keys for key, keys in groups.items() if key[1] == arm}
    all_tasks = sorted(set(index.task))
    if task is not None and task not in all_tasks:
        raise StudyError(f"--task {task}: not an evaluated task of {results.study_dir}")
    series: list[Series] = []
    for (setting, name), keys in groups.items():
        reference = analysis.sota.get(setting)
        if task is None:
            series += _overall_series(analysis, resampler, setting, name, keys, target, reference)
        for one in [task] if task is not None else all_tasks:
            mask = index.task == one
            series += _task_series(analysis, resampler, setting, name, keys, one, mask, target, reference)
    curves = forecast_curves(series, at)
    return Forecast(target, analysis.n_boot, curves, _arm_backtests(curves), skipped)


def forecast_curves(series: list[Series], at: tuple[float, ...] = ()) -> list[CurveForecast]:
    """Fit every series, answer it (n for its target, predictions at `at`, 2x and 4x its largest size)
    and backtest those with >= BACKTEST_SIZES sizes."""
    fits = fit_all(series)
    backtested = [s.without_largest() for s in series if len(np.unique(s.x)) >= BACKTEST_SIZES]
    back_fits = {(f.series.setting, f.series.arm, f.series.task): f for f in fit_all(backtested)}
    rng = np.random.default_rng(_NOISE_SEED)
    curves = []
    for fitted in fits:
        s = fitted.series
        points = tuple(sorted({*at, 2 * s.largest, BEYOND_FACTOR * s.largest}))
        back = back_fits.get((s.setting, s.arm, s.task))
        curves.append(
            CurveForecast(
                fitted=fitted,
                n_target=fitted.n_for(s.target) if s.target is not None else None,
                predictions={float(n): fitted.prediction(n, rng) for n in points},
                backtest=_backtest(back, s, rng) if back else None,
            )
        )
    return curves


def _arm_groups(analysis: Analysis) -> tuple[dict[tuple[str, str], list[CellKey]], list[str]]:
    """(setting, arm) -> its cells ordered by size, for arms (not zero-shot) with >= MIN_SIZES sizes."""
    groups: dict[tuple[str, str], list[CellKey]] = {}
    for key in analysis.ordered_cells():
        if key.setting != ZERO_SHOT.name and key.size in analysis.sizes:
            groups.setdefault((key.setting, key.arm), []).append(key)
    skipped = [
        f"{setting.upper()} {arm}: {len(keys)} measured size(s), a curve needs {MIN_SIZES}"
        for (setting, arm), keys in groups.items()
        if len(keys) < MIN_SIZES and analysis.cells[keys[0]].role == "proposed"
    ]
    kept = {key: keys for key, keys in groups.items() if len(keys) >= MIN_SIZES}
    return kept, skipped


def _target_estimate(target: float | None, n_boot: int, reference: Estimate | None) -> Estimate | None:
    if target is not None:
        return Estimate(target, target, target, np.full(n_boot, target))
    return reference


def _overall_series(analysis, resampler, setting, name, keys, target, reference) -> list[Series]:
    estimates = [resampler.estimates(analysis.cells[k], ("rougeL",))["rougeL"] for k in keys]
    level = None
    if target is None and reference is not None:
        level = resampler.estimates(analysis.cells[reference[0]], ("rougeL",))["rougeL"]
    x = np.array([analysis.sizes[k.size].x for k in keys])
    return [
        Series(
            setting,
            name,
            None,
            None,
            tuple(k.size for k in keys),
            x,
            np.array([e.value for e in estimates]),
            np.stack([e.samples for e in estimates], axis=1),
            _target_estimate(target, resampler.n_boot, level),
            _source(target, reference),
        )
    ]


def _task_series(analysis, resampler, setting, name, keys, task, mask, target, reference) -> list[Series]:
    keys = [k for k in keys if task in analysis.cells[k].tasks]
    counts = analysis.results.train_instances
    x = np.array([float(counts.get(k.size, {}).get(task) or analysis.sizes[k.size].x) for k in keys])
    if len(np.unique(x)) < MIN_SIZES:
        return []
    estimates = [resampler.estimates(analysis.cells[k], ("rougeL",), mask)["rougeL"] for k in keys]
    level = None
    if target is None and reference is not None and task in analysis.cells[reference[0]].tasks:
        level = resampler.estimates(analysis.cells[reference[0]], ("rougeL",), mask)["rougeL"]
    return [
        Series(
            setting,
            name,
            task,
            analysis.results.categories.get(task, "unknown"),
            tuple(k.size for k in keys),
            x,
            np.array([e.value for e in estimates]),
            np.stack([e.samples for e in estimates], axis=1),
            _target_estimate(target, resampler.n_boot, level),
            _source(target, reference),
        )
    ]


def _source(target: float | None, reference: tuple[CellKey, str] | None) -> str:
    if target is not None:
        return f"ROUGE-L {target:g}"
    return f"sota: {reference[0].label}" if reference else "no full-data no-instruction baseline"


def fit_all(series: list[Series]) -> list[Fitted]:
    """Point fits (curve_fit, one by one) and bootstrap refits (vectorised over all curves)."""
    if not series:
        return []
    width = max(len(s.x) for s in series)
    n_reps = series[0].samples.shape[0]
    x = np.ones((len(series), width))
    y = np.zeros((len(series), n_reps, width))
    w = np.zeros((len(series), width))
    for g, s in enumerate(series):
        p = len(s.x)
        x[g, :p], y[g, :, :p], w[g, :p] = s.x, np.nan_to_num(s.samples), weights_from(s.samples)
    measured = np.zeros((len(series), 1, width))
    for g, s in enumerate(series):
        measured[g, 0, : len(s.x)] = s.y
    starts, _ = fit_power_law(x, measured, w)  # curve_fit's starting points, all at once
    points = [fit_point(s.x, s.y, w[g, : len(s.x)], starts.take((g, 0))) for g, s in enumerate(series)]
    power_rows = [g for g, point in enumerate(points) if point.params.kind == POWER_LAW]
    linear_rows = [g for g, point in enumerate(points) if point.params.kind == LOG_LINEAR]
    replicates: dict[int, Params] = {}
    if power_rows:
        found, _ = fit_power_law(x[power_rows], y[power_rows], w[power_rows])
        replicates |= {g: found.take(i) for i, g in enumerate(power_rows)}
    if linear_rows:
        found = fit_log_linear(x[linear_rows], y[linear_rows], w[linear_rows])
        replicates |= {g: found.take(i) for i, g in enumerate(linear_rows)}
    return [
        Fitted(
            s,
            points[g].params,
            points[g].reason,
            replicates[g],
            float(np.sqrt(np.nanmean(np.nanvar(s.samples, axis=0)))),
        )
        for g, s in enumerate(series)
    ]


def _backtest(fitted: Fitted, full: Series, rng: np.random.Generator) -> Backtest:
    held_out = full.x == full.largest
    label = [s for s, h in zip(full.sizes, held_out) if h][-1]
    measured = float(np.mean(full.y[held_out]))
    return Backtest(label, full.largest, measured, fitted.prediction(full.largest, rng), fitted.model)


def _arm_backtests(curves: list[CurveForecast]) -> list[ArmBacktest]:
    found = []
    arms = list(dict.fromkeys((c.series.setting, c.series.arm) for c in curves))
    for setting, arm in arms:
        mine = [c for c in curves if (c.series.setting, c.series.arm) == (setting, arm)]
        tests = [c.backtest for c in mine if c.series.task is not None and c.backtest is not None]
        overall = next((c.backtest for c in mine if c.series.task is None), None)
        if not tests and overall is None:
            continue
        found.append(
            ArmBacktest(
                setting,
                arm,
                len(tests),
                float(np.mean([abs(t.error) for t in tests])) if tests else math.nan,
                float(np.mean([t.covered for t in tests])) if tests else math.nan,
                overall,
            )
        )
    return found
