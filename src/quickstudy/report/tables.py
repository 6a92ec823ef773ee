"""The thesis's data tables from the study's own runs: Table 4.2 (totals and prompt lengths),
Table 4.3 (train instances per category and size) and per-task prompt lengths.

Prompt lengths come from the finetune runs' spec.json `prompt_tokens` ({task: {n, mean,
max, over_budget}}: whole prompts in the study's tokenizer and encodings, before the
source budget); studies run before they were recorded show "not recorded".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quickstudy.report.analysis import Analysis
from quickstudy.report.results import RunRecord
from quickstudy.study.layout import PLAN_FILE

WITH, WITHOUT = "proposed", "baseline"  # arm roles: prompts with and without instructions


@dataclass(frozen=True)
class TaskPrompts:
    n: int
    mean: float
    max: int
    over_budget: int
    budget: int | None

    @property
    def share_over(self) -> float:
        return self.over_budget / self.n if self.n else 0.0


@dataclass(frozen=True)
class DataTables:
    tasks: int
    train_instances: int
    test_instances: int
    prefinetune_instances: int | None
    mean_prompt_tokens: dict[str, float | None]  # role -> mean over train instances
    prompts: dict[str, dict[str, TaskPrompts]]  # role -> task -> lengths (largest recorded sample)
    per_category: dict[str, dict[str, int]]  # category (as grouped) -> size label -> train instances
    category_tasks: dict[str, int]
    shares: dict[str, float | None]  # size label -> share of the summed train pools
    skipped_tasks: list[str]  # plan.json: unseen tasks with no train pool, left out of every arm
    below_smallest_size: dict[str, int]  # plan.json: task -> train pool below the smallest size


def data_tables(analysis: Analysis) -> DataTables:
    results = analysis.results
    tested = {(task, i) for run in results.scored for task, i in zip(run.tasks, run.instance_ids)}
    prompts = {role: _task_prompts(analysis, role) for role in (WITH, WITHOUT)}
    per_category: dict[str, dict[str, int]] = {}
    for label in analysis.sizes:
        counts = results.train_instances.get(label) or (results.train_pool if label == "all" else {})
        for task, n in counts.items():
            category = analysis.task_categories.get(task, "unknown")
            per_category.setdefault(category, {}).setdefault(label, 0)
            per_category[category][label] += n
    return DataTables(
        tasks=len(analysis.tasks),
        train_instances=sum(results.train_pool.values()),
        test_instances=len(tested),
        prefinetune_instances=_prefinetune_instances(results.runs),
        mean_prompt_tokens={role: _mean(found) for role, found in prompts.items()},
        prompts=prompts,
        per_category=dict(sorted(per_category.items(), key=lambda item: analysis.categories.index(item[0]))),
        category_tasks=analysis.category_tasks,
        shares={label: info.fraction for label, info in analysis.sizes.items()},
        **_planned_short_tasks(results.study_dir / PLAN_FILE),
    )


def _planned_short_tasks(plan_path: Path) -> dict[str, Any]:
    """What the plan says about short tasks (nothing for a plan written before it said so)."""
    try:
        plan = json.loads(plan_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        plan = {}
    skipped = plan.get("skipped_tasks") if isinstance(plan, dict) else None
    below = plan.get("below_smallest_size") if isinstance(plan, dict) else None
    return {
        "skipped_tasks": [str(name) for name in skipped] if isinstance(skipped, list) else [],
        "below_smallest_size": {str(k): int(v) for k, v in below.items()} if isinstance(below, dict) else {},
    }


def _task_prompts(analysis: Analysis, role: str) -> dict[str, TaskPrompts]:
    """Per task, the lengths recorded by the role's finetune run that saw most of its instances."""
    found: dict[str, TaskPrompts] = {}
    for run in analysis.results.runs:
        arm = analysis.results.arms.get((run.setting or "", run.arm or ""))
        recorded = run.spec.prompt_tokens
        if run.kind != "finetune" or arm is None or arm.role != role or not isinstance(recorded, dict):
            continue
        budget = run.spec.training.get("max_source_length")
        for task, raw in recorded.items():
            try:
                lengths = TaskPrompts(
                    int(raw["n"]), float(raw["mean"]), int(raw["max"]), int(raw["over_budget"]), budget
                )
            except (KeyError, TypeError, ValueError):
                continue  # a malformed entry: the table shows it as not recorded
            if task not in found or lengths.n > found[task].n:
                found[task] = lengths
    return found


def _mean(found: dict[str, TaskPrompts]) -> float | None:
    total = sum(p.n for p in found.values())
    return sum(p.mean * p.n for p in found.values()) / total if total else None


def _prefinetune_instances(runs: list[RunRecord]) -> int | None:
    counts = []
    for run in runs:
        if run.kind != "prefinetune":
            continue
        recorded, per_task, tasks = run.spec.train_instances, run.spec.per_task, run.spec.tasks
        if isinstance(recorded, dict):
            counts.append(sum(int(n) for n in recorded.values() if isinstance(n, (int, float))))
        elif isinstance(per_task, int) and tasks:
            counts.append(per_task * len(tasks))  # as planned (at most)
    return max(counts) if counts else None
