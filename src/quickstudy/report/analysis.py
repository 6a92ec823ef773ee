"""The study's answers: curves, crossover with the supervised SOTA, deltas, categories, tasks.

Every number is an Estimate from bootstrap.Resampler, so tables, text and figures
share one computation.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from quickstudy.data.sampling import AUTO_SIZES
from quickstudy.evaluate.metrics import superni_category_metric
from quickstudy.report.bootstrap import (
    Cell,
    CellKey,
    Estimate,
    InstanceIndex,
    Resampler,
    collect_cells,
    containing,
    mean_estimate,
)
from quickstudy.report.cost import CostComparison, cost_comparison
from quickstudy.report.results import ZERO_SHOT_ROLE, Arm, StudyResults, declared_arms
from quickstudy.report.sizes import SizeInfo, fraction_at, size_infos
from quickstudy.study.layout import SETTINGS, setting_order

OTHER_CATEGORIES = "Other Categories"


@dataclass(frozen=True)
class CurvePoint:
    key: CellKey
    role: str
    x: float
    estimate: Estimate
    n_seeds: int
    n_tasks: int
    n_instances: int


@dataclass(frozen=True)
class Crossover:
    """Where the proposed arm's curve first reaches the supervised-SOTA score."""

    setting: str
    arm: str
    reference: CellKey | None
    reference_note: str
    status: str  # reached | at or below the smallest size | not reached | no reference
    x: float | None = None
    fraction: float | None = None
    x_interval: tuple[float, float] | None = None  # inf = not reached in that tail
    fraction_interval: tuple[float | None, float | None] | None = None


@dataclass(frozen=True)
class QuickLearner:
    """A start model's quickest instruction arm in one setting: its crossover with the SOTA."""

    setting: str
    start: str
    crossover: Crossover
    best: float  # the arm's best ROUGE-L over its sizes

    @property
    def sort_key(self) -> tuple[bool, float]:
        """Reached (or at the smallest size) first, by instances per task at the crossover; then the
        rest by their best score, highest first."""
        reached = self.crossover.x is not None
        return (not reached, self.crossover.x if reached else -self.best)


@dataclass(frozen=True)
class Delta:
    kind: str  # "instructions at equal data" | "instruction pre-finetuning" | "MTL - STL"
    a: CellKey
    b: CellKey
    estimate: Estimate


@dataclass(frozen=True)
class CategoryEffect:
    setting: str
    category: str
    estimate: Estimate  # mean over equal-data pairs of proposed - baseline, ROUGE-L
    pairs: int

    @property
    def verdict(self) -> str:
        if self.estimate.low > 0:
            return "helps"
        if self.estimate.high < 0:
            return "hurts"
        return "no clear difference"


@dataclass(frozen=True)
class TaskRow:
    task: str
    category: str
    rougeL: dict[CellKey, float]
    truncated: float | None  # share of prompts truncated over all evaluated lines
    instruction_gain: float | None  # mean equal-data proposed - baseline, ROUGE-L


@dataclass(frozen=True)
class ArmProgress:
    setting: str | None
    arm: str
    done: int
    failed: int
    pending: int
    errors: tuple[str, ...]
    missing_sizes: tuple[str, ...]
    wall_hours: float
    gpu_hours: float
    cost: CostComparison | None = None  # the recorded estimate against the arm's runs (None: none recorded)


