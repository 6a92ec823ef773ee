"""Figures of the report (matplotlib, Agg, Okabe-Ito colour-blind-safe palette).

Every value drawn comes from the Analysis, the same numbers the tables print.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["text.parse_math"] = False  # labels carry data (category, arm names): '$' is a dollar, not math
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.figure import Figure as Canvas  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402
from matplotlib.ticker import NullFormatter, NullLocator  # noqa: E402

from quickstudy.report.analysis import Analysis, CurvePoint  # noqa: E402
from quickstudy.report.bootstrap import Estimate  # noqa: E402
from quickstudy.report.thesis import ThesisReading  # noqa: E402
from quickstudy.study.layout import SETTINGS, ZERO_SHOT, trained_settings  # noqa: E402

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
BASELINE_MARKERS = ["s", "D", "^", "v", "P", "X"]
ROUGE_LABEL = "ROUGE-L F-measure (×100)"
DPI = 150
VERDICT_COLOURS = {"helps": "#0072B2", "hurts": "#D55E00", "no clear difference": "#999999"}
MIN_Y_SPAN = 10.0  # ROUGE-L points
LABEL_GAP = 4  # points between a crossover label and its line, and between stacked labels
LABEL_ROWS = 8  # how far down a crossover label may move to stay clear of the others
FIGURE_1_1 = "figure_1_1"  # the thesis's one-glance summary, the report's first figure


@dataclass(frozen=True)
class Figure:
    name: str
    path: Path
    title: str
    caption: str


def write_figures(analysis: Analysis, out_dir: Path, reading: ThesisReading | None = None) -> list[Figure]:
    """Draw every figure into `out_dir` as PNG; returns them in reading order (Figure 1.1 first)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    rows = summary_rows(reading) if reading else []
    if rows:
        figures.append(_summary_figure(rows, out_dir / f"{FIGURE_1_1}.png"))
    if any(setting.name in analysis.curves for setting in trained_settings()):
        figures.append(_curves_figure(analysis, out_dir / "sample_efficiency.png"))
    for setting in (s.name for s in trained_settings()):
        figure = _category_bars(analysis, setting, out_dir / f"categories_{setting}.png")
        if figure:
            figures.append(figure)
    if analysis.category_effects:
        figures.append(_effects_figure(analysis, out_dir / "instruction_effect_by_category.png"))
    return figures


def error_bars(estimates: list[Estimate]) -> list[list[float]]:
    """matplotlib's [below, above] lengths of the 95% intervals; never negative (a zero-width
    interval computed with rounding error still draws), NaN drawn as no bar."""

    def length(a: float, b: float) -> float:
        return max(a - b, 0.0) if math.isfinite(a - b) else 0.0

    return [[length(e.value, e.low) for e in estimates], [length(e.high, e.value) for e in estimates]]


