"""The report on synthetic studies whose numbers are known by construction (see tests/studies.py)."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys

import pytest

from quickstudy.report import build_report
from quickstudy.report.analysis import analyse, first_crossing
from quickstudy.report.bootstrap import CellKey
from quickstudy.report.results import collect_study
from studies import (
    THESIS_TASKS,
    SyntheticArm,
    SyntheticStudy,
    thesis_like_study,
    write_synthetic_study,
)

POOLS = {t.name: t.train_pool for t in THESIS_TASKS}
EFFECTS = {t.category: t.effect - sum(u.effect for u in THESIS_TASKS) / len(THESIS_TASKS) for t in THESIS_TASKS}
N_BOOT = 200


def log_interpolated_x(x0: float, y0: float, x1: float, y1: float, level: float) -> float:
    t = (level - y0) / (y1 - y0)
    return x0 * (x1 / x0) ** t


def share_of_pool(x: float) -> float:
    return sum(min(x, n) for n in POOLS.values()) / sum(POOLS.values())


@pytest.fixture(scope="module")
def thesis_analysis(tmp_path_factory):
    root = write_synthetic_study(tmp_path_factory.mktemp("thesis"), thesis_like_study())
    return analyse(collect_study(root), n_boot=N_BOOT)


def test_overall_cells_equal_the_constructed_scores(thesis_analysis):
    expected = {(a.setting, a.name, size): v for a in thesis_like_study().arms for size, v in a.scores.items()}
    assert len(thesis_analysis.overall) == len(expected) == 14
    for key, estimates in thesis_analysis.overall.items():
        value = expected[(key.setting, key.arm, key.size)]
        assert estimates["rougeL"].value == pytest.approx(value, abs=1e-9)
        assert estimates["rougeL"].low < value < estimates["rougeL"].high


def test_size_positions_and_shares_follow_the_train_pool(thesis_analysis):
    sizes = thesis_analysis.sizes
    assert sizes["100"].x == 100 and sizes["200"].x == 200
    assert sizes["1000"].x == pytest.approx((5 * 1000 + 450) / 6)  # one task has only 450 train instances
    assert sizes["all"].x == pytest.approx(sum(POOLS.values()) / 6)
    assert sizes["1000"].fraction == pytest.approx(5450 / 20050)
    assert sizes["all"].fraction == 1.0


def test_crossover_is_interpolated_on_log_size(thesis_analysis):
    x1000 = (5 * 1000 + 450) / 6
    by_setting = {c.setting: c for c in thesis_analysis.crossovers}
    # STL: 68.34 at 200 and 71.71 at 1000 bracket the STL baseline 3 (70.99)
    stl_x = log_interpolated_x(200, 68.34, x1000, 71.71, 70.99)
    assert by_setting["stl"].status == "reached"
    assert by_setting["stl"].x == pytest.approx(stl_x)
    assert by_setting["stl"].fraction == pytest.approx(share_of_pool(stl_x))
    # MTL has no full-data baseline: the STL one is the reference; 70.40 at 200 is still below it
    mtl_x = log_interpolated_x(200, 70.40, x1000, 73.14, 70.99)
    assert by_setting["mtl"].reference == CellKey("stl", "baseline_3", "all")
    assert by_setting["mtl"].x == pytest.approx(mtl_x)
    assert by_setting["mtl"].fraction == pytest.approx(share_of_pool(mtl_x))
    for crossover in by_setting.values():
        low, high = crossover.x_interval
        assert low <= crossover.x <= high and low < high


def test_first_crossing_edge_cases():
    assert first_crossing([100, 1000], [60, 80], 70) == ("reached", pytest.approx(10**2.5))
    assert first_crossing([100, 1000], [75, 80], 70) == ("at or below the smallest size", 100)
    assert first_crossing([100, 1000], [50, 60], 70) == ("not reached", math.inf)
    # the first crossing counts, even when the curve dips again
    assert first_crossing([10, 100, 1000], [60, 80, 65], 70)[1] == pytest.approx(10**1.5)


def test_deltas_equal_differences_of_the_constructed_scores(thesis_analysis):
    deltas = {(d.kind, d.a.slug, d.b.slug): d.estimate for d in thesis_analysis.deltas}
    assert deltas[("instruction pre-finetuning", "stl/proposed/200", "stl/baseline_1/200")].value == pytest.approx(
        68.34 - 64.29
    )
    assert deltas[("instruction pre-finetuning", "mtl/proposed/200", "mtl/baseline_1/200")].value == pytest.approx(
        70.40 - 65.63
    )
    assert deltas[("instructions at equal data", "stl/proposed/1000", "stl/baseline_2/1000")].value == pytest.approx(
        71.71 - 68.91
    )
    assert deltas[("instructions at equal data", "stl/proposed/all", "stl/baseline_3/all")].value == pytest.approx(
        72.04 - 70.99
    )
    mtl_minus_stl = {a: e.value for (kind, a, b), e in deltas.items() if kind == "MTL - STL" and "proposed" in a}
    assert mtl_minus_stl == pytest.approx(
        {
            "mtl/proposed/100": 66.78 - 65.93,
            "mtl/proposed/200": 70.40 - 68.34,
            "mtl/proposed/1000": 73.14 - 71.71,
            "mtl/proposed/all": 74.68 - 72.04,
        }
    )
    for estimate in deltas.values():
        assert estimate.low <= estimate.value <= estimate.high


def test_category_tables_and_verdicts(thesis_analysis):
    scores = thesis_analysis.category_scores
    assert scores[(CellKey("stl", "proposed", "100"), "Textual Entailment", "rougeL")].value == pytest.approx(
        65.93 + EFFECTS["Textual Entailment"]
    )
    assert scores[(CellKey("stl", "baseline_2", "1000"), "Title Generation", "rougeL")].value == pytest.approx(
        68.91 - EFFECTS["Title Generation"]
    )
    # SuperNI's view scores Textual Entailment by exact match: round(10 * 65.93 / 100) = 7 of 10 right
    metric, estimate = thesis_analysis.category_view(CellKey("stl", "proposed", "100"), "Textual Entailment")
    assert (metric, estimate.value) == ("exact_match", pytest.approx(70.0))
    assert thesis_analysis.category_view(CellKey("stl", "proposed", "100"), "Title Generation")[0] == "rougeL"
    effects = {(e.setting, e.category): e for e in thesis_analysis.category_effects}
    equal_data_stl = ((68.34 - 64.29) + (71.71 - 68.91) + (72.04 - 70.99)) / 3
    entailment = effects[("stl", "Textual Entailment")]
    assert entailment.estimate.value == pytest.approx(equal_data_stl + 2 * EFFECTS["Textual Entailment"])
    assert entailment.verdict == "helps"
    assert effects[("stl", "Title Generation")].verdict == "hurts"
    assert effects[("mtl", "Question Rewriting")].verdict == "hurts"


def test_task_rows_truncation_and_gain(thesis_analysis):
    rows = {row.task: row for row in thesis_analysis.tasks}
    title = rows["task219_rocstories_title_answer_generation"]
    # half the instruction prompts (4 STL + 4 MTL proposed runs + zero-shot) of 14 runs x 10 lines
    assert title.truncated == pytest.approx(9 * 5 / 140)
    assert rows["task1344_glue_entailment_classification"].truncated == 0
    all_pairs = [68.34 - 64.29, 71.71 - 68.91, 72.04 - 70.99, 70.40 - 65.63, 73.14 - 68.10]
    assert title.instruction_gain == pytest.approx(sum(all_pairs) / 5 + 2 * EFFECTS["Title Generation"])
    assert title.rougeL[CellKey("stl", "proposed", "all")] == pytest.approx(72.04 + EFFECTS["Title Generation"])


def test_report_files_agree_with_the_analysis(tmp_path):
    root = write_synthetic_study(tmp_path / "study", thesis_like_study())
    files = build_report(root, n_boot=N_BOOT)
    assert files.html.parent == root / "report"
    rows = list(csv.DictReader(files.csv.open()))
    assert len(rows) == (4 + 3) * 6 + 6 * 6 + 6  # STL runs x 1 task, MTL runs x 6 tasks, zero-shot x 6
    assert set(rows[0]) >= {
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
    }
    row = next(r for r in rows if r["arm"] == "baseline_3" and r["task"] == "task1344_glue_entailment_classification")
    assert float(row["rougeL"]) == pytest.approx(70.99 - EFFECTS["Textual Entailment"]) and row["n"] == "10"
    summary = json.loads(files.summary.read_text())
    assert summary["cells"]["stl/proposed/1000"]["rougeL"]["value"] == pytest.approx(71.71)
    stl = next(c for c in summary["crossovers"] if c["setting"] == "stl")
    markdown = files.markdown.read_text()
    assert f"{100 * stl['fraction']:.1f}% of the training data" in markdown
    assert "| Textual Entailment | 1 | 73.43 |" in markdown  # 1 task; STL proposed @ 100 (65.93 + 7.5)
    assert "The study is complete" in markdown
    html = files.html.read_text()
    assert html.count("data:image/png;base64,") == len(files.figures) >= 5
    assert files.figures[0].name == "figure_1_1.png"  # the thesis's Figure 1.1 comes first
    assert "src='figures/" not in html and "class='sortable'" in html


def test_partial_study_says_what_is_missing(tmp_path):
    study = thesis_like_study()
    study.pending = {("stl", "baseline_3", "all")}
    study.failed = {("mtl", "proposed", "all")}
    root = write_synthetic_study(tmp_path / "study", study)
    one_stl_run = next(
        p
        for p in (root / "runs").glob("*/predictions.jsonl")
        if '"proposed"' in (p.parent / "spec.json").read_text()
        and '"stl"' in (p.parent / "spec.json").read_text()
        and '"100"' in (p.parent / "spec.json").read_text()
    )
    (one_stl_run.parent / "status.json").unlink()  # still running: the cell covers 5 of 6 tasks
    never_started = next(p.parent for p in (root / "runs").glob("*/spec.json") if '"baseline_3"' in p.read_text())
    shutil.rmtree(never_started)  # planned (plan.json) but no directory yet: still pending
    left_over = shutil.copytree(next((root / "runs").glob("*/predictions.jsonl")).parent, root / "runs" / "left-over")
    spec = json.loads((left_over / "spec.json").read_text())
    (left_over / "spec.json").write_text(
        json.dumps({**spec, "id": "left-over", "arm": "stale_arm"})
    )  # not in plan.json
    files = build_report(root, n_boot=N_BOOT)
    markdown = files.markdown.read_text()
    assert "The study is **partial**" in markdown
    assert "proposed (stl): 1 pending, 0 failed of 24 runs\n" in markdown
    assert "baseline_3 (stl): 6 pending, 0 failed of 6 runs; no finished evaluation yet at size all" in markdown
    assert "proposed (mtl): 0 pending, 1 failed of 4 runs; no finished evaluation yet at size all" in markdown
    assert "CUDA out of memory (synthetic)" in markdown
    assert "STL proposed @ 100 covers 5 of 6 tasks" in markdown
    assert "stale_arm" not in markdown
    summary = json.loads(files.summary.read_text())
    assert all(c["status"] == "no reference" for c in summary["crossovers"])
    assert "stl/baseline_3/all" not in summary["cells"] and "mtl/proposed/all" not in summary["cells"]
    assert summary["partial_cells"] == {"stl/proposed/100": 5}


def test_not_reached_and_several_seeds(tmp_path):
    arms = [
        SyntheticArm("proposed", "stl", "instruction_tuned", "def_pos2", {"100": 50.0, "200": 55.0}),
        SyntheticArm("baseline_3", "stl", "base", "input_only", {"all": 70.0}),
    ]
    root = write_synthetic_study(tmp_path / "study", SyntheticStudy(tasks=THESIS_TASKS[:3], arms=arms, seeds=(1, 2, 3)))
    analysis = analyse(collect_study(root), n_boot=N_BOOT)
    (crossover,) = analysis.crossovers
    assert crossover.status == "not reached" and crossover.fraction is None
    key = CellKey("stl", "proposed", "200")
    assert analysis.cells[key].seeds == [1, 2, 3]
    assert analysis.overall[key]["rougeL"].value == pytest.approx(55.0)  # seed shifts -0.5, 0, +0.5 cancel
    files = build_report(root, n_boot=N_BOOT)
    assert "does not reach the supervised SOTA" in files.markdown.read_text()


def test_cli_writes_the_report(tmp_path):
    root = write_synthetic_study(
        tmp_path / "study", SyntheticStudy(tasks=THESIS_TASKS[:2], arms=thesis_like_study().arms[:4])
    )
    command = [
        sys.executable,
        "-m",
        "quickstudy.cli",
        "report",
        str(root),
        "--out",
        str(tmp_path / "out"),
        "--bootstrap",
        "100",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "figures",
        "forecast.json",
        "report.html",
        "report.md",
        "results.csv",
        "summary.json",
    ]


def test_cli_rejects_bad_input_in_one_line(tmp_path, quickstudy):
    root = write_synthetic_study(
        tmp_path / "study", SyntheticStudy(tasks=THESIS_TASKS[:2], arms=thesis_like_study().arms[:4])
    )
    broken = next((root / "runs").glob("*/predictions.jsonl"))
    lines = broken.read_text().splitlines()
    broken.write_text("\n".join(lines[:2] + ["{not json"] + lines[3:]) + "\n")
    code, _, stderr = quickstudy("report", str(root), "--out", str(tmp_path / "again"))
    assert code != 0
    assert stderr.strip().count("\n") == 0 and "Traceback" not in stderr
    assert f"{broken}:3" in stderr.replace("\n", "")
    assert not (tmp_path / "again" / "report.html").exists()

    code, _, stderr = quickstudy("report", str(tmp_path / "nowhere"))
    assert code != 0 and "no such study directory" in stderr


@pytest.mark.superni
def test_real_predictions_reproduce_the_reference_scorer(tmp_path, golden_dir):
    """A run holding the golden predictions, scored by quickstudy.evaluate: the report's numbers equal golden/metrics.json."""
    from quickstudy.evaluate.metrics import group_key, with_scores
    from quickstudy.evaluate.predictions import read_predictions, write_predictions

    run = tmp_path / "study" / "runs" / "ev-golden"
    run.mkdir(parents=True)
    write_predictions(run / "predictions.jsonl", with_scores(read_predictions(golden_dir / "predictions.jsonl")))
    spec = {
        "id": "ev-golden",
        "kind": "evaluate",
        "arm": "mtl_proposed",
        "setting": "mtl",
        "size": "all",
        "seed": 1,
        "encoding": "def_pos2",
    }
    (run / "spec.json").write_text(json.dumps(spec))
    (run / "status.json").write_text(
        json.dumps({"state": "done", "wall_seconds": 1.0, "device": "cpu", "gpu_hours": 0})
    )
    golden = json.loads((golden_dir / "metrics.json").read_text())

    analysis = analyse(collect_study(tmp_path / "study"), n_boot=N_BOOT)
    key = CellKey("mtl", "mtl_proposed", "all")
    for metric in ("rougeL", "exact_match", "rouge1"):
        assert round(analysis.overall[key][metric].value, 4) == pytest.approx(golden["overall"][metric], abs=1e-4)
    for category in analysis.categories:
        for metric in ("rougeL", "exact_match"):
            expected = golden["per_category"][f"{metric}_for_{group_key(category)}"]
            assert round(analysis.category_scores[(key, category, metric)].value, 4) == pytest.approx(
                expected, abs=1e-4
            )
    assert len(analysis.categories) == len({k for k in golden["per_category"] if k.startswith("rougeL_for_")})
    files = build_report(tmp_path / "study", n_boot=N_BOOT)
    rows = list(csv.DictReader(files.csv.open()))
    assert len(rows) == len({k for k in golden["per_task"] if k.startswith("rougeL_for_")})
    for row in rows:
        assert float(row["rougeL"]) == pytest.approx(golden["per_task"][f"rougeL_for_{row['task']}"], abs=1e-4)
        assert float(row["exact_match"]) == pytest.approx(
            golden["per_task"][f"exact_match_for_{row['task']}"], abs=1e-4
        )