@dataclass
class Analysis:
    results: StudyResults
    sizes: dict[str, SizeInfo]
    cells: dict[CellKey, Cell]
    overall: dict[CellKey, dict[str, Estimate]]
    curves: dict[str, list[CurvePoint]]  # setting -> points (zero-shot under "zero_shot")
    sota: dict[str, tuple[CellKey, str]]  # setting -> reference cell and how it was chosen
    crossovers: list[Crossover]
    deltas: list[Delta]
    categories: list[str]
    category_scores: dict[tuple[CellKey, str, str], Estimate]  # (cell, category, metric)
    category_effects: list[CategoryEffect]
    tasks: list[TaskRow]
    progress: list[ArmProgress]
    partial_cells: dict[CellKey, int] = field(default_factory=dict)  # cell -> tasks covered
    n_boot: int = 0
    category_tasks: dict[str, int] = field(default_factory=dict)  # category (as grouped) -> evaluated tasks
    task_categories: dict[str, str] = field(default_factory=dict)  # task -> category (as grouped)
    quickest: list[QuickLearner] = field(default_factory=list)  # per setting, start models quickest first
    cost: CostComparison | None = None  # the recorded estimate against the whole study (None: none recorded)

    def start_models(self) -> list[str]:
        """The start models of the instruction (proposed) arms, in the order the study declares them."""
        starts = [arm.start for arm in self.results.arms.values() if arm.role == "proposed" and arm.start]
        return list(dict.fromkeys(starts))

    def category_view(self, key: CellKey, category: str) -> tuple[str, Estimate]:
        """SuperNI's category view: exact match for classification-like categories, else ROUGE-L."""
        metric = superni_category_metric(category)
        return metric, self.category_scores[(key, category, metric)]

    def ordered_cells(self, setting: str | None = None) -> list[CellKey]:
        """Cells in reading order: setting, proposed before baselines, then by size."""
        role_order = {"proposed": 0, "baseline": 1, ZERO_SHOT_ROLE: 2}
        keys = [k for k in self.cells if setting is None or k.setting == setting]
        return sorted(
            keys,
            key=lambda k: (
                setting_order(k.setting),
                role_order.get(self.cells[k].role, 3),
                k.arm,
                self.sizes[k.size].x if k.size in self.sizes else 0.0,
            ),
        )


def analyse(results: StudyResults, n_boot: int = 1000, seed: int = 0, top_categories: int | None = None) -> Analysis:
    """Compute every number the report shows; with `top_categories` the per-category numbers keep
    the N largest categories (by evaluated tasks) and group the rest as OTHER_CATEGORIES."""
    index = InstanceIndex(results.scored)
    cells = collect_cells(results, index)
    resampler = Resampler(index, n_boot=n_boot, seed=seed)
    sizes = size_infos(results, {key.size for key in cells} | _declared_sizes(results))
    overall = {key: resampler.estimates(cell, ("rougeL", "exact_match", "rouge1")) for key, cell in cells.items()}
    curves = _curves(cells, overall, sizes)
    sota = _supervised_sota(cells, results.arms, {s for s in curves if _trains(s)})
    crossovers = _crossovers(curves, sota, overall, results.train_pool)
    equal_data = _equal_data_pairs(cells, results.arms)
    deltas = [Delta(kind, a, b, overall[a]["rougeL"] - overall[b]["rougeL"]) for kind, a, b in equal_data]
    deltas += [
        Delta(
            f"{SETTINGS[a.setting].label} - {SETTINGS[b.setting].label}",
            a,
            b,
            overall[a]["rougeL"] - overall[b]["rougeL"],
        )
        for a, b in _paired_setting_pairs(cells, results.arms)
    ]
    deltas.sort(
        key=lambda d: (
            d.kind,
            setting_order(d.a.setting),
            cells[d.a].role != "proposed",
            d.a.arm,
            d.b.arm,
            sizes[d.a.size].x,
        )
    )

    grouped = grouped_categories(
        {task: results.categories.get(task, "unknown") for task in set(index.task)}, top_categories
    )
    category_of = np.array([grouped[task] for task in index.task], dtype=object)
    category_tasks = dict(Counter(grouped.values()))
    categories = sorted(category_tasks, key=lambda c: (c == OTHER_CATEGORIES, c))
    category_scores = {
        (key, category, metric): estimate
        for key, cell in cells.items()
        for category in categories
        for metric, estimate in resampler.estimates(cell, ("rougeL", "exact_match"), category_of == category).items()
    }
    effects = _category_effects(categories, category_scores, equal_data)
    return Analysis(
        results=results,
        sizes=sizes,
        cells=cells,
        overall=overall,
        curves=curves,
        sota=sota,
        crossovers=crossovers,
        deltas=deltas,
        categories=categories,
        category_scores=category_scores,
        category_effects=effects,
        tasks=_task_rows(results, index, cells, resampler, equal_data),
        progress=_progress(results, sizes),
        partial_cells=_partial_cells(cells),
        n_boot=n_boot,
        category_tasks=category_tasks,
        task_categories=grouped,
        quickest=quickest_learners(crossovers, curves, results.arms),
        cost=cost_comparison(results.estimate, results.runs) if results.estimate else None,
    )