def _save(fig, path: Path) -> None:
    temporary = path.with_name(path.stem + ".tmp.png")
    fig.savefig(temporary, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    temporary.replace(path)


def summary_rows(reading: ThesisReading) -> list[tuple[str, float, str]]:
    """Figure 1.1's rows, top to bottom: zero-shot, the proposed model where it matches the SOTA,
    where it surpasses it, and the SOTA; in the setting that matches it with the least data."""
    candidates = [r for r in reading.settings.values() if r.sota is not None]
    if not candidates:
        return []
    chosen = min(
        candidates, key=lambda r: (r.matches_sota is None, r.matches_sota.share or 1.0 if r.matches_sota else 1.0)
    )
    sota, name = chosen.sota, chosen.setting.upper()
    rows = []
    if reading.zero_shot is not None:
        zero_shot = f"few-shot inference, no fine-tuning\n(zero-shot: {reading.zero_shot.arm})"
        rows.append((zero_shot, reading.zero_shot.rougeL, OKABE_ITO[4]))
    shown: set[str] = set()
    for point, verb in ((chosen.matches_sota, "matches"), (chosen.surpasses_sota, "surpasses")):
        if point is not None and point.size not in shown:
            shown.add(point.size)
            share = "" if point.share is None else f", {100 * point.share:.2f}% of train data"
            label = f"{name} instruction-tuned, {point.size} per task{share}\n({verb} the SOTA)"
            rows.append((label, point.rougeL, OKABE_ITO[0]))
    if chosen.matches_sota is None:
        best = max(chosen.sizes, key=lambda p: p.rougeL)
        rows.append(
            (f"{name} instruction-tuned, best size {best.size} per task\n(below the SOTA)", best.rougeL, OKABE_ITO[0])
        )
    label = f"supervised SOTA: {sota.setting.upper()} {sota.arm} @ {sota.size}\n(no instructions, 100% of train data)"
    rows.append((label, sota.rougeL, "#000000"))
    return rows


def _summary_figure(rows: list[tuple[str, float, str]], path: Path) -> Figure:
    fig, ax = plt.subplots(figsize=(8.0, 0.75 * len(rows) + 1.0))
    positions = list(range(len(rows)))[::-1]
    ax.barh(positions, [value for _, value, _ in rows], color=[colour for _, _, colour in rows], height=0.6)
    for y, (_, value, _) in zip(positions, rows):
        ax.annotate(f"{value:.2f}", (value, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=9)
    ax.set_yticks(positions, [label for label, _, _ in rows], fontsize=8)
    ax.set_xlim(0, max(100.0, max(value for _, value, _ in rows) * 1.1))
    ax.set_xlabel(ROUGE_LABEL)
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title("The study at a glance (the thesis's Figure 1.1)")
    caption = (
        "Overall ROUGE-L of zero-shot inference, of the instruction-tuned model fine-tuned at the smallest sampled "
        "size that matches the supervised SOTA (within the tolerance) and at the smallest that surpasses it, and "
        "of the SOTA (full data, no instructions); shares are of the summed train pools."
    )
    _save(fig, path)
    return Figure(FIGURE_1_1, path, "Figure 1.1: at a glance", caption)


def sample_efficiency_plot(analysis: Analysis) -> Canvas:
    """The learning curves, one panel per trained setting, crossover labels clear of each other."""
    settings = [s.name for s in trained_settings() if s.name in analysis.curves]
    fig, axes = plt.subplots(1, len(settings), figsize=(6.4 * len(settings), 5.6), sharey=True, squeeze=False)
    labels = [_draw_curves(ax, analysis, setting) for ax, setting in zip(axes[0], settings)]
    axes[0][0].set_ylabel(ROUGE_LABEL)
    low, high = axes[0][0].get_ylim()
    if high - low < MIN_Y_SPAN:  # e.g. an untrained smoke study scoring 0 everywhere
        low = max(0.0, (low + high - MIN_Y_SPAN) / 2)
        axes[0][0].set_ylim(low, low + MIN_Y_SPAN)
    for ax, ax_labels in zip(axes[0], labels):  # once the limits are final, so are the labels' boxes
        _keep_labels_apart(ax, ax_labels)
    return fig


def _curves_figure(analysis: Analysis, path: Path) -> Figure:
    fig = sample_efficiency_plot(analysis)
    caption = (
        "Overall ROUGE-L against training instances per task (log scale). Lines: instruction-tuned model fine-tuned "
        "with instructions; markers: no-instruction baselines at their size; dashed: full-data no-instruction baseline "
        "(supervised SOTA); dotted: zero-shot. Bands and bars: 95% bootstrap intervals over test instances"
        " (and seeds). The x position of 'all' is the mean train pool per task."
    )
    _save(fig, path)
    return Figure("sample_efficiency", path, "Sample efficiency", caption)


def _draw_curves(ax, analysis: Analysis, setting: str) -> list[Annotation]:
    """Draws one setting's panel; returns its crossover labels."""
    points = analysis.curves[setting]
    proposed: dict[str, list[CurvePoint]] = {}
    baselines: dict[str, list[CurvePoint]] = {}
    for point in points:
        (proposed if point.role == "proposed" else baselines).setdefault(point.key.arm, []).append(point)
    colours = iter(OKABE_ITO)
    for arm, arm_points in proposed.items():
        colour = next(colours)
        xs = [p.x for p in arm_points]
        described = analysis.results.arms.get((setting, arm))
        ax.plot(
            xs,
            [p.estimate.value for p in arm_points],
            "-o",
            color=colour,
            lw=2,
            ms=6,
            label=f"{described.title if described else arm} (instructions)",
            zorder=3,
        )
        ax.fill_between(
            xs,
            [p.estimate.low for p in arm_points],
            [p.estimate.high for p in arm_points],
            color=colour,
            alpha=0.18,
            lw=0,
        )
    for (arm, arm_points), marker in zip(baselines.items(), BASELINE_MARKERS * 3):
        colour = next(colours, "#000000")
        for i, p in enumerate(arm_points):
            ax.errorbar(
                p.x,
                p.estimate.value,
                yerr=error_bars([p.estimate]),
                fmt=marker,
                color=colour,
                ms=8,
                capsize=4,
                label=f"{arm} @ {p.key.size} (no instructions)" if i == 0 else None,
                zorder=4,
            )
    labels = _draw_reference_lines(ax, analysis, setting)
    ax.set_xscale("log")
    ticks = [info for info in analysis.sizes.values()]
    ax.set_xticks([info.x for info in ticks], [info.tick for info in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    if ticks:
        ax.set_xlim(ticks[0].x / 1.6, ticks[-1].x * 1.6)
    ax.set_xlabel("training instances per task (log scale)")
    ax.set_title(SETTINGS[setting].title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8, ncol=1, frameon=False)
    return labels


def _draw_reference_lines(ax, analysis: Analysis, setting: str) -> list[Annotation]:
    """Draws the SOTA and zero-shot levels and the crossovers; returns the crossovers' labels."""
    if setting in analysis.sota:
        reference, _ = analysis.sota[setting]
        level = analysis.overall[reference]["rougeL"]
        note = "" if reference.setting == setting else " (STL; no MTL full-data baseline)"
        ax.axhline(level.value, color="#000000", ls="--", lw=1.4, label=f"supervised SOTA: {reference.arm} @ all{note}")
        ax.axhspan(level.low, level.high, color="#000000", alpha=0.06, lw=0)
    for point in analysis.curves.get(ZERO_SHOT.name, []):
        ax.axhline(point.estimate.value, color="#CC79A7", ls=":", lw=1.8, label=f"zero-shot ({point.key.arm})")
        ax.axhspan(point.estimate.low, point.estimate.high, color="#CC79A7", alpha=0.10, lw=0)
    labels = []
    for crossover in analysis.crossovers:
        if crossover.setting == setting and crossover.x is not None and math.isfinite(crossover.x):
            share = f", {crossover.fraction:.1%} of data" if crossover.fraction is not None else ""
            ax.axvline(crossover.x, color="#555555", ls=(0, (1, 3)), lw=1)
            named = f"{crossover.arm} " if len({c.arm for c in analysis.crossovers if c.setting == setting}) > 1 else ""
            label = ax.annotate(
                f"{named}matches SOTA at\n≈{crossover.x:,.0f}/task{share}",
                (crossover.x, 0.97),
                xycoords=("data", "axes fraction"),
                xytext=(LABEL_GAP, 0),
                textcoords="offset points",
                fontsize=8,
                color="#333333",
                va="top",
            )
            labels.append(label)
    return labels


def _keep_labels_apart(ax, labels: list[Annotation]) -> None:
    """Moves each label to the first place, right then left of its line and row by row down from
    the top, where its box overlaps no label placed before it, stays inside the axes and, if it
    can, clear of the error bars."""
    renderer = ax.figure.canvas.get_renderer()
    bars = [
        part.get_window_extent(renderer)
        for container in ax.containers
        if isinstance(container, ErrorbarContainer)
        for part in container.get_children()
    ]
    placed: list = []
    for label in labels:
        row = label.get_window_extent(renderer).height * 72 / ax.figure.dpi + LABEL_GAP  # points
        candidates = [(side, -step * row) for step in range(LABEL_ROWS) for side in (1, -1)]
        badness = []
        for candidate in candidates:
            box = _moved_label_box(label, candidate, renderer)
            inside = ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1 and ax.bbox.y0 <= box.y0
            overlaps = sum(box.overlaps(other) for other in placed), sum(box.overlaps(bar) for bar in bars)
            badness.append((overlaps[0], not inside, overlaps[1]))
        best = candidates[badness.index(min(badness))]  # the first of the least bad: labels apart before all
        placed.append(_moved_label_box(label, best, renderer))


def _moved_label_box(label: Annotation, place: tuple[int, float], renderer):
    """Puts `label` on the right (side 1) or left (-1) of its point, `dy` points down; returns its box."""
    side, dy = place
    label.set_horizontalalignment("left" if side > 0 else "right")
    label.xyann = (side * LABEL_GAP, dy)
    return label.get_window_extent(renderer)


def _category_bars(analysis: Analysis, setting: str, path: Path) -> Figure | None:
    keys = [k for k in analysis.ordered_cells(setting) if analysis.cells[k].role == "proposed"]
    if not keys or not analysis.categories:
        return None
    categories = analysis.categories
    width = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(categories) + 2), 4.6))
    for i, (key, colour) in enumerate(zip(keys, OKABE_ITO * 2)):
        estimates = [analysis.category_scores[(key, c, "rougeL")] for c in categories]
        xs = [j + (i - (len(keys) - 1) / 2) * width for j in range(len(categories))]
        values = [e.value for e in estimates]
        errors = error_bars(estimates)
        ax.bar(
            xs,
            values,
            width,
            yerr=errors,
            color=colour,
            capsize=2,
            error_kw={"lw": 0.8},
            label=f"{key.arm} @ {key.size} ({analysis.sizes[key.size].x:,.0f}/task)",
        )
    counts = {c: analysis.category_tasks.get(c, 0) for c in categories}
    ticks = [f"{c.replace(' ', chr(10), 1)}\n({n} task{'' if n == 1 else 's'})" for c, n in counts.items()]
    ax.set_xticks(range(len(categories)), ticks, fontsize=8)
    ax.set_ylabel(ROUGE_LABEL)
    ax.set_xlabel("task category")
    ax.set_title(f"{SETTINGS[setting].title}: category scores by training size")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(4, len(keys)), loc="upper center", bbox_to_anchor=(0.5, -0.18))
    _save(fig, path)
    caption = (
        f"{setting.upper()}: ROUGE-L per category of the arm fine-tuned with instructions, one bar per training "
        "size (instances per task in the legend); error bars are 95% bootstrap intervals."
    )
    return Figure(f"categories_{setting}", path, f"Categories ({setting.upper()})", caption)


