"""The thesis's reading as report blocks: one sentence per answer, its efficiency and category tables."""

from __future__ import annotations

from quickstudy.report.analysis import Analysis
from quickstudy.report.document import Block, Bullets, Heading, Paragraph, Table
from quickstudy.report.tables import WITH, WITHOUT, DataTables
from quickstudy.report.thesis import (
    ThesisReading,
    efficiency_sentence,
    gain_sentence,
    quickest_sentences,
    share_text,
    sota_sentences,
)
from quickstudy.study.layout import MTL, STL, RunKind


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def thesis_section(reading: ThesisReading) -> list[Block]:
    """The thesis's reading in words and tables (its Figure 1.1 is drawn with the answers)."""
    blocks: list[Block] = [
        Heading(2, "The thesis's reading"),
        Paragraph(
            "The same scores read the way the thesis reads them (sections 5.1 and 5.2): only at the sizes that were "
            f"trained, no interpolation and no intervals; a score *matches* another within {reading.tolerance:g} "
            "ROUGE-L (`report: {tolerance: ...}` in the study config, or `quickstudy report --tolerance`). The share "
            "of a size is its training instances summed over tasks over the summed train pools (the thesis's "
            "Table 4.3). Cite this reading to compare with the thesis's statements; cite the interpolated crossover "
            "and the paired-bootstrap differences above for the estimate and its uncertainty."
        ),
    ]
    if not reading.settings:
        return blocks + [Paragraph("No instruction arm has finished.")]
    items = []
    for setting in reading.settings.values():
        items += sota_sentences(setting, reading.tolerance)
        items += [efficiency_sentence(setting, row, reading.tolerance) for row in setting.efficiency]
        items += [gain_sentence(setting, g, "instructions in pre-finetuning add") for g in setting.prefinetuning_gain]
        items += [gain_sentence(setting, g, "instructions add") for g in setting.instruction_gain]
        items += [
            f"{setting.setting.upper()} scores lower with more data: {d.to_size} per task is {d.delta:+.2f} "
            f"below {d.from_size} per task (95% interval {d.low:+.2f} to {d.high:+.2f})."
            for d in setting.drops
        ]
    items += quickest_sentences(reading)
    if reading.zero_shot is not None:
        items.append(f"Zero-shot (`{reading.zero_shot.arm}`, no fine-tuning): {reading.zero_shot.rougeL:.2f}.")
    blocks.append(Bullets(items))
    rows = [
        [
            setting.setting.upper(),
            row.baseline,
            row.baseline_size,
            _score(row.baseline_rougeL),
            row.proposed_size or "–",
            _score(row.proposed_rougeL),
            "–" if row.fewer_samples is None else f"{100 * row.fewer_samples:.1f}%",
            row.verdict,
        ]
        for setting in reading.settings.values()
        for row in setting.efficiency
    ]
    blocks.append(
        Table(
            ["setting", "baseline", "its size", "its ROUGE-L", "proposed size", "ROUGE-L", "fewer samples", "verdict"],
            rows,
            numeric=[False, False, False, True, False, True, True, False],
            caption="Sample efficiency the thesis's way: the smallest proposed size that reaches each no-instruction "
            "baseline (else matches it within the tolerance), and how many fewer training instances it uses.",
        )
    )
    size_rows = [
        [setting.setting.upper(), p.size, share_text(p.share), _score(p.rougeL)]
        for setting in reading.settings.values()
        for p in setting.sizes
    ]
    blocks.append(
        Table(
            ["setting", "size", "share of training data", "ROUGE-L"],
            size_rows,
            numeric=[False, False, True, True],
            caption="The proposed arm at each sampled size.",
        )
    )
    category_rows = [
        [
            setting.setting.upper(),
            c.category,
            str(c.tasks),
            _score(c.best_proposed),
            _score(c.best_baseline),
            f"{c.delta:+.2f}",
            c.verdict,
            _score(c.mean_proposed),
            _score(c.mean_baseline),
        ]
        for setting in reading.settings.values()
        for c in setting.categories
    ]
    blocks.append(
        Table(
            [
                "setting",
                "category",
                "tasks",
                "best proposed",
                "best baseline",
                "Δ",
                "verdict",
                "mean proposed",
                "mean baseline",
            ],
            category_rows,
            numeric=[False, False, True, True, True, True, False, True, True],
            caption="Categories the thesis's way (5.1.1, 5.1.2): the best score of the instruction arm over its sizes "
            f"against the best no-instruction baseline; 'no difference' within {reading.tolerance:g}. The means "
            "(over the proposed sizes, over the baselines) are section 5.2.1's reading.",
        )
    )
    return blocks


