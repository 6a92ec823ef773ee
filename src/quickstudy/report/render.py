"""Write the report files: report.md, report.html, results.csv, summary.json, figures/*.png.

Everything is rendered into a temporary folder beside the output, then moved into
place file by file with os.replace, so a failure never leaves a half-written report.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from quickstudy.config_files import validation_message
from quickstudy.errors import StudyError
from quickstudy.files import json_text, remove_stale_temps, writing
from quickstudy.report.analysis import Analysis, analyse
from quickstudy.report.document import to_html, to_markdown
from quickstudy.report.figures import write_figures
from quickstudy.report.forecast import FORECAST_FILE, forecast_study
from quickstudy.report.forecast.figures import forecast_figures
from quickstudy.report.results import METRICS, collect_study
from quickstudy.report.sections import answer_blocks, report_blocks, study_name
from quickstudy.report.thesis import ThesisReading, thesis_reading
from quickstudy.study.config import ReportOptions
from quickstudy.study.layout import CONFIG_FILE

CSV_COLUMNS = [
    "run_id",
    "arm",
    "setting",
    "size",
    "seed",
    "task",
    "category",
    "n",
    "rougeL",
    "exact_match",
    "rouge1",
    "prompts_truncated",
]


STAGING_PREFIX = ".report-"  # + pid: the folder a report is written in before it is moved into place


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    csv: Path
    summary: Path
    figures: list[Path]
    answers: str  # the answers section as Markdown, to print in the terminal


def build_report(
    study_dir: Path, out_dir: Path | None = None, n_boot: int = 1000, seed: int = 0, tolerance: float | None = None
) -> ReportFiles:
    """Read `study_dir`, analyse it and write the report into `out_dir` (default STUDY_DIR/report).

    The study config's `report:` section sets the options; `tolerance` overrides its tolerance."""
    study_dir = Path(study_dir)
    out_dir = Path(out_dir) if out_dir is not None else study_dir / "report"
    results = collect_study(study_dir)
    options = report_options(results.config, study_dir, tolerance)
    analysis = analyse(results, n_boot=n_boot, seed=seed, top_categories=options.top_categories)
    reading = thesis_reading(analysis, options.tolerance)
    with writing(out_dir):  # a read-only folder or a full disk: one line naming the folder
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out_dir, STAGING_PREFIX)  # left by a report killed mid-write
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=out_dir))
    with writing(out_dir), contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, staging, ignore_errors=True)
        forecast = forecast_study(analysis, seed=seed)
        figures = write_figures(analysis, staging / "figures", reading)
        figures += forecast_figures(forecast, staging / "figures")
        blocks = report_blocks(analysis, figures, reading, forecast=forecast)
        (staging / "report.md").write_text(to_markdown(blocks, staging / "figures", staging), encoding="utf-8")
        (staging / "report.html").write_text(
            to_html(blocks, f"quickstudy report: {study_name(analysis)}"), encoding="utf-8"
        )
        (staging / "results.csv").write_text(results_csv(analysis), encoding="utf-8")
        (staging / "summary.json").write_text(json_text(summary(analysis, reading), out_dir / "summary.json"), "utf-8")
        (staging / FORECAST_FILE).write_text(json.dumps(forecast.to_json(), indent=1), encoding="utf-8")
        (out_dir / "figures").mkdir(exist_ok=True)
        for figure in figures:
            os.replace(figure.path, out_dir / "figures" / figure.path.name)
        for name in ("results.csv", "summary.json", FORECAST_FILE, "report.md", "report.html"):
            os.replace(staging / name, out_dir / name)
    return ReportFiles(
        markdown=out_dir / "report.md",
        html=out_dir / "report.html",
        csv=out_dir / "results.csv",
        summary=out_dir / "summary.json",
        figures=[out_dir / "figures" / f.path.name for f in figures],
        answers=to_markdown(answer_blocks(analysis), out_dir / "figures", out_dir),
    )


def report_options(config: dict[str, Any], study_dir: Path, tolerance: float | None = None) -> ReportOptions:
    """The `report:` section of study.yaml (defaults when absent), `tolerance` given overriding it."""
    raw = dict(config.get("report") or {})
    if tolerance is not None:
        raw["tolerance"] = tolerance
    try:
        return ReportOptions.model_validate(raw)
    except ValidationError as error:
        where = "--tolerance" if tolerance is not None and "tolerance" in str(error) else study_dir / CONFIG_FILE
        raise StudyError(f"{where}: report.{validation_message(error)}") from None