def instruction_effect_plot(analysis: Analysis) -> Canvas:
    """Whether instructions help or hurt per category, one panel per trained setting on one x scale."""
    settings = [s.name for s in trained_settings() if any(e.setting == s.name for e in analysis.category_effects)]
    fig, axes = plt.subplots(
        1,
        len(settings),
        figsize=(5.6 * len(settings), 0.45 * len(analysis.categories) + 1.6),
        squeeze=False,
        sharex=True,  # equal effects line up across the panels
        sharey=True,
    )
    # One row per category across the panels (the y axis is shared): a panel without a category's effect
    # (e.g. its runs pending) leaves that row empty rather than shifting the others under the wrong label.
    drawn = {e.category for e in analysis.category_effects}
    order = [c for c in analysis.categories[::-1] if c in drawn]
    for ax, setting in zip(axes[0], settings):
        effects = {e.category: e for e in analysis.category_effects if e.setting == setting}
        shown = [c for c in order if c in effects]
        estimates = [effects[c].estimate for c in shown]
        values = [e.value for e in estimates]
        errors = error_bars(estimates)
        colours = [VERDICT_COLOURS[effects[c].verdict] for c in shown]
        ax.barh([order.index(c) for c in shown], values, xerr=errors, color=colours, capsize=3)
        ax.axvline(0, color="#000000", lw=0.8)
        ax.set_xlabel("Δ ROUGE-L, instructions − no instructions (points)")
        ax.set_title(f"{setting.upper()}: effect of instructions at equal data")
        ax.grid(True, axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(order)), order, fontsize=8)
    return fig


def _effects_figure(analysis: Analysis, path: Path) -> Figure:
    fig = instruction_effect_plot(analysis)
    caption = (
        "Per category, ROUGE-L of the instruction arm minus each no-instruction baseline at the same training "
        "size, averaged over those pairs, with 95% bootstrap intervals; blue: instructions help, vermillion: they hurt, grey: the interval includes zero."
    )
    _save(fig, path)
    return Figure("instruction_effect_by_category", path, "Effect of instructions by category", caption)
