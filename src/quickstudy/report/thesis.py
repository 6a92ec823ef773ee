"""The study's answers read the thesis's way: at the sizes that were trained, no interpolation.

The analysis module's crossover (log-linear interpolation) and paired-bootstrap
effects are the better statistics; this module adds, beside them, the reading the
thesis uses (sections 5.1, 5.2), so a result can be compared with it number for number:

- SOTA: the full-data no-instruction baseline (STL's for MTL when MTL has none).
- "matches" the SOTA: the smallest sampled size scoring >= SOTA - tolerance;
  "surpasses": the smallest scoring > SOTA. The share of a size is its train
  instances summed over tasks over the summed train pools (Table 4.3).
- efficiency per baseline: the smallest proposed size scoring >= the baseline
  (else within tolerance), and 1 - its instances / the baseline's ("50% efficient",
  "~76% fewer samples").
- categories: best proposed score of a category vs best baseline score (5.1.1, 5.1.2),
  and the mean over proposed sizes vs the mean over baselines (5.2.1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from quickstudy.report.analysis import Analysis
from quickstudy.report.bootstrap import CellKey
from quickstudy.study.layout import MTL, STL, ZERO_SHOT

SETTINGS = (STL.name, MTL.name)


@dataclass(frozen=True)
class SizeScore:
    size: str
    share: float | None  # 0-1, of the summed train pools
    rougeL: float


@dataclass(frozen=True)
class Reference:
    setting: str
    arm: str
    size: str
    rougeL: float


@dataclass(frozen=True)
class Efficiency:
    baseline: str
    baseline_size: str
    baseline_rougeL: float
    proposed_size: str | None
    proposed_rougeL: float | None
    fewer_samples: float | None  # 1 - proposed instances / baseline instances (summed over tasks)
    verdict: str  # surpasses | matches | not reached
    matches_size: str | None = None  # a smaller size already within tolerance, when there is one


@dataclass(frozen=True)
class Gain:
    baseline: str
    size: str
    proposed_rougeL: float
    baseline_rougeL: float
    delta: float


@dataclass(frozen=True)
class CategoryVerdict:
    category: str
    tasks: int
    best_proposed: float
    best_baseline: float
    delta: float
    verdict: str  # helps | hurts | no difference
    mean_proposed: float
    mean_baseline: float


@dataclass(frozen=True)
class Drop:
    """The proposed arm scoring lower at a size than at the size before it, beyond chance:
    the paired difference's 95% interval lies below zero."""

    from_size: str
    to_size: str
    delta: float
    low: float
    high: float


@dataclass(frozen=True)
class SettingReading:
    setting: str
    arm: str
    sota: Reference | None
    matches_sota: SizeScore | None
    surpasses_sota: SizeScore | None
    sizes: list[SizeScore]
    efficiency: list[Efficiency]
    prefinetuning_gain: list[Gain]
    instruction_gain: list[Gain]
    categories: list[CategoryVerdict]
    drops: list[Drop]

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ThesisReading:
    tolerance: float
    settings: dict[str, SettingReading]
    zero_shot: Reference | None
    # with instruction arms from several start models: start model -> setting -> its reading
    by_start: dict[str, dict[str, SettingReading]] = field(default_factory=dict)

    def quickest(self, setting: str) -> list[tuple[str, SettingReading]]:
        """The start models' readings in one setting, the one matching the SOTA at the smallest
        sampled share first (those that never match last)."""
        found = [(start, readings[setting]) for start, readings in self.by_start.items() if setting in readings]

        def order(item: tuple[str, SettingReading]) -> tuple[bool, float, str]:
            matches = item[1].matches_sota
            if matches is None:  # closest first: the best score at any sampled size
                return (True, -max((p.rougeL for p in item[1].sizes), default=-math.inf), item[0])
            return (False, matches.share if matches.share is not None else math.inf, item[0])

        return sorted(found, key=order)

    def to_json(self) -> dict:
        by_start = {
            start: {setting: reading.to_json() for setting, reading in readings.items()}
            for start, readings in self.by_start.items()
        }
        quickest = {
            setting: [
                {"start": start, "matches_size": r.matches_sota.size if r.matches_sota else None,
                 "matches_share": r.matches_sota.share if r.matches_sota else None}
                for start, r in self.quickest(setting)
            ]
            for setting in SETTINGS
            if self.quickest(setting)
        }  # fmt: skip
        return {
            "tolerance": self.tolerance,
            ZERO_SHOT.name: asdict(self.zero_shot) if self.zero_shot else None,
            **{setting: reading.to_json() for setting, reading in self.settings.items()},
            **({"by_start": by_start, "quickest_learner": quickest} if by_start else {}),
        }


def first_at_least(points: list[SizeScore], level: float, strict: bool = False) -> SizeScore | None:
    """The smallest sampled size scoring >= `level` (> with `strict`); None if none does."""
    return next((p for p in points if (p.rougeL > level if strict else p.rougeL >= level)), None)