def grouped_categories(category_of: dict[str, str], top: int | None) -> dict[str, str]:
    """task -> category, the categories outside the `top` largest (by task count, then name)
    renamed OTHER_CATEGORIES, as the thesis's Tables 4.3, 5.1 and 5.2; None keeps them all."""
    counts = Counter(category_of.values())
    if top is None or len(counts) <= top:
        return dict(category_of)
    kept = {c for c, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]}
    return {task: c if c in kept else OTHER_CATEGORIES for task, c in category_of.items()}


def _declared_sizes(results: StudyResults) -> set[str]:
    return {str(size) for arm in declared_arms(results.config).values() for size in arm.get("sizes") or []} - {
        AUTO_SIZES  # the plan expands `sizes: [auto]` into counts; the runs carry them
    }


def _curves(cells: dict[CellKey, Cell], overall: dict, sizes: dict[str, SizeInfo]) -> dict[str, list[CurvePoint]]:
    curves: dict[str, list[CurvePoint]] = defaultdict(list)
    for key, cell in cells.items():
        x = sizes[key.size].x if key.size in sizes else 0.0
        point = CurvePoint(
            key, cell.role, x, overall[key]["rougeL"], len(cell.seeds), len(cell.tasks), cell.n_instances
        )
        curves[key.setting].append(point)
    return {setting: sorted(points, key=lambda p: (p.key.arm, p.x)) for setting, points in curves.items()}


def _supervised_sota(
    cells: dict[CellKey, Cell], arms: dict[tuple[str, str], Arm], settings: set[str]
) -> dict[str, tuple[CellKey, str]]:
    """Per setting, the full-data no-instruction baseline; MTL falls back to STL's (the thesis has no MTL one)."""
    own: dict[str, CellKey] = {}
    for key, cell in sorted(cells.items(), key=lambda item: item[0].slug):
        if cell.role != "baseline" or key.size != "all":
            continue
        arm = arms.get((key.setting, key.arm))
        best = own.get(key.setting)
        prefinetuned = bool(arm and arm.from_prefinetuned_base)
        best_arm = arms.get((best.setting, best.arm)) if best else None
        if best is None or (not prefinetuned and best_arm is not None and best_arm.from_prefinetuned_base):
            own[key.setting] = key
    sota: dict[str, tuple[CellKey, str]] = {}
    for setting in settings:
        if setting in own:
            sota[setting] = (own[setting], f"{own[setting].label} (full data, no instructions)")
        elif (borrowed := _paired_with(setting)) in own:
            sota[setting] = (
                own[borrowed],
                f"{own[borrowed].label}: the study has no {SETTINGS[setting].label} full-data baseline, "
                f"so the {SETTINGS[borrowed].label} one is used",
            )
    return sota


def first_crossing(xs: list[float], ys: list[float], level: float) -> tuple[str, float]:
    """First x where the curve (linear in log x between points) reaches `level`."""
    if ys and ys[0] >= level:
        return "at or below the smallest size", xs[0]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if y0 < level <= y1:
            t = (level - y0) / (y1 - y0)
            return "reached", math.exp(math.log(x0) + t * (math.log(x1) - math.log(x0)))
    return "not reached", math.inf


