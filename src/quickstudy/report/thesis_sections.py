"""The thesis's reading as report blocks: one sentence per answer, its efficiency and category tables."""

from __future__ import annotations

from quickstudy.report.document import Block, Bullets, Heading, Image, Paragraph, Table
from quickstudy.report.figures import Figure
from quickstudy.report.thesis import (
    ThesisReading,
    efficiency_sentence,
    gain_sentence,
    share_text,
    sota_sentences,
)

FIGURE_1_1 = "figure_1_1"


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def thesis_section(reading: ThesisReading, figures: dict[str, Figure]) -> list[Block]:
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
    if FIGURE_1_1 in figures:
        blocks.append(Image(figures[FIGURE_1_1]))
    if not reading.settings:
        return blocks + [Paragraph("No instruction arm has finished.")]
    items = []
    for setting in reading.settings.values():
        items += sota_sentences(setting, reading.tolerance)
        items += [efficiency_sentence(setting, row, reading.tolerance) for row in setting.efficiency]
        items += [gain_sentence(setting, g, "instructions in pre-finetuning add") for g in setting.prefinetuning_gain]
        items += [gain_sentence(setting, g, "instructions add") for g in setting.instruction_gain]
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
