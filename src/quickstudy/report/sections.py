"""The report's content: the Analysis in words, tables and figures, as document blocks."""

from __future__ import annotations

import math
from typing import Any

from quickstudy.report.analysis import Analysis, ArmProgress, Crossover
from quickstudy.report.bootstrap import CellKey, Estimate
from quickstudy.report.cost import recorded_before_launch
from quickstudy.report.document import Block, Bullets, Heading, Image, Paragraph, Table
from quickstudy.report.figures import FIGURE_1_1, Figure
from quickstudy.report.forecast.answers import Forecast
from quickstudy.report.tables import DataTables, data_tables
from quickstudy.report.thesis import ThesisReading, thesis_reading
from quickstudy.report.thesis_sections import PROMPT_COLUMNS, data_table_blocks, prompt_columns, thesis_section
from quickstudy.study.layout import ZERO_SHOT, trained_settings
from quickstudy.study.plan import leakage_text

TOP_TRUNCATED = 10
HEADLINE_FIGURE = "sample_efficiency"  # shown right after the answers


def number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def time_text(hours: float) -> str:
    """A length of time in the unit that reads best: seconds, minutes or hours."""
    seconds = hours * 3600
    if not math.isfinite(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{hours:,.1f} h"


def signed(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:+.2f}"


def percent(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def duration(hours: float) -> str:
    seconds = round(hours * 3600)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def interval(estimate: Estimate) -> str:
    return f"[{number(estimate.low)}, {number(estimate.high)}]"


def study_name(analysis: Analysis) -> str:
    return str(analysis.results.config.get("name") or analysis.results.study_dir.name)


def report_blocks(
    analysis: Analysis, figures: list[Figure], reading: ThesisReading | None = None, forecast: Forecast | None = None
) -> list[Block]:
    """Every section in reading order: the answers and the headline figure first (a report's first
    screen), then the thesis's reading, what is missing, what was run, and the details."""
    by_name = {figure.name: figure for figure in figures}
    reading = reading or thesis_reading(analysis)
    blocks: list[Block] = [Heading(1, f"quickstudy report: {study_name(analysis)}")]
    tables = data_tables(analysis)
    blocks += answer_blocks(analysis)
    for name in (FIGURE_1_1, HEADLINE_FIGURE):  # the thesis's one-glance summary first, then the curves
        if name in by_name:
            blocks.append(Image(by_name[name]))
    blocks += thesis_section(reading)
    blocks += _completeness(analysis)
    blocks += _header(analysis)
    blocks += data_table_blocks(analysis, tables)
    blocks += _curves(analysis, {name: figure for name, figure in by_name.items() if name != HEADLINE_FIGURE})
    if forecast is not None:
        from quickstudy.report.forecast.blocks import forecast_blocks  # it formats with this module's helpers

        blocks += forecast_blocks(forecast, by_name)
    blocks += _categories(analysis, by_name)
    blocks += _tasks(analysis, tables)
    blocks += _notes(analysis)
    return blocks


# --- what was run ---------------------------------------------------------------------


def _describe_model(role: str, spec: Any) -> str:
    if isinstance(spec, dict) and isinstance(spec.get("prefinetune"), dict):
        build = spec["prefinetune"]
        return (
            f"`{role}`: `{build.get('from', '?')}` pre-finetuned with encoding `{build.get('encoding', '?')}`, "
            f"{build.get('per_task', '?')} instances per seen task"
        )
    if isinstance(spec, dict):
        name = spec.get("name_or_path", spec)
        extras = ", LoRA" if spec.get("lora") else ""
        return f"`{role}`: `{name}`{extras}"
    return f"`{role}`: `{spec}`"


def _header(analysis: Analysis) -> list[Block]:
    results, config = analysis.results, analysis.results.config
    runs = results.runs
    seeds = config.get("seeds") or sorted({r.seed for r in runs if r.seed is not None})
    encodings = sorted({arm.encoding for arm in results.arms.values() if arm.encoding})
    devices = sorted({str(r.device) for r in runs if r.device})
    collection = config.get("collection", "not recorded")
    if isinstance(collection, dict):
        collection = ", ".join(f"{k}: {v}" for k, v in collection.items())
    elif config.get("split"):
        collection = f"{collection} (split `{config['split']}`)"
    models = config.get("models") or {}
    total_wall = sum(p.wall_hours for p in analysis.progress)
    total_gpu = sum(p.gpu_hours for p in analysis.progress)
    bullets = [
        f"**Study directory**: `{results.study_dir}`",
        f"**Collection**: {collection}; {len(analysis.tasks)} evaluated tasks in {len(analysis.categories)} categories",
        "**Models**: " + ("; ".join(_describe_model(role, spec) for role, spec in models.items()) or "not recorded"),
        f"**Seeds**: {', '.join(str(s) for s in seeds) or 'not recorded'}",
        f"**Encodings**: {', '.join(f'`{e}`' for e in encodings) or 'not recorded'}",
        f"**Hardware**: {', '.join(devices) or 'not recorded'}",
        f"**Compute**: {duration(total_wall)} wall-clock (h:mm:ss, runs summed) and {total_gpu:.2f} GPU-hours over {len(runs)} runs",
        f"**Leakage across tasks**: {leakage_text(results.leakage)}",
        *_estimate_bullets(analysis),
    ]
    arm_rows = []
    for progress in analysis.progress:
        arm = results.arms.get((progress.setting or "", progress.arm))
        sizes = sorted(
            {k.size for k in analysis.cells if k.arm == progress.arm and k.setting == progress.setting},
            key=lambda s: analysis.sizes[s].x if s in analysis.sizes else 0,
        )
        arm_rows.append(
            [
                progress.arm + (" (LoRA)" if arm and arm.lora else ""),
                progress.setting or "–",
                arm.role if arm else "–",
                (arm.start if arm else None) or "–",
                (arm.encoding if arm else None) or "–",
                ", ".join(sizes) or "–",
                str(progress.done),
                str(progress.failed),
                str(progress.pending),
                duration(progress.wall_hours),
                f"{progress.gpu_hours:.2f}",
                *(_estimate_cells(progress) if results.estimate else []),
            ]
        )
    size_rows = [
        [
            info.label,
            number(info.x, 1) + (" (placeholder)" if info.placeholder else ""),
            f"{info.total:,}" if info.total is not None else "–",
            percent(info.fraction),
        ]
        for info in analysis.sizes.values()
    ]
    return [
        Heading(2, "What was run"),
        Bullets(bullets),
        Table(
            [
                "arm",
                "setting",
                "role",
                "start model",
                "encoding",
                "sizes evaluated",
                "done",
                "failed",
                "pending",
                "wall time (h:mm:ss)",
                "GPU-hours",
                *(["estimated", "measured", "measured / estimated"] if results.estimate else []),
            ],
            arm_rows,
            numeric=[False] * 6 + [True] * (8 if results.estimate else 5),
            caption="Arms (evaluate runs counted; time sums every run of the arm, training included)."
            + (
                " Estimated: the compute recorded before launch for the arm's done runs on the estimate's kind of "
                "device; measured: the device time those runs took (GPU-hours, or on the CPU wall time per "
                "process), loading, saving and scoring included."
                if results.estimate
                else ""
            ),
        ),
        Table(
            ["size", "train instances per task (mean)", "train instances (all tasks)", "share of train pool"],
            size_rows,
            numeric=[False, True, True, True],
            caption="Training data per size (as the thesis's Table 4.3).",
        ),
    ]


def _estimate_bullets(analysis: Analysis) -> list[str]:
    """The estimate recorded before launch against what its runs took, in one line."""
    estimate, cost = analysis.results.estimate, analysis.cost
    if estimate is None or cost is None:
        return [
            "**Estimate before launch**: none recorded (`quickstudy study plan CONFIG --estimate --out STUDY_DIR` "
            "before `study run` records one, and this section then shows it beside the measured hours)"
        ]
    when = recorded_before_launch(estimate, analysis.results.runs)
    recorded = "" if estimate.recorded_at is None else f"recorded {estimate.recorded_at:%Y-%m-%d %H:%M} UTC"
    if when is False:
        recorded += ", after the first run had started"
    device = "CPU" if estimate.kind == "cpu" else "GPU"
    parts = [
        f"{time_text(cost.estimated_hours)} of compute for the {cost.compared} done runs it covers that ran on a "
        f"{device}; they took {time_text(cost.measured_hours)} of {device} time"
        + (f" ({number(cost.ratio, 1)}x the estimate, loading, saving and scoring included)" if cost.compared else "")
    ]
    if cost.covered < cost.planned:
        parts.append(f"it covers {cost.covered} of the study's {cost.planned} runs")
    if cost.other_device:
        parts.append(f"{cost.other_device} done runs it covers ran on another kind of device and are not compared")
    if cost.not_covered:
        parts.append(
            f"{cost.not_covered} done runs are not in it (planned with another configuration: "
            "`study plan --estimate --out` estimates the present one)"
        )
    head = "; ".join(part for part in (estimate.device, recorded, estimate.assumption) if part)
    return [f"**Estimate before launch** ({head}): " + "; ".join(parts)]


def _estimate_cells(progress: ArmProgress) -> list[str]:
    cost = progress.cost
    if cost is None or not cost.compared:
        return ["–", "–", "–"]
    return [time_text(cost.estimated_hours), time_text(cost.measured_hours), number(cost.ratio, 2)]


def _completeness(analysis: Analysis) -> list[Block]:
    items = []
    for progress in analysis.progress:
        name = f"{progress.arm} ({progress.setting or 'shared'})"
        parts = []
        if progress.pending or progress.failed:
            parts.append(
                f"{progress.pending} pending, {progress.failed} failed of {progress.done + progress.pending + progress.failed} runs"
            )
        if progress.missing_sizes:
            parts.append(f"no finished evaluation yet at size {', '.join(progress.missing_sizes)}")
        if parts:
            items.append(f"{name}: {'; '.join(parts)}")
        items += [f"failed run {error}" for error in progress.errors[:5]]
        if len(progress.errors) > 5:
            items.append(f"... and {len(progress.errors) - 5} more failed runs of {name}")
    most = max((len(c.tasks) for c in analysis.cells.values()), default=0)
    items += [
        f"{key.label} covers {count} of {most} tasks: its mean is not comparable with complete cells"
        for key, count in sorted(analysis.partial_cells.items(), key=lambda item: item[0].slug)
    ]
    if not analysis.cells:
        items.append("no evaluation has finished yet: there are no scores to report")
    text = "The study is complete: every run finished." if not items else "The study is **partial**; what is missing:"
    return [Heading(2, "Completeness"), Paragraph(text)] + ([Bullets(items)] if items else [])


# --- the answers --------------------------------------------------------------------------


def crossover_sentence(crossover: Crossover, analysis: Analysis) -> str:
    """The crossover in words: where the proposed arm matches the supervised SOTA."""
    arm = analysis.results.arms.get((crossover.setting, crossover.arm))
    head = f"**{crossover.setting.upper()}** (`{crossover.arm}`{_start_text(arm)})"
    if crossover.reference is None:
        return f"{head}: no full-data no-instruction baseline finished, so there is nothing to match."
    level = analysis.overall[crossover.reference]["rougeL"]
    reference = f"the supervised SOTA ({crossover.reference_note}; ROUGE-L {number(level.value)})"
    low, high = crossover.fraction_interval or (None, None)
    x_low, x_high = crossover.x_interval or (math.nan, math.nan)
    spread = (
        f" (95% interval {percent(low)} to {percent(high) if math.isfinite(x_high) else 'not reached'}"
        f"; {number(x_low, 0)} to {number(x_high, 0) if math.isfinite(x_high) else 'not reached'} per task)"
    )
    if crossover.status == "not reached":
        best = max(
            (p.estimate.value for p in analysis.curves[crossover.setting] if p.key.arm == crossover.arm),
            default=math.nan,
        )
        tail = (
            f"; within the 95% interval it may match from {percent(low)} of the training data"
            f" (≈{number(x_low, 0)} instances per task)"
            if math.isfinite(x_low)
            else ""
        )
        return f"{head} does not reach {reference}: its best is {number(best)}{tail}."
    share = (
        f"{percent(crossover.fraction)} of the training data"
        if crossover.fraction is not None
        else "an unknown share of the data (no train pool recorded)"
    )
    where = "already at its smallest size, " if crossover.status != "reached" else ""
    return (
        f"{head} matches {reference} {where}at ≈{number(crossover.x, 0)} training instances per task, {share}{spread}."
    )


def _start_text(arm: Any) -> str:
    """`, from <start model>[, LoRA]` for an arm whose start model is known."""
    if arm is None:
        return ""
    return (f", from `{arm.start}`" if arm.start else "") + (", LoRA" if arm.lora else "")


def quickest_learner_sentences(analysis: Analysis) -> list[str]:
    """Which instruction-tuned model is the quickest learner: per setting, the start models in
    the order their instruction arms reach the supervised SOTA (interpolated crossover)."""
    sentences = []
    for setting in dict.fromkeys(q.setting for q in analysis.quickest):
        ranked = [q for q in analysis.quickest if q.setting == setting]
        parts = []
        for learner in ranked:
            crossover = learner.crossover
            where = (
                f"does not reach it (best {number(learner.best)})"
                if crossover.x is None
                else f"≈{number(crossover.x, 0)} instances per task ({percent(crossover.fraction)})"
            )
            parts.append(f"`{learner.start}` (`{crossover.arm}`) {where}")
        first = ranked[0]
        verdict = (
            f"`{first.start}`"
            if first.crossover.x is not None
            else f"none reaches the supervised SOTA; the closest is `{first.start}`"
        )
        sentences.append(f"**{setting.upper()}**: {verdict}; reaching the supervised SOTA: " + "; ".join(parts) + ".")
    return sentences


def delta_sentence(delta, analysis: Analysis) -> str:
    return (
        f"{delta.a.label} vs {delta.b.label}: {signed(delta.estimate.value)} ROUGE-L "
        f"(95% interval {signed(delta.estimate.low)} to {signed(delta.estimate.high)})"
    )


def answer_blocks(analysis: Analysis) -> list[Block]:
    """The answers section (the report's first; `report` and `demo` print it in the terminal)."""
    blocks: list[Block] = [Heading(2, "The answers")]
    if not analysis.cells:
        return blocks + [Paragraph("No scores yet.")]
    blocks.append(Paragraph("**How much data does the instruction-tuned model need to match the supervised SOTA?**"))
    blocks.append(
        Bullets([crossover_sentence(c, analysis) for c in analysis.crossovers] or ["No instruction arm has finished."])
    )
    if len(analysis.start_models()) > 1:
        blocks.append(Paragraph("**Which instruction-tuned model is the quickest learner?**"))
        blocks.append(
            Bullets(quickest_learner_sentences(analysis) or ["No start model's instruction arm has finished."])
        )
    groups = [
        (
            "instruction pre-finetuning",
            "**Gain from instruction pre-finetuning** (instruction-tuned start vs the base pre-finetuned without instructions, equal data):",
        ),
        (
            "instructions at equal data",
            "**Gain from instructions at equal data** (instruction arm vs no-instruction baseline at the same size):",
        ),
        ("MTL - STL", "**MTL minus STL** at each size:"),
    ]
    for kind, title in groups:
        deltas = [d for d in analysis.deltas if d.kind == kind]
        blocks += [
            Paragraph(title),
            Bullets([delta_sentence(d, analysis) for d in deltas] or ["not available in this study"]),
        ]
    blocks.append(
        Paragraph(
            "**Categories where instructions help or hurt** (ROUGE-L, instruction arm minus baseline at equal data, "
            "mean over the equal-data pairs; a verdict needs a 95% interval that excludes zero):"
        )
    )
    items = []
    for setting in sorted({e.setting for e in analysis.category_effects}):
        effects = [e for e in analysis.category_effects if e.setting == setting]
        helps = [f"{e.category} ({signed(e.estimate.value)})" for e in effects if e.verdict == "helps"]
        hurts = [f"{e.category} ({signed(e.estimate.value)})" for e in effects if e.verdict == "hurts"]
        items.append(f"{setting.upper()}: help: {', '.join(helps) or 'none'}; hurt: {', '.join(hurts) or 'none'}")
    blocks.append(Bullets(items or ["not available: no equal-data baseline finished"]))
    return blocks


# --- curves, categories, tasks --------------------------------------------------------------


def _curves(analysis: Analysis, figures: dict[str, Figure]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Sample efficiency")]
    if "sample_efficiency" in figures:
        blocks.append(Image(figures["sample_efficiency"]))
    rows = []
    for key in analysis.ordered_cells():
        cell, scores = analysis.cells[key], analysis.overall[key]
        info = analysis.sizes.get(key.size)
        rows.append(
            [
                key.label,
                cell.role,
                number(info.x, 1) if info else "0",
                percent(info.fraction) if info else "0.0%",
                number(scores["rougeL"].value),
                interval(scores["rougeL"]),
                number(scores["exact_match"].value),
                number(scores["rouge1"].value),
                str(len(cell.seeds)),
                str(len(cell.tasks)),
                str(cell.n_instances),
            ]
        )
    blocks.append(
        Table(
            [
                "cell",
                "role",
                "train/task",
                "share of data",
                "ROUGE-L",
                "95% interval",
                "exact match",
                "ROUGE-1",
                "seeds",
                "tasks",
                "test instances",
            ],
            rows,
            numeric=[False, False] + [True] * 9,
            caption="Overall scores (mean over all test instances, averaged over seeds).",
        )
    )
    return blocks


def _category_table(analysis: Analysis, keys: list[CellKey], view: bool) -> Table:
    rows = []
    for category in analysis.categories:
        row = [category, str(analysis.category_tasks.get(category, 0))]
        if view:
            row.append("EM" if analysis.category_view(keys[0], category)[0] == "exact_match" else "ROUGE-L")
        for key in keys:
            estimate = (
                analysis.category_view(key, category)[1]
                if view
                else analysis.category_scores[(key, category, "rougeL")]
            )
            row.append(number(estimate.value))
        rows.append(row)
    columns = ["category", "tasks"] + (["metric"] if view else []) + [k.label for k in keys]
    caption = (
        "SuperNI's category view (exact match for classification-like categories, ROUGE-L otherwise)."
        if view
        else "ROUGE-L per category."
    )
    return Table(columns, rows, numeric=[False, True] + [False] * view + [True] * len(keys), caption=caption)


def _categories(analysis: Analysis, figures: dict[str, Figure]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Per category")]
    zero_shot = analysis.ordered_cells(ZERO_SHOT.name)
    settings = [s for s in trained_settings() if analysis.ordered_cells(s.name)]
    if zero_shot and not settings:
        blocks += [_category_table(analysis, zero_shot, view=False), _category_table(analysis, zero_shot, view=True)]
    for setting in settings:
        keys = analysis.ordered_cells(setting.name)
        table = f" (the thesis's Table {setting.thesis_table})" if setting.thesis_table else ""
        blocks.append(Heading(3, f"{setting.label}{table}"))
        blocks += [
            _category_table(analysis, keys + zero_shot, view=False),
            _category_table(analysis, keys + zero_shot, view=True),
        ]
        if f"categories_{setting.name}" in figures:
            blocks.append(Image(figures[f"categories_{setting.name}"]))
    if analysis.category_effects:
        blocks.append(Heading(3, "Where instructions help or hurt"))
        if "instruction_effect_by_category" in figures:
            blocks.append(Image(figures["instruction_effect_by_category"]))
        rows = [
            [
                e.setting.upper(),
                e.category,
                signed(e.estimate.value),
                f"[{signed(e.estimate.low)}, {signed(e.estimate.high)}]",
                str(e.pairs),
                e.verdict,
            ]
            for e in analysis.category_effects
        ]
        blocks.append(
            Table(
                ["setting", "category", "Δ ROUGE-L", "95% interval", "equal-data pairs", "verdict"],
                rows,
                numeric=[False, False, True, False, True, False],
            )
        )
    return blocks


def _tasks(analysis: Analysis, tables: DataTables) -> list[Block]:
    keys = analysis.ordered_cells()
    rows = [
        [row.task, row.category]
        + [number(row.rougeL.get(k)) for k in keys]
        + [signed(row.instruction_gain), percent(row.truncated)]
        + prompt_columns(tables, row.task)
        for row in analysis.tasks
    ]
    blocks: list[Block] = [
        Heading(2, "Per task"),
        Table(
            ["task", "category"] + [k.label for k in keys] + ["instruction gain", "prompts truncated"] + PROMPT_COLUMNS,
            rows,
            sortable=True,
            numeric=[False, False] + [True] * (len(keys) + 2 + len(PROMPT_COLUMNS)),
            caption="ROUGE-L per task and cell (click a column to sort). Instruction gain: mean equal-data difference "
            "instruction arm − baseline. Prompts truncated: share of evaluated prompts cut to the source budget. "
            "Prompt tokens: the task's train prompts with instructions, whole, in the study's tokenizer (section "
            "5.2.5's lengths); over the budget: the share longer than the source budget.",
        ),
    ]
    truncated = sorted((r for r in analysis.tasks if r.truncated), key=lambda r: -r.truncated)[:TOP_TRUNCATED]
    blocks.append(Heading(3, "Tasks whose prompts were truncated the most"))
    if truncated:
        blocks.append(
            Table(
                ["task", "category", "prompts truncated", "instruction gain"],
                [[r.task, r.category, percent(r.truncated), signed(r.instruction_gain)] for r in truncated],
                numeric=[False, False, True, True],
            )
        )
    else:
        blocks.append(Paragraph("No prompt was truncated."))
    return blocks


def _notes(analysis: Analysis) -> list[Block]:
    return [
        Heading(2, "How the numbers are computed"),
        Bullets(
            [
                "Scores are the official SuperNI metrics per test instance (ROUGE-L F-measure with stemming, maximum over "
                "references, x100; exact match after normalisation), read from each run's predictions.jsonl.",
                "A cell's score is the mean over all its test instances (SuperNI's overall), averaged over seeds.",
                f"95% intervals: percentile bootstrap with {analysis.n_boot} replicates, resampling test instances within each task "
                "(and seeds when a cell has several); one set of replicates is shared by all cells, so differences are paired.",
                "x position of a size: the mean number of training instances per task actually used (spec.json `train_instances`); "
                "'all' sits at the mean train pool per task. Share of data: instances used over all tasks / the total train pool "
                "(spec.json `train_pool`).",
                "Crossover: the first point where the instruction arm's curve, linear in log(instances per task) between its sizes, "
                "reaches the full-data no-instruction baseline; the interval repeats this on each bootstrap replicate.",
                "For MTL the study has no all-data MTL baseline (as in the thesis) unless one is configured; the STL one is then the reference.",
                "Category view: SuperNI's per-category metric choice (Tk-Instruct's compute_metrics.py), from quickstudy.evaluate.metrics.",
            ]
        ),
    ]