def _crossovers(curves, sota, overall, pool: dict[str, int]) -> list[Crossover]:
    found = []
    for setting, points in curves.items():
        by_arm: dict[str, list[CurvePoint]] = defaultdict(list)
        for point in points:
            if point.role == "proposed" and point.x > 0:
                by_arm[point.key.arm].append(point)
        for arm, arm_points in sorted(by_arm.items()):
            if setting not in sota:
                found.append(
                    Crossover(setting, arm, None, "no full-data no-instruction baseline in the study", "no reference")
                )
                continue
            reference, note = sota[setting]
            level = overall[reference]["rougeL"]
            xs = [p.x for p in arm_points]
            status, x = first_crossing(xs, [p.estimate.value for p in arm_points], level.value)
            replicates = np.array(
                [
                    first_crossing(xs, [p.estimate.samples[b] for p in arm_points], level.samples[b])[1]
                    for b in range(len(level.samples))
                ]
            )
            interval = containing(
                x,
                float(np.percentile(replicates, 2.5, method="lower")),
                float(np.percentile(replicates, 97.5, method="higher")),
            )
            found.append(
                Crossover(
                    setting,
                    arm,
                    reference,
                    note,
                    status,
                    x=None if status == "not reached" else x,
                    fraction=None if status == "not reached" else fraction_at(x, pool),
                    x_interval=interval,
                    fraction_interval=(fraction_at(interval[0], pool), fraction_at(interval[1], pool)),
                )
            )
    return sorted(found, key=lambda c: (setting_order(c.setting), c.setting, c.arm))


def quickest_learners(
    crossovers: list[Crossover], curves: dict[str, list[CurvePoint]], arms: dict[tuple[str, str], Arm]
) -> list[QuickLearner]:
    """Per setting, each start model's quickest instruction arm (the smallest crossover with the
    supervised SOTA), start models ordered quickest first: which model learns a new task from
    the fewest examples (those that never reach it after, closest first)."""
    best: dict[tuple[str, str], QuickLearner] = {}
    for crossover in crossovers:
        arm = arms.get((crossover.setting, crossover.arm))
        if arm is None or not arm.start or crossover.reference is None:
            continue
        scores = [p.estimate.value for p in curves.get(crossover.setting, []) if p.key.arm == crossover.arm]
        learner = QuickLearner(crossover.setting, arm.start, crossover, max(scores, default=-math.inf))
        found = best.get((crossover.setting, arm.start))
        if found is None or learner.sort_key < found.sort_key:
            best[(crossover.setting, arm.start)] = learner
    return sorted(best.values(), key=lambda q: (setting_order(q.setting), q.setting, q.sort_key, q.start))


def _equal_data_pairs(cells: dict[CellKey, Cell], arms) -> list[tuple[str, CellKey, CellKey]]:
    """(kind, proposed cell, baseline cell) with the same setting and size."""
    pairs = []
    for b, cell in sorted(cells.items(), key=lambda item: item[0].slug):
        if cell.role != "baseline":
            continue
        arm = arms.get((b.setting, b.arm))
        kind = "instruction pre-finetuning" if arm and arm.from_prefinetuned_base else "instructions at equal data"
        for a, other in sorted(cells.items(), key=lambda item: item[0].slug):
            if other.role == "proposed" and a.setting == b.setting and a.size == b.size:
                pairs.append((kind, a, b))
    return pairs


def _trains(setting: str | None) -> bool:
    """False for a setting that evaluates its start model only (zero-shot)."""
    return setting not in SETTINGS or SETTINGS[setting].trains


def _paired_with(setting: str) -> str | None:
    """The setting whose cells a setting's cells are compared with (MTL: STL), from the settings table."""
    return SETTINGS[setting].paired_with if setting in SETTINGS else None


