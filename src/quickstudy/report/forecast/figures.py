"""Forecast figures: fitted curves over the measured points, overall and for the tasks needing most / fewest labels."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.ticker import FuncFormatter, NullFormatter

from quickstudy.report.figures import OKABE_ITO, ROUGE_LABEL, Figure, _save, plt
from quickstudy.report.forecast.answers import BEYOND_FACTOR, CurveForecast, Forecast, percentile_interval
from quickstudy.report.forecast.fit import C_MAX, predict

SMALL_MULTIPLES = 12
_COLUMNS = 4


def forecast_figures(forecast: Forecast, out_dir: Path) -> list[Figure]:
    """The overall forecast figure and the per-task small multiples, as PNG in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if not forecast.curves:
        return []
    figures = []
    if forecast.overall():
        figures.append(_overall_figure(forecast, out_dir / "forecast_overall.png"))
    ranked = ranked_tasks(forecast)
    if len(ranked) <= SMALL_MULTIPLES:
        groups = [("forecast_tasks", "every task", ranked)]
    else:
        groups = [
            ("forecast_tasks_most", f"the {SMALL_MULTIPLES} tasks needing the most labels", ranked[:SMALL_MULTIPLES]),
            ("forecast_tasks_fewest", f"the {SMALL_MULTIPLES} needing the fewest", ranked[-SMALL_MULTIPLES:][::-1]),
        ]
    for name, title, tasks in groups:
        if tasks:
            figures.append(_tasks_figure(forecast, tasks, name, title, out_dir / f"{name}.png"))
    return figures


def ranked_tasks(forecast: Forecast) -> list[str]:
    """Tasks by labels needed on the first arm (not reached first), else by lowest last measured score."""
    curves = forecast.per_task()
    if not curves:
        return []
    first = (curves[0].series.setting, curves[0].series.arm)
    mine = [c for c in curves if (c.series.setting, c.series.arm) == first]

    def need(curve: CurveForecast) -> tuple[float, float]:
        n = curve.n_target.value if curve.n_target else math.nan
        return (-n if not math.isnan(n) else 0.0, float(curve.series.y[-1]))

    return [c.series.task for c in sorted(mine, key=need)]


def _draw(ax, curve: CurveForecast, colour: str, label: str | None) -> None:
    series = curve.series
    low_x = float(np.min(series.x)) / 1.5
    xs = np.geomspace(low_x, BEYOND_FACTOR * series.largest, 80)
    band = predict(curve.fitted.replicates, xs[:, None])  # (xs, replicates)
    bounds = np.array([percentile_interval(row) for row in np.clip(band, 0, C_MAX)])
    ax.fill_between(xs, bounds[:, 0], bounds[:, 1], color=colour, alpha=0.15, lw=0)
    measured = xs <= series.largest
    fitted = np.clip(predict(curve.fitted.params, xs), 0, C_MAX)
    ax.plot(xs[measured], fitted[measured], "-", color=colour, lw=1.6, label=label)
    ax.plot(xs[~measured], fitted[~measured], "--", color=colour, lw=1.4)
    spread = np.array([percentile_interval(series.samples[:, i]) for i in range(len(series.x))])
    errors = [np.maximum(series.y - spread[:, 0], 0), np.maximum(spread[:, 1] - series.y, 0)]
    ax.errorbar(series.x, series.y, yerr=np.nan_to_num(errors), fmt="o", color=colour, ms=4, capsize=2)
    if series.target is not None:
        ax.axhline(series.target.value, color="#000000", ls=":", lw=1)
    if curve.n_target is not None and xs[0] <= curve.n_target.value <= xs[-1]:
        ax.axvline(curve.n_target.value, color=colour, ls=(0, (1, 3)), lw=1)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))  # plain text, no math text
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, axis="y", alpha=0.3)


def _overall_figure(forecast: Forecast, path: Path) -> Figure:
    settings = list(dict.fromkeys(c.series.setting for c in forecast.overall()))
    fig, axes = plt.subplots(1, len(settings), figsize=(6.2 * len(settings), 4.8), sharey=True, squeeze=False)
    for ax, setting in zip(axes[0], settings):
        curves = [c for c in forecast.overall() if c.series.setting == setting]
        for curve, colour in zip(curves, OKABE_ITO * 2):
            _draw(ax, curve, colour, f"{curve.series.arm} ({curve.fitted.model})")
        ax.set_title(f"{setting.upper()}: fitted learning curves")
        ax.set_xlabel("training instances per task (log scale)")
        ax.legend(fontsize=8, frameon=False)
    axes[0][0].set_ylabel(ROUGE_LABEL)
    caption = (
        "Overall ROUGE-L against training instances per task: measured points with 95% bootstrap intervals, the "
        f"fitted curve (solid within the data, dashed beyond it, up to {BEYOND_FACTOR:g}x the largest size) and the "
        "95% band of its bootstrap refits; dotted horizontal: the target; dotted vertical: where the curve reaches it."
    )
    _save(fig, path)
    return Figure("forecast_overall", path, "Forecast: fitted learning curves", caption)


def _tasks_figure(forecast: Forecast, tasks: list[str], name: str, title: str, path: Path) -> Figure:
    rows = math.ceil(len(tasks) / _COLUMNS)
    fig, axes = plt.subplots(rows, _COLUMNS, figsize=(3.4 * _COLUMNS, 2.7 * rows), squeeze=False, sharey=True)
    arms = list(dict.fromkeys((c.series.setting, c.series.arm) for c in forecast.per_task()))
    colours = dict(zip(arms, OKABE_ITO * 2))
    by_task = {}
    for curve in forecast.per_task():
        by_task.setdefault(curve.series.task, []).append(curve)
    for i, ax in enumerate(axes.flat):
        if i >= len(tasks):
            ax.set_visible(False)
            continue
        for curve in by_task[tasks[i]]:
            key = (curve.series.setting, curve.series.arm)
            _draw(ax, curve, colours[key], f"{key[0].upper()} {key[1]}" if i == 0 else None)
        ax.set_title(tasks[i], fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7, frameon=False)
    caption = (
        f"Per task, {title} (ranked on the first arm's n for the target): measured ROUGE-L with 95% intervals, "
        "fitted curves with their 95% bootstrap bands (dashed beyond the data), the target dotted."
    )
    _save(fig, path)
    return Figure(name, path, f"Forecast per task: {title}", caption)
