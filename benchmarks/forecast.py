"""Forecast speed: 119 tasks x 8 arms x 1,000 bootstrap replicates, fitted and backtested.

Builds synthetic learning curves (the thesis's sizes 100 / 200 / 1000 / all, known power
laws plus the noise of a 100-instance test set, paired bootstrap replicates), then times
`quickstudy.report.forecast.answers.forecast_curves`: a curve_fit point fit per curve, the
vectorised refits of every replicate, n for the target, predictions and the backtest
(every curve refitted without its largest size). The reference is what a plain
implementation does: scipy.optimize.curve_fit on every replicate, measured on a subset of
--reference-curves curves and scaled to the whole run (fits and backtest refits). Prints
the ratio last.

    .venv/bin/python benchmarks/forecast.py [--tasks 119] [--arms 8] [--replicates 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.optimize import curve_fit

from quickstudy.report.bootstrap import Estimate
from quickstudy.report.forecast.answers import Series, forecast_curves
from quickstudy.report.forecast.fit import B_MAX, B_MIN, C_MAX, weights_from

SIZES = np.array([100.0, 200.0, 1000.0, 3150.0])  # the thesis's sizes; 'all' is the mean train pool


def synthetic_series(tasks: int, arms: int, replicates: int, seed: int = 0) -> list[Series]:
    rng = np.random.default_rng(seed)
    series = []
    for arm in range(arms):
        for task in range(tasks):
            c, a, b = rng.uniform(50, 90), rng.uniform(100, 400), rng.uniform(0.3, 0.9)
            scores = c - a * SIZES**-b + rng.normal(0, 20, (100, len(SIZES)))
            samples = scores[rng.integers(0, 100, (replicates, 100))].mean(axis=1)
            target = c - a * 1500.0**-b
            level = Estimate(target, target, target, np.full(replicates, target))
            series.append(
                Series(
                    "stl",
                    f"arm{arm}",
                    f"task{task:03d}",
                    "synthetic",
                    ("100", "200", "1000", "all"),
                    SIZES,
                    scores.mean(axis=0),
                    samples,
                    level,
                    "synthetic",
                )
            )
    return series


def reference_seconds_per_fit(series: list[Series]) -> float:
    """Wall seconds per curve_fit of one replicate (bounded power law, the same weights)."""
    fits, started = 0, time.perf_counter()
    for s in series:
        sigma = 1 / np.sqrt(weights_from(s.samples))
        for y in s.samples:
            try:
                curve_fit(
                    lambda n, c, a, b: c - a * n ** (-b),
                    s.x,
                    y,
                    p0=[float(np.max(y)), 100.0, 0.5],
                    sigma=sigma,
                    bounds=([-np.inf, 0.0, B_MIN], [C_MAX, np.inf, B_MAX]),
                    maxfev=2000,
                )
            except RuntimeError:
                pass
            fits += 1
    return (time.perf_counter() - started) / fits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=119)
    parser.add_argument("--arms", type=int, default=8)
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--reference-curves", type=int, default=3)
    args = parser.parse_args()
    series = synthetic_series(args.tasks, args.arms, args.replicates)
    started, cpu = time.perf_counter(), time.process_time()
    curves = forecast_curves(series)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    backtested = sum(c.backtest is not None for c in curves)
    covered = np.mean([c.backtest.covered for c in curves if c.backtest])
    print(f"curves: {len(curves)} ({args.tasks} tasks x {args.arms} arms), {args.replicates} replicates each")
    print(
        f"forecast (fits, intervals, n for target, backtest of {backtested} curves): {seconds:.2f} s wall, {cpu:.2f} s CPU"
    )
    print(f"backtest coverage on the synthetic curves: {covered:.1%}")
    per_fit = reference_seconds_per_fit(series[: args.reference_curves])
    reference = per_fit * (len(series) + backtested) * args.replicates
    print(f"reference: curve_fit per replicate, {per_fit * 1000:.2f} ms a fit, {reference:.0f} s for the same fits")
    print(f"ratio: {reference / seconds:.1f}")


if __name__ == "__main__":
    main()