def _paired_setting_pairs(cells: dict[CellKey, Cell], arms) -> list[tuple[CellKey, CellKey]]:
    """(cell, its paired setting's cell) of the same role, start model, encoding and size (MTL vs STL)."""

    def signature(key: CellKey, setting: str):
        arm = arms.get((key.setting, key.arm))
        return (setting, cells[key].role, arm.start if arm else None, arm.encoding if arm else None, key.size)

    ordered = sorted(cells, key=lambda k: k.slug)
    by_signature = {signature(k, k.setting): k for k in ordered}
    return [
        (k, by_signature[signature(k, paired)])
        for k in ordered
        if (paired := _paired_with(k.setting)) and signature(k, paired) in by_signature
    ]


def _category_effects(categories, category_scores, equal_data) -> list[CategoryEffect]:
    effects = []
    settings = sorted({a.setting for _, a, _ in equal_data})
    for setting in settings:
        pairs = [(a, b) for _, a, b in equal_data if a.setting == setting]
        for category in categories:
            diffs = [
                category_scores[(a, category, "rougeL")] - category_scores[(b, category, "rougeL")] for a, b in pairs
            ]
            diffs = [d for d in diffs if np.isfinite(d.value)]
            if diffs:
                effects.append(CategoryEffect(setting, category, mean_estimate(diffs), len(diffs)))
    return sorted(effects, key=lambda e: (setting_order(e.setting), e.setting, -e.estimate.value))


def _task_rows(results, index, cells, resampler: Resampler, equal_data) -> list[TaskRow]:
    truncated: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for run in results.scored:
        for task, flag in zip(run.tasks, run.truncated):
            truncated[task][0] += int(flag)
            truncated[task][1] += 1
    rows = []
    for task in sorted(set(index.task)):
        mask = index.task == task
        scores = {key: resampler.point(cell, "rougeL", mask) for key, cell in cells.items() if task in cell.tasks}
        gains = [scores[a] - scores[b] for _, a, b in equal_data if a in scores and b in scores]
        hits, total = truncated[task]
        rows.append(
            TaskRow(
                task=task,
                category=results.categories.get(task, "unknown"),
                rougeL=scores,
                truncated=hits / total if total else None,
                instruction_gain=float(np.mean(gains)) if gains else None,
            )
        )
    return rows


def _progress(results: StudyResults, sizes: dict[str, SizeInfo]) -> list[ArmProgress]:
    groups: dict[tuple[str | None, str], list] = defaultdict(list)
    for run in results.runs:
        groups[(run.setting, run.arm or f"({run.kind}, shared)")].append(run)
    declared = {
        str(arm["name"]): [str(s) for s in arm.get("sizes") or [] if str(s) != AUTO_SIZES]
        for arm in declared_arms(results.config).values()
    }
    progress = []
    for (setting, arm), runs in sorted(groups.items(), key=lambda item: (setting_order(item[0][0]), item[0][1])):
        evaluated = [r for r in runs if r.kind == "evaluate"] or runs
        done_sizes = {r.size for r in evaluated if r.state == "done"}
        progress.append(
            ArmProgress(
                setting=setting,
                arm=arm,
                done=sum(r.state == "done" for r in evaluated),
                failed=sum(r.state == "failed" for r in evaluated),
                pending=sum(r.state == "pending" for r in evaluated),
                errors=tuple(sorted({f"{r.run_id}: {r.error}" for r in runs if r.state == "failed"})),
                missing_sizes=tuple(s for s in declared.get(arm, []) if s not in done_sizes and _trains(setting)),
                wall_hours=sum(r.wall_seconds or 0.0 for r in runs) / 3600,
                gpu_hours=sum(r.gpu_hours or 0.0 for r in runs),
                cost=cost_comparison(results.estimate, runs) if results.estimate else None,
            )
        )
    return progress


def _partial_cells(cells: dict[CellKey, Cell]) -> dict[CellKey, int]:
    """Cells that cover fewer tasks than the most complete cell (their means are not comparable)."""
    most = max((len(cell.tasks) for cell in cells.values()), default=0)
    return {key: len(cell.tasks) for key, cell in cells.items() if len(cell.tasks) < most}