# --- the thesis's data tables ------------------------------------------------------------

THESIS_MODELS = (
    "The thesis states 961 trained models (119 x 8 STL + 9 MTL, section 4); its arms give 7 STL models "
    "per task (4 sizes + 3 baselines) and 6 MTL models (4 sizes + 2 baselines), 839 fine-tunes with its 119 tasks, "
    "plus the pre-finetuning of f_M1."
)


def models_trained(analysis: Analysis) -> str:
    """The run count in the thesis's terms: models fine-tuned per setting, and pre-finetuned."""
    runs = analysis.results.runs
    stl = [r for r in runs if r.kind == RunKind.FINETUNE and r.setting == STL.name]
    mtl = [r for r in runs if r.kind == RunKind.FINETUNE and r.setting == MTL.name]
    prefinetuned = sum(r.kind == RunKind.PREFINETUNE for r in runs)
    tasks = len({r.task for r in stl if r.task})
    per_task = f" ({len(stl) / tasks:g} per task over {tasks} tasks)" if tasks else ""
    return (
        f"**Models trained**: {len(stl) + len(mtl) + prefinetuned} planned: {len(stl)} STL{per_task}, "
        f"{len(mtl)} MTL, {prefinetuned} pre-finetuning. {THESIS_MODELS}"
    )


def data_table_blocks(analysis: Analysis, tables: DataTables) -> list[Block]:
    """Tables 4.2 and 4.3 of the thesis, from this study's runs."""

    def tokens(role: str) -> str:
        value = tables.mean_prompt_tokens[role]
        return "not recorded" if value is None else f"{value:.2f}"

    prefinetune = tables.prefinetune_instances
    rows = [
        ["tasks", f"{tables.tasks:,}"],
        ["train instances (the train pools)", f"{tables.train_instances:,}"],
        ["test instances (evaluated)", f"{tables.test_instances:,}"],
        ["pre-finetuning instances", "–" if prefinetune is None else f"{prefinetune:,}"],
        ["mean train prompt length, with instructions (tokens)", tokens(WITH)],
        ["mean train prompt length, without instructions (tokens)", tokens(WITHOUT)],
    ]
    notes = [models_trained(analysis)]
    if tables.skipped_tasks:
        notes.append(
            f"**Skipped tasks** ({len(tables.skipped_tasks)}, `short_tasks: skip`): no train instance is left after "
            f"their test and validation instances, so no arm trains or evaluates them and the test total below is "
            f"what was evaluated: {', '.join(tables.skipped_tasks)}."
        )
    if tables.below_smallest_size:
        short = ", ".join(f"{name} ({pool})" for name, pool in tables.below_smallest_size.items())
        notes.append(f"**Tasks below the smallest size** train on all they have: {short}.")
    blocks: list[Block] = [
        Bullets(notes),
        Table(
            ["statistic", "value"],
            rows,
            numeric=[False, True],
            caption="The study's data (the thesis's Table 4.2). Prompt lengths: whole prompts in the study's tokenizer "
            "and encodings, before the source budget, over the largest sample each task was trained on.",
        ),
    ]
    labels = list(tables.shares)
    categories = list(tables.per_category)
    if categories and labels:
        table_rows = [["tasks"] + [str(tables.category_tasks.get(c, 0)) for c in categories] + [str(tables.tasks)]]
        for label in labels:
            counts = [tables.per_category[c].get(label, 0) for c in categories]
            table_rows.append(
                [label] + [f"{n:,}" for n in counts] + [f"{sum(counts):,} ({share_text(tables.shares[label])})"]
            )
        blocks.append(
            Table(
                ["size"] + categories + ["total (share of train pool)"],
                table_rows,
                numeric=[False] + [True] * (len(categories) + 1),
                caption="Train instances per category at each size, summed over tasks (the thesis's Table 4.3).",
            )
        )
    return blocks


def prompt_columns(tables: DataTables, task: str) -> list[str]:
    """The per-task table's prompt-length cells (with instructions): mean, max, share over the budget."""
    found = tables.prompts[WITH].get(task)
    if found is None:
        return ["–", "–", "–"]
    return [f"{found.mean:.0f}", str(found.max), f"{100 * found.share_over:.1f}%"]


PROMPT_COLUMNS = ["prompt tokens (mean)", "prompt tokens (max)", "prompts over the source budget"]