def csv_rows(analysis: Analysis) -> list[dict[str, Any]]:
    """One row per done evaluate run x task, means over that task's test instances."""
    rows = []
    for run in analysis.results.scored:
        tasks = np.array(run.tasks, dtype=object)
        for task in sorted(set(run.tasks)):
            mask = tasks == task
            row = {
                "run_id": run.run.run_id,
                "arm": run.run.arm,
                "setting": run.run.setting,
                "size": run.run.size,
                "seed": run.run.seed,
                "task": task,
                "category": analysis.results.categories.get(task, "unknown"),
                "n": int(mask.sum()),
            }
            row |= {metric: round(float(run.scores[metric][mask].mean()), 4) for metric in METRICS}
            row["prompts_truncated"] = int(run.truncated[mask].sum())
            rows.append(row)
    return rows


def results_csv(analysis: Analysis) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(analysis))
    return buffer.getvalue()


def summary(analysis: Analysis, reading: ThesisReading | None = None) -> dict[str, Any]:
    """The numbers behind the report, JSON-ready."""

    def key(cell) -> str:
        return cell.slug

    return {
        "study": study_name(analysis),
        "study_dir": str(analysis.results.study_dir),
        "bootstrap_replicates": analysis.n_boot,
        "thesis_reading": (reading or thesis_reading(analysis)).to_json(),
        "sizes": {
            label: {
                "train_per_task": info.x,
                "train_total": info.total,
                "fraction": info.fraction,
                "placeholder": info.placeholder,
            }
            for label, info in analysis.sizes.items()
        },
        "cells": {
            key(k): {
                "setting": k.setting,
                "arm": k.arm,
                "size": k.size,
                "role": analysis.cells[k].role,
                "x": analysis.sizes[k.size].x if k.size in analysis.sizes else 0.0,
                "seeds": analysis.cells[k].seeds,
                "tasks": len(analysis.cells[k].tasks),
                "test_instances": analysis.cells[k].n_instances,
                **{metric: estimate.to_json() for metric, estimate in analysis.overall[k].items()},
            }
            for k in analysis.ordered_cells()
        },
        "supervised_sota": {
            setting: {"cell": key(cell), "note": note} for setting, (cell, note) in analysis.sota.items()
        },
        "crossovers": [
            {
                "setting": c.setting,
                "arm": c.arm,
                "reference": key(c.reference) if c.reference else None,
                "status": c.status,
                "train_per_task": c.x,
                "fraction": c.fraction,
                "train_per_task_interval": [_finite(v) for v in c.x_interval] if c.x_interval else None,
                "fraction_interval": list(c.fraction_interval) if c.fraction_interval else None,
            }
            for c in analysis.crossovers
        ],
        # per setting, the start models of the instruction arms, quickest to reach the supervised SOTA first
        "quickest_learner": [
            {"setting": q.setting, "start": q.start, "arm": q.crossover.arm, "train_per_task": q.crossover.x}
            for q in analysis.quickest
        ],
        "deltas": [
            {"kind": d.kind, "a": key(d.a), "b": key(d.b), "rougeL": d.estimate.to_json()} for d in analysis.deltas
        ],
        "category_effects": [
            {
                "setting": e.setting,
                "category": e.category,
                "rougeL_delta": e.estimate.to_json(),
                "pairs": e.pairs,
                "verdict": e.verdict,
            }
            for e in analysis.category_effects
        ],
        "categories": {
            key(k): {
                c: {
                    "rougeL": analysis.category_scores[(k, c, "rougeL")].to_json(),
                    "exact_match": analysis.category_scores[(k, c, "exact_match")].to_json(),
                    "superni_view_metric": analysis.category_view(k, c)[0],
                }
                for c in analysis.categories
            }
            for k in analysis.ordered_cells()
        },
        "tasks": {
            row.task: {
                "category": row.category,
                "rougeL": {key(k): v for k, v in row.rougeL.items()},
                "instruction_gain": row.instruction_gain,
                "prompts_truncated": row.truncated,
            }
            for row in analysis.tasks
        },
        "estimate": (
            {
                "device": analysis.results.estimate.device,
                "assumption": analysis.results.estimate.assumption,
                "kind": analysis.results.estimate.kind,
                "cost": asdict(analysis.cost) if analysis.cost else None,
            }
            if analysis.results.estimate
            else None
        ),
        "progress": [
            {
                "setting": p.setting,
                "arm": p.arm,
                "done": p.done,
                "failed": p.failed,
                "pending": p.pending,
                "errors": list(p.errors),
                "missing_sizes": list(p.missing_sizes),
                "wall_hours": p.wall_hours,
                "gpu_hours": p.gpu_hours,
                "cost": asdict(p.cost) if p.cost else None,
            }
            for p in analysis.progress
        ],
        "partial_cells": {key(k): n for k, n in analysis.partial_cells.items()},
    }


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
