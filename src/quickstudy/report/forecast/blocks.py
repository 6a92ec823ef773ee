"""The forecast in words and tables: the report's "Forecast" section and the CLI's labels-needed table."""

from __future__ import annotations

import math

import numpy as np

from quickstudy.report.document import Block, Bullets, Heading, Image, Paragraph, Table
from quickstudy.report.figures import Figure
from quickstudy.report.forecast.answers import (
    BACKTEST_SIZES,
    BEYOND_FACTOR,
    CEILING,
    COVERAGE_WARNING,
    MIN_SIZES,
    POWER_LAW,
    CurveForecast,
    Forecast,
    Range,
)
from quickstudy.report.sections import number, percent, signed

LABELS_COLUMNS = [
    "task",
    "category",
    "arm",
    "sizes (largest)",
    "model",
    "c",
    "a",
    "b",
    "target",
    "n for target",
    "95% interval",
    "label more",
    "flags",
    "backtest error",
]
LABELS_NUMERIC = [False, False, False, False, False, True, True, True, True, True, False, True, False, True]


def count(value: float | None) -> str:
    """An instance count: rounded up, thousands separated; inf is 'not reached'."""
    if value is None or math.isnan(value):
        return "–"
    return "not reached" if math.isinf(value) else f"{math.ceil(value):,}"


def count_range(found: Range | None) -> str:
    return "–" if found is None else f"[{count(found.low)}, {count(found.high)}]"


def arm_label(curve: CurveForecast) -> str:
    return f"{curve.series.setting.upper()} {curve.series.arm}"


def labels_rows(forecast: Forecast, curves: list[CurveForecast] | None = None) -> list[list[str]]:
    """One row per curve (per-task curves by default), columns LABELS_COLUMNS."""
    rows = []
    for curve in forecast.per_task() if curves is None else curves:
        series, params = curve.series, curve.fitted.params
        power = curve.fitted.model == POWER_LAW
        rows.append(
            [
                series.task or "(all tasks)",
                series.category or "–",
                arm_label(curve),
                f"{len(np.unique(series.x))} ({count(series.largest)})",
                curve.fitted.model,
                number(float(params.c)),
                number(float(params.a)),
                number(float(params.b)) if power else "–",
                number(series.target.value) if series.target else "–",
                count(curve.n_target.value) if curve.n_target else "–",
                count_range(curve.n_target),
                count(curve.more_labels),
                "; ".join(curve.flags),
                signed(curve.backtest.error) if curve.backtest else "–",
            ]
        )
    return rows


def answer_sentence(curve: CurveForecast) -> str:
    """The overall answer of one arm in words."""
    series, n = curve.series, curve.n_target
    head = f"**{arm_label(curve)}**"
    if series.target is None or n is None:
        return f"{head}: no target (no full-data no-instruction baseline finished)."
    fit = f"{curve.fitted.model} fit"
    if curve.fitted.reason:
        fit += f"; the power law was not used: {curve.fitted.reason}"
    if not math.isfinite(n.value):
        ceiling = (
            f"; its fitted ceiling c is {number(float(curve.fitted.params.c))}" if curve.flags[:1] == (CEILING,) else ""
        )
        return (
            f"{head} does not reach {series.target_source} (ROUGE-L {number(series.target.value)}) on its fitted "
            f"curve ({fit}{ceiling}; 95% interval of n {count(n.low)} to {count(n.high)})."
        )
    more = curve.more_labels or 0.0
    flags = f" **{'; '.join(curve.flags)}**." if curve.flags else ""
    verdict = (
        f"label about {count(more)} more per task than the largest size measured ({count(series.largest)})"
        if more > 0
        else f"within the measured data (largest size {count(series.largest)} per task)"
    )
    return (
        f"{head} reaches {series.target_source} (ROUGE-L {number(series.target.value)}) at ≈{count(n.value)} "
        f"training instances per task (95% interval {count(n.low)} to {count(n.high)}; {fit}): {verdict}.{flags}"
    )


def backtest_rows(forecast: Forecast) -> list[list[str]]:
    rows = []
    for test in forecast.backtests:
        overall = test.overall
        rows.append(
            [
                f"{test.setting.upper()} {test.arm}",
                str(test.tasks),
                number(test.mae),
                percent(test.coverage),
                f"{overall.held_out_size}: {number(overall.measured)} vs {number(overall.predicted.value)} "
                f"[{number(overall.predicted.low)}, {number(overall.predicted.high)}]"
                if overall
                else "–",
                test.warning or "ok",
            ]
        )
    return rows


def forecast_blocks(forecast: Forecast, figures: dict[str, Figure]) -> list[Block]:
    """The report's "Forecast" section."""
    blocks: list[Block] = [Heading(2, "Forecast: how many labels for a task?")]
    if not forecast.curves:
        reason = "; ".join(forecast.skipped) or "no arm has finished evaluations"
        return blocks + [Paragraph(f"No curve to fit: a forecast needs {MIN_SIZES} measured sizes ({reason}).")]
    blocks.append(
        Paragraph(
            f"Each arm's curve, overall and per task, is fitted with a saturating power law y = c − a·n^(−b) "
            f"(ROUGE-L against training instances per task; weighted by the points' bootstrap variance), or a "
            f"log-linear fit where the power law does not converge. Target: {forecast.target_label}. 95% intervals "
            f"refit the curve on each of the {forecast.n_boot} bootstrap replicates; predicted scores add the "
            f"test-set noise of one measured point. Past {BEYOND_FACTOR:g}x the largest measured size, or above "
            f"the fitted ceiling c, a forecast is flagged as beyond the data."
        )
    )
    blocks.append(Bullets([answer_sentence(c) for c in forecast.overall()]))
    if "forecast_overall" in figures:
        blocks.append(Image(figures["forecast_overall"]))
    blocks.append(Heading(3, "Backtest"))
    if forecast.backtests:
        blocks.append(
            Table(
                ["arm", "tasks backtested", "MAE (ROUGE-L)", "coverage", "overall: measured vs predicted", "verdict"],
                backtest_rows(forecast),
                numeric=[False, True, True, True, False, False],
                caption="Each curve refitted without its largest size, which it then predicts. MAE: mean absolute "
                "error over tasks; coverage: share of tasks whose measured score is inside the 95% prediction "
                f"interval (below {percent(COVERAGE_WARNING)} the intervals are too narrow).",
            )
        )
        blocks += [
            Paragraph(f"**{test.setting.upper()} {test.arm}: {test.warning}** (coverage {percent(test.coverage)}).")
            for test in forecast.backtests
            if test.warning
        ]
    else:
        blocks.append(Paragraph(f"No curve has the {BACKTEST_SIZES} sizes a backtest needs."))
    for name in ("forecast_tasks_most", "forecast_tasks_fewest", "forecast_tasks"):
        if name in figures:
            blocks.append(Image(figures[name]))
    blocks.append(Heading(3, "Labels needed per task"))
    blocks.append(
        Table(
            LABELS_COLUMNS,
            labels_rows(forecast),
            sortable=True,
            numeric=LABELS_NUMERIC,
            caption="Per task and arm (click a column to sort): fitted c, a, b; n for target: training instances "
            "per task at which the fitted curve reaches the target, with its 95% interval; label more: beyond "
            "the largest size measured; backtest error: predicted − measured at the largest size.",
        )
    )
    if forecast.skipped:
        blocks.append(Paragraph("Not forecast: " + "; ".join(forecast.skipped) + "."))
    return blocks