def category_verdicts(
    proposed: dict[str, list[float]], baseline: dict[str, list[float]], tasks: dict[str, int], tolerance: float
) -> list[CategoryVerdict]:
    """Per category, best proposed vs best baseline score; `proposed` and `baseline` map a
    category to its scores at each proposed size / in each baseline cell."""
    verdicts = []
    for category in proposed:
        ours, theirs = proposed[category], baseline.get(category, [])
        if not ours or not theirs:
            continue
        delta = max(ours) - max(theirs)
        verdict = "no difference" if abs(delta) < tolerance else ("helps" if delta > 0 else "hurts")
        verdicts.append(
            CategoryVerdict(
                category=category,
                tasks=tasks.get(category, 0),
                best_proposed=max(ours),
                best_baseline=max(theirs),
                delta=delta,
                verdict=verdict,
                mean_proposed=sum(ours) / len(ours),
                mean_baseline=sum(theirs) / len(theirs),
            )
        )
    return sorted(verdicts, key=lambda v: -v.delta)


def thesis_reading(analysis: Analysis, tolerance: float = 1.0) -> ThesisReading:
    """The thesis's reading of every setting that has a proposed arm."""
    settings = {}
    by_start: dict[str, dict[str, SettingReading]] = {}
    starts = analysis.start_models()
    for setting in SETTINGS:
        arm = _proposed_arm(analysis, setting)
        if arm is not None:
            settings[setting] = _setting_reading(analysis, setting, arm, tolerance)
        for start in starts if len(starts) > 1 else []:  # several instruction-tuned models: one reading each
            start_arm = _proposed_arm(analysis, setting, start)
            if start_arm is not None:
                by_start.setdefault(start, {})[setting] = _setting_reading(analysis, setting, start_arm, tolerance)
    zero_shot = next(iter(analysis.ordered_cells(ZERO_SHOT.name)), None)
    return ThesisReading(tolerance, settings, _reference(analysis, zero_shot) if zero_shot else None, by_start)


def _proposed_arm(analysis: Analysis, setting: str, start: str | None = None) -> str | None:
    """The setting's proposed arm (of the start model `start` when given); with several, the one
    evaluated at the most sizes."""
    counts: dict[str, int] = {}
    for key, cell in analysis.cells.items():
        arm = analysis.results.arms.get((key.setting, key.arm))
        if key.setting == setting and cell.role == "proposed" and (start is None or (arm and arm.start == start)):
            counts[key.arm] = counts.get(key.arm, 0) + 1
    return min(counts, key=lambda arm: (-counts[arm], arm)) if counts else None


def _score(analysis: Analysis, key: CellKey) -> float:
    return analysis.overall[key]["rougeL"].value


def _reference(analysis: Analysis, key: CellKey) -> Reference:
    return Reference(key.setting, key.arm, key.size, _score(analysis, key))


def _total(analysis: Analysis, size: str) -> int | None:
    info = analysis.sizes.get(size)
    return info.total if info else None


def _setting_reading(analysis: Analysis, setting: str, arm: str, tolerance: float) -> SettingReading:
    keys = [k for k in analysis.ordered_cells(setting) if k.arm == arm]
    points = [
        SizeScore(k.size, analysis.sizes[k.size].fraction if k.size in analysis.sizes else None, _score(analysis, k))
        for k in keys
    ]
    sota = _reference(analysis, analysis.sota[setting][0]) if setting in analysis.sota else None
    baselines = [k for k in analysis.ordered_cells(setting) if analysis.cells[k].role == "baseline"]
    gains = [d for d in analysis.deltas if d.a.setting == setting and d.a.arm == arm]
    return SettingReading(
        setting=setting,
        arm=arm,
        sota=sota,
        matches_sota=first_at_least(points, sota.rougeL - tolerance) if sota else None,
        surpasses_sota=first_at_least(points, sota.rougeL, strict=True) if sota else None,
        sizes=points,
        efficiency=[_efficiency(analysis, points, b, tolerance) for b in baselines],
        prefinetuning_gain=[_gain(analysis, d.a, d.b) for d in gains if d.kind == "instruction pre-finetuning"],
        instruction_gain=[_gain(analysis, d.a, d.b) for d in gains if d.kind == "instructions at equal data"],
        categories=_categories(analysis, keys, baselines, tolerance),
        drops=curve_drops(analysis, keys),
    )


def curve_drops(analysis: Analysis, keys: list[CellKey]) -> list[Drop]:
    """Consecutive sizes (in `keys`' order) where the score falls by more than the 95% interval
    of the paired difference, i.e. the interval of next - previous is entirely below zero."""
    drops = []
    for before, after in zip(keys, keys[1:]):
        difference = analysis.overall[after]["rougeL"] - analysis.overall[before]["rougeL"]
        if difference.high < 0:
            drops.append(Drop(before.size, after.size, difference.value, difference.low, difference.high))
    return drops


