"""The thesis's reading of a study: fed the thesis's own numbers, the report states the thesis's answers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from quickstudy.report import build_report
from quickstudy.report.analysis import OTHER_CATEGORIES, analyse
from quickstudy.report.results import collect_study
from quickstudy.report.thesis import category_verdicts, thesis_reading
from studies import (
    THESIS_ARMS,
    SyntheticArm,
    SyntheticStudy,
    SyntheticTask,
    thesis_like_study,
    write_synthetic_study,
)

# Table 4.3: the columns (the six largest categories and "Other Categories", 30 tasks), as one
# synthetic task each, with the train instances summed over the column's tasks at each size.
TABLE_4_3 = {
    "Answerability Classification": {"100": 1300, "200": 2600, "1000": 11529, "all": 43871},
    "Coreference Resolution": {"100": 1370, "200": 2441, "1000": 8831, "all": 35560},
    "Data to Text": {"100": 826, "200": 1626, "1000": 8026, "all": 36815},
    "Question Rewriting": {"100": 949, "200": 1849, "1000": 9049, "all": 41391},
    "Textual Entailment": {"100": 2376, "200": 4457, "1000": 19019, "all": 78802},
    "Title Generation": {"100": 1784, "200": 3484, "1000": 16514, "all": 78357},
    "Other Categories": {"100": 2994, "200": 5708, "1000": 21988, "all": 59949},
}
TOTAL = {size: sum(column[size] for column in TABLE_4_3.values()) for size in ("100", "200", "1000", "all")}
N_BOOT = 100


def thesis_numbers_study() -> SyntheticStudy:
    tasks = [
        SyntheticTask(f"task{i}_{category.lower().replace(' ', '_')}", category, counts["all"])
        for i, (category, counts) in enumerate(TABLE_4_3.items())
    ]
    counts = {size: {t.name: TABLE_4_3[t.category][size] for t in tasks} for size in TOTAL}
    return SyntheticStudy(tasks=tasks, arms=list(THESIS_ARMS), train_counts=counts)


@pytest.fixture(scope="module")
def thesis_report(tmp_path_factory):
    root = write_synthetic_study(tmp_path_factory.mktemp("thesis-numbers"), thesis_numbers_study())
    files = build_report(root, n_boot=N_BOOT)
    return files, json.loads(files.summary.read_text())["thesis_reading"]


def test_shares_are_table_4_3s(thesis_report):
    _, reading = thesis_report
    shares = {p["size"]: p["share"] for p in reading["stl"]["sizes"]}
    assert TOTAL["all"] == 374745
    assert shares == pytest.approx({"100": 0.03095, "200": 0.05915, "1000": 0.25339, "all": 1.0}, abs=5e-5)


def test_sota_is_matched_and_surpassed_where_the_thesis_says(thesis_report):
    _, reading = thesis_report
    stl, mtl = reading["stl"], reading["mtl"]
    assert stl["sota"] == {"setting": "stl", "arm": "baseline_3", "size": "all", "rougeL": pytest.approx(70.99)}
    assert mtl["sota"] == stl["sota"]  # MTL has no full-data baseline: the STL one, as the thesis
    # STL: 68.34 at 200 is 2.65 below the SOTA, 71.71 at 1000 above it
    assert stl["matches_sota"]["size"] == stl["surpasses_sota"]["size"] == "1000"
    assert stl["surpasses_sota"]["share"] == pytest.approx(94956 / 374745)
    # MTL: 70.40 at 200 is within 1.0 of 70.99 (the thesis's "match with 6%"), 73.14 at 1000 above it
    assert mtl["matches_sota"] == {
        "size": "200",
        "share": pytest.approx(22165 / 374745),
        "rougeL": pytest.approx(70.40),
    }
    assert mtl["surpasses_sota"]["size"] == "1000"


def test_efficiency_rows_are_the_thesis_statements(thesis_report):
    _, reading = thesis_report
    rows = {(s, r["baseline"]): r for s in ("stl", "mtl") for r in reading[s]["efficiency"]}
    # "50% efficient w.r.t. STL baseline 1": 100 per task beats baseline 1's 200
    assert rows[("stl", "baseline_1")] | {"fewer_samples": None} == {
        "baseline": "baseline_1",
        "baseline_size": "200",
        "baseline_rougeL": pytest.approx(64.29),
        "proposed_size": "100",
        "proposed_rougeL": pytest.approx(65.93),
        "fewer_samples": None,
        "verdict": "surpasses",
        "matches_size": None,
    }
    assert rows[("stl", "baseline_1")]["fewer_samples"] == pytest.approx(1 - 11599 / 22165)  # ~48%
    # "~76% fewer samples than MTL baseline 2": 200 per task (70.40) beats 1000 per task (68.10)
    assert (rows[("mtl", "baseline_2")]["proposed_size"], rows[("mtl", "baseline_2")]["verdict"]) == (
        "200",
        "surpasses",
    )
    assert rows[("mtl", "baseline_2")]["fewer_samples"] == pytest.approx(1 - 22165 / 94956)  # ~77%
    # "surpassing SOTA with 25% of the data": 1000 per task against baseline 3's all
    assert (rows[("stl", "baseline_3")]["proposed_size"], rows[("stl", "baseline_3")]["verdict"]) == (
        "1000",
        "surpasses",
    )
    assert rows[("stl", "baseline_3")]["fewer_samples"] == pytest.approx(1 - 94956 / 374745)  # ~75%
    # 68.34 at 200 is within 1.0 of STL baseline 2 (68.91), "competitive with 6%"; 1000 surpasses it
    assert (rows[("stl", "baseline_2")]["proposed_size"], rows[("stl", "baseline_2")]["matches_size"]) == (
        "1000",
        "200",
    )


def test_pre_finetuning_gains_are_4_05_and_4_77(thesis_report):
    _, reading = thesis_report
    assert [(g["baseline"], g["size"], g["delta"]) for g in reading["stl"]["prefinetuning_gain"]] == [
        ("baseline_1", "200", pytest.approx(4.05))
    ]
    assert [g["delta"] for g in reading["mtl"]["prefinetuning_gain"]] == [pytest.approx(4.77)]
    assert [g["delta"] for g in reading["mtl"]["instruction_gain"]] == [pytest.approx(73.14 - 68.10)]


def test_report_states_the_answers_in_the_thesis_words(thesis_report):
    files, _ = thesis_report
    markdown = files.markdown.read_text()
    assert "STL surpasses the supervised SOTA with 25.34% of the training data, 1000 per task (71.71 vs 70.99)" in (
        markdown
    )
    assert "MTL matches the supervised SOTA (the STL one: MTL has none) within 1 ROUGE-L with 5.91%" in markdown
    assert "MTL surpasses the supervised SOTA (the STL one: MTL has none) with 25.34%" in markdown
    assert "MTL surpasses baseline_2 (1000 per task, 68.10) with 200 per task (70.40, 77% fewer samples)" in markdown
    assert markdown.index("## The thesis's reading") < markdown.index("## Sample efficiency")
    first_image = markdown.index("![")
    assert markdown[first_image:].startswith("![Figure 1.1")  # the first figure of the report


def test_category_verdicts_read_tables_5_1_and_5_2():
    # Tables 5.1 and 5.2: the baselines' category scores (B1, B2, B3 / B1, B2)
    stl_baselines = {
        "Answerability Classification": [70.38, 78.77, 80.36],
        "Coreference Resolution": [70.01, 68.61, 74.40],
        "Data to Text": [49.75, 50.89, 52.84],
        "Title Generation": [44.71, 46.78, 48.35],
        "Question Rewriting": [68.12, 71.00, 71.11],
    }
    # the proposed arm at 100/200/1000/all: the best and mean scores sections 5.1.1 and 5.2.1 state
    # (75.15 and 74.38, 75.74 and 74.25 from Figure 5.2's caption); the rest chosen to give them
    stl_proposed = {
        "Answerability Classification": [72.00, 74.87, 75.15, 74.38],
        "Coreference Resolution": [75.74, 74.25, 80.11, 82.82],
        "Data to Text": [55.50, 57.60, 59.06, 59.36 - 0.30],
        "Title Generation": [41.50, 43.00, 44.39, 44.55],
        "Question Rewriting": [69.50, 70.00, 71.00, 71.54],
    }
    verdicts = {v.category: v for v in category_verdicts(stl_proposed, stl_baselines, {}, tolerance=1.0)}
    assert verdicts["Answerability Classification"].verdict == "hurts"
    assert (
        verdicts["Answerability Classification"].best_proposed,
        verdicts["Answerability Classification"].best_baseline,
    ) == (75.15, 80.36)
    assert verdicts["Title Generation"].verdict == "hurts" and verdicts["Title Generation"].best_baseline == 48.35
    assert verdicts["Coreference Resolution"].verdict == "helps"
    assert verdicts["Coreference Resolution"].delta == pytest.approx(82.82 - 74.40)
    assert verdicts["Data to Text"].verdict == "helps" and verdicts["Data to Text"].best_baseline == 52.84
    assert verdicts["Question Rewriting"].verdict == "no difference"  # 71.54 vs 71.11, within 1.0
    # section 5.2.1's means: 78.23 vs 71.00 (Coreference), 57.88 vs 51.16 (Data to Text), 43.36 vs 46.61 (Title)
    assert verdicts["Coreference Resolution"].mean_proposed == pytest.approx(78.23)
    assert verdicts["Coreference Resolution"].mean_baseline == pytest.approx(71.00, abs=0.01)
    assert verdicts["Data to Text"].mean_baseline == pytest.approx(51.16, abs=0.01)
    assert verdicts["Title Generation"].mean_baseline == pytest.approx(46.61, abs=0.01)
    assert verdicts["Question Rewriting"].mean_baseline == pytest.approx(70.07, abs=0.01)
    # MTL (Table 5.2): Textual Entailment 84.16 vs 67.89 helps; Question Rewriting and Title Generation
    # drop 12 and 23 points below the best baseline
    mtl = category_verdicts(
        {"Textual Entailment": [79.0, 81.5, 83.06, 84.16], "Question Rewriting": [66.0, 67.0, 67.8, 68.72],
         "Title Generation": [42.0, 44.0, 43.94, 38.16]},
        {"Textual Entailment": [65.95, 67.89], "Question Rewriting": [75.64, 79.80], "Title Generation": [62.19, 67.18]},
        {"Textual Entailment": 24},
        tolerance=1.0,
    )  # fmt: skip
    by_category = {v.category: v for v in mtl}
    assert by_category["Textual Entailment"].verdict == "helps" and by_category["Textual Entailment"].tasks == 24
    assert by_category["Textual Entailment"].mean_baseline == pytest.approx(66.91, abs=0.015)  # 66.92, truncated
    assert by_category["Question Rewriting"].delta == pytest.approx(68.72 - 79.80)
    assert by_category["Title Generation"].delta == pytest.approx(44.0 - 67.18)
    assert [v.verdict for v in mtl] == ["helps", "hurts", "hurts"]  # ordered by delta


def test_tolerance_and_top_categories_from_the_study_config(tmp_path):
    root = write_synthetic_study(tmp_path / "study", thesis_like_study())
    config = yaml.safe_load((root / "study.yaml").read_text())
    config["report"] = {"tolerance": 0.5, "top_categories": 4}
    (root / "study.yaml").write_text(yaml.safe_dump(config))
    files = build_report(root, n_boot=N_BOOT)
    summary = json.loads(files.summary.read_text())
    reading = summary["thesis_reading"]
    assert reading["tolerance"] == 0.5
    assert reading["mtl"]["matches_sota"]["size"] == "1000"  # 70.40 is 0.59 below 70.99: no longer a match
    categories = {c["category"]: c["tasks"] for c in reading["stl"]["categories"]}
    assert len(categories) == 5 and categories[OTHER_CATEGORIES] == 2  # six categories of one task each
    assert set(next(iter(summary["categories"].values()))) == set(categories)
    assert f"| {OTHER_CATEGORIES} | 2 |" in files.markdown.read_text()
    # the command line's --tolerance wins over the config
    assert (
        build_report(root, n_boot=N_BOOT, tolerance=0.6)
        and json.loads(files.summary.read_text())["thesis_reading"]["mtl"]["matches_sota"]["size"] == "200"
    )


def test_cli_tolerance_option_and_its_error(tmp_path):
    root = write_synthetic_study(tmp_path / "study", thesis_like_study())
    command = [sys.executable, "-m", "quickstudy.cli", "report", str(root), "--bootstrap", "50"]
    done = subprocess.run([*command, "--tolerance", "0"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    reading = json.loads((root / "report" / "summary.json").read_text())["thesis_reading"]
    assert reading["tolerance"] == 0 and reading["mtl"]["matches_sota"]["size"] == "1000"
    bad = subprocess.run([*command, "--tolerance", "-1"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--tolerance" in bad.stderr and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0


def test_a_cell_scoring_the_same_everywhere_gets_a_zero_width_interval_that_draws(tmp_path):
    study = thesis_like_study()
    study.spread = 0.0
    study.tasks = [SyntheticTask(t.name, t.category, t.train_pool) for t in study.tasks]  # no task effects
    root = write_synthetic_study(tmp_path / "flat", study)
    analysis = analyse(collect_study(root), n_boot=N_BOOT)
    for estimates in analysis.overall.values():
        rouge = estimates["rougeL"]
        assert rouge.low == rouge.value == rouge.high  # every replicate is the point, to the last bit
    for crossover in analysis.crossovers:
        low, high = crossover.x_interval
        assert low <= crossover.x <= high
    assert thesis_reading(analysis).settings["stl"].surpasses_sota.size == "1000"
    files = build_report(root, n_boot=N_BOOT)  # matplotlib refused negative error bars here before
    assert files.figures[0].name == "figure_1_1.png" and all(path.stat().st_size for path in files.figures)


def test_crossover_interval_holds_its_estimate_on_the_thesis_numbers(tmp_path):
    root = write_synthetic_study(tmp_path / "study", thesis_numbers_study())
    analysis = analyse(collect_study(root), n_boot=N_BOOT)
    for crossover in analysis.crossovers:
        low, high = crossover.x_interval
        assert low <= crossover.x <= high
    for estimates in analysis.overall.values():
        for estimate in estimates.values():
            assert estimate.low <= estimate.value <= estimate.high


def test_prompt_lengths_count_whole_prompts_in_the_tokenizer():
    from quickstudy.data.records import Example, Instance, Task
    from quickstudy.models.tiny import byte_tokenizer
    from quickstudy.prompts.encoding import PromptBuilder, encoding_by_name
    from quickstudy.prompts.lengths import prompt_lengths

    task = Task(
        name="task1_demo",
        definition="Copy the input. " * 20,
        positive_examples=[Example("a", "a", None), Example("b", "b", None)],
        instances=[Instance(f"i{j}", "word " * (10 * j), ("x",)) for j in range(1, 5)],
    )
    tokenizer = byte_tokenizer()
    encoding = encoding_by_name("def_pos2")
    expected = [len(PromptBuilder(task, encoding).prompt(i.input).encode()) + 1 for i in task.instances]  # + </s>
    lengths = prompt_lengths(task, task.instances, encoding, tokenizer, budget=expected[1])
    assert (lengths.n, lengths.max, lengths.over_budget) == (4, max(expected), 2)
    assert lengths.mean == pytest.approx(sum(expected) / 4)
    bare = prompt_lengths(task, task.instances, encoding_by_name("input_only"), tokenizer, budget=None)
    assert bare.mean == pytest.approx(sum(len(i.input.encode()) + 1 for i in task.instances) / 4)


def test_tables_4_2_and_4_3_and_per_task_prompt_lengths(tmp_path):
    root = write_synthetic_study(tmp_path / "study", thesis_numbers_study())
    recorded = {"proposed": (400, 1200), "baseline_3": (90, 300)}  # (mean, max) tokens, as a finetune run records
    for path in (root / "runs").glob("*/spec.json"):
        spec = json.loads(path.read_text())
        if spec["kind"] == "finetune" and spec["arm"] in recorded and spec["size"] == "all":
            mean, top = recorded[spec["arm"]]
            n = spec["train_instances"]
            counts = n if isinstance(n, dict) else {spec["task"]: n}
            spec["prompt_tokens"] = {
                t: {"n": c, "mean": mean, "max": top, "over_budget": c // 4} for t, c in counts.items()
            }
            spec["training"] = {"max_source_length": 512}
            path.write_text(json.dumps(spec))
    markdown = build_report(root, n_boot=N_BOOT).markdown.read_text()
    assert "| train instances (the train pools) | 374,745 |" in markdown
    assert "| mean train prompt length, with instructions (tokens) | 400.00 |" in markdown
    assert "| mean train prompt length, without instructions (tokens) | 90.00 |" in markdown
    assert "| 1000 | 11,529 | 8,831 | 8,026 | 9,049 | 19,019 | 16,514 | 21,988 | 94,956 (25.34%) |" in markdown
    assert "| tasks | 1 | 1 | 1 | 1 | 1 | 1 | 1 | 7 |" in markdown
    per_task = markdown[markdown.index("## Per task") :]
    task_row = next(line for line in per_task.splitlines() if line.startswith("| task0_answerability"))
    assert task_row.endswith("| 400 | 1200 | 25.0% |")
    assert "**Models trained**: 56 planned: 49 STL (7 per task over 7 tasks), 6 MTL, 1 pre-finetuning." in markdown


def test_a_drop_is_reported_only_beyond_its_95_percent_interval(tmp_path):
    scores = {
        ("stl", "proposed"): {"100": 65.93, "200": 65.70, "1000": 71.71, "all": 72.04},  # a 0.23 dip: chance
        ("mtl", "proposed"): {"100": 66.78, "200": 70.40, "1000": 73.14, "all": 68.00},  # a 5.14 fall
    }
    arms = [
        SyntheticArm(a.name, a.setting, a.start, a.encoding, scores.get((a.setting, a.name), a.scores))
        for a in THESIS_ARMS
    ]
    root = write_synthetic_study(tmp_path / "study", SyntheticStudy(tasks=thesis_like_study().tasks, arms=arms))
    files = build_report(root, n_boot=N_BOOT)
    reading = json.loads(files.summary.read_text())["thesis_reading"]
    assert reading["stl"]["drops"] == []
    (drop,) = reading["mtl"]["drops"]
    assert (drop["from_size"], drop["to_size"], drop["delta"]) == ("1000", "all", pytest.approx(68.00 - 73.14))
    assert drop["low"] <= drop["delta"] <= drop["high"] < 0
    assert "MTL scores lower with more data: all per task is -5.14 below 1000 per task" in files.markdown.read_text()