def _efficiency(analysis: Analysis, points: list[SizeScore], baseline: CellKey, tolerance: float) -> Efficiency:
    level = _score(analysis, baseline)
    surpassing = first_at_least(points, level)
    matching = first_at_least(points, level - tolerance)
    found = surpassing or matching
    baseline_total, found_total = _total(analysis, baseline.size), _total(analysis, found.size) if found else None
    fewer = 1 - found_total / baseline_total if found_total is not None and baseline_total else None
    earlier = matching if matching is not None and surpassing is not None and matching != surpassing else None
    return Efficiency(
        baseline=baseline.arm,
        baseline_size=baseline.size,
        baseline_rougeL=level,
        proposed_size=found.size if found else None,
        proposed_rougeL=found.rougeL if found else None,
        fewer_samples=fewer,
        verdict="surpasses" if surpassing else ("matches" if matching else "not reached"),
        matches_size=earlier.size if earlier else None,
    )


def _gain(analysis: Analysis, proposed: CellKey, baseline: CellKey) -> Gain:
    ours, theirs = _score(analysis, proposed), _score(analysis, baseline)
    return Gain(baseline.arm, proposed.size, ours, theirs, ours - theirs)


def _categories(
    analysis: Analysis, proposed: list[CellKey], baselines: list[CellKey], tolerance: float
) -> list[CategoryVerdict]:
    def scores(keys: list[CellKey], category: str) -> list[float]:
        values = [analysis.category_scores[(k, category, "rougeL")].value for k in keys]
        return [v for v in values if math.isfinite(v)]

    return category_verdicts(
        {c: scores(proposed, c) for c in analysis.categories},
        {c: scores(baselines, c) for c in analysis.categories},
        analysis.category_tasks,
        tolerance,
    )


# --- in words ---------------------------------------------------------------------------


def share_text(share: float | None) -> str:
    return "an unknown share" if share is None else f"{100 * share:.2f}%"


def sota_sentences(reading: SettingReading, tolerance: float) -> list[str]:
    """The SOTA answer the way the thesis states it."""
    name = reading.setting.upper()
    if reading.sota is None:
        return [f"{name}: no full-data no-instruction baseline finished, so there is no SOTA to compare with."]
    sota = reading.sota
    source = "" if sota.setting == reading.setting else f" (the {sota.setting.upper()} one: {name} has none)"
    sentences = []
    matches, surpasses = reading.matches_sota, reading.surpasses_sota
    if matches is not None and (surpasses is None or matches.size != surpasses.size):
        sentences.append(
            f"{name} matches the supervised SOTA{source} within {tolerance:g} ROUGE-L with "
            f"{share_text(matches.share)} of the training data, {matches.size} per task "
            f"({matches.rougeL:.2f} vs {sota.rougeL:.2f})."
        )
    if surpasses is not None:
        sentences.append(
            f"{name} surpasses the supervised SOTA{source} with {share_text(surpasses.share)} of the training data, "
            f"{surpasses.size} per task ({surpasses.rougeL:.2f} vs {sota.rougeL:.2f})."
        )
    if matches is None:
        best = max((p.rougeL for p in reading.sizes), default=math.nan)
        sentences.append(
            f"{name} does not reach the supervised SOTA{source} at any sampled size "
            f"(best {best:.2f} vs {sota.rougeL:.2f})."
        )
    return sentences


def quickest_sentences(reading: ThesisReading) -> list[str]:
    """Which instruction-tuned model is the quickest learner, per setting, the thesis's way: the
    smallest sampled size at which each start model's instruction arm matches the SOTA."""
    sentences = []
    for setting in SETTINGS:
        ranked = reading.quickest(setting)
        if not ranked:
            continue
        parts = [
            f"`{start}` at {r.matches_sota.size} per task ({share_text(r.matches_sota.share)})"
            if r.matches_sota is not None
            else f"`{start}` not within the sampled sizes (best {max((p.rougeL for p in r.sizes), default=math.nan):.2f})"
            for start, r in ranked
        ]
        first = ranked[0]
        verdict = (
            f"quickest learner: `{first[0]}`"
            if first[1].matches_sota is not None
            else f"no start model matches the supervised SOTA; the closest is `{first[0]}`"
        )
        sentences.append(
            f"{setting.upper()} {verdict}; matching the supervised SOTA within {reading.tolerance:g} ROUGE-L: "
            + ", ".join(parts)
            + "."
        )
    return sentences


def efficiency_sentence(reading: SettingReading, row: Efficiency, tolerance: float) -> str:
    name = reading.setting.upper()
    against = f"{row.baseline} ({row.baseline_size} per task, {row.baseline_rougeL:.2f})"
    if row.proposed_size is None:
        return f"{name} does not reach {against} at any sampled size."
    fewer = f", {100 * row.fewer_samples:.0f}% fewer samples" if row.fewer_samples is not None else ""
    verb = "surpasses" if row.verdict == "surpasses" else f"matches (within {tolerance:g})"
    text = f"{name} {verb} {against} with {row.proposed_size} per task ({row.proposed_rougeL:.2f}{fewer})"
    if row.matches_size is not None:
        text += f"; it is within {tolerance:g} already at {row.matches_size} per task"
    return text + "."


def gain_sentence(reading: SettingReading, gain: Gain, what: str) -> str:
    return (
        f"{reading.setting.upper()} at {gain.size} per task: {gain.proposed_rougeL:.2f} vs {gain.baseline_rougeL:.2f} "
        f"({gain.baseline}), {what} {gain.delta:+.2f}."
    )
