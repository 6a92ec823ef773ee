"""Learning-curve forecasts (report/forecast): fits, intervals, backtest, report section and CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from quickstudy.data.sampling import FORECAST_POINTS, auto_sizes
from quickstudy.errors import ConfigError, StudyError
from quickstudy.report import build_report
from quickstudy.report.analysis import analyse
from quickstudy.report.bootstrap import Estimate
from quickstudy.report.forecast import forecast_study, parse_target
from quickstudy.report.forecast.answers import COVERAGE_WARNING_TEXT, Series, fit_all, percentile_interval
from quickstudy.report.forecast.fit import LOG_LINEAR, POWER_LAW, fit_point, fit_power_law, n_for_target, predict
from quickstudy.report.results import collect_study
from quickstudy.study.config import load_study_config
from quickstudy.study.plan import plan_study, smallest_train_pool
from studies import SyntheticArm, thesis_like_study, write_synthetic_study

QUICKSTUDY = Path(sys.executable).with_name("quickstudy")
SIZES = np.array([16.0, 32, 64, 128, 256, 512])


def noisy_curve(seed: int, x: np.ndarray = SIZES, n_test: int = 100, sd: float = 15.0, reps: int = 400):
    """True (c, a, b), the measured means and bootstrap replicates of a test set of `n_test` instances
    scored at every size (paired across sizes, as in a study)."""
    rng = np.random.default_rng(seed)
    c, a, b = rng.uniform(55, 85), rng.uniform(60, 150), rng.uniform(0.3, 0.8)
    scores = c - a * x**-b + rng.normal(0, sd, (n_test, len(x)))
    replicates = scores[rng.integers(0, n_test, (reps, n_test))].mean(axis=1)
    return (c, a, b), scores.mean(axis=0), replicates


def series_of(x, y, samples, target: float | None = None) -> Series:
    level = None if target is None else Estimate(target, target, target, np.full(samples.shape[0], target))
    return Series("stl", "arm", "task", "category", tuple(str(v) for v in x), x, y, samples, level, "test")


def test_vectorised_fit_agrees_with_curve_fit():
    for seed in range(20):
        _, y, samples = noisy_curve(seed, x=np.array([8.0, 32, 128, 1000]))
        x = np.array([8.0, 32, 128, 1000])
        w = 1 / samples.var(axis=0)
        point = fit_point(x, y, w)
        assert point.params.kind == POWER_LAW, point.reason
        vector, sse = fit_power_law(x[None], y[None, None], w[None])
        for name in ("c", "a", "b"):
            assert float(getattr(vector, name)[0, 0]) == pytest.approx(float(getattr(point.params, name)), rel=1e-4)
        residual = float(np.sum(w * (y - predict(point.params, x)) ** 2))
        assert float(sse[0, 0]) == pytest.approx(residual, rel=1e-6, abs=1e-9)


def test_known_curves_are_recovered_within_their_intervals_in_90_of_100_trials():
    trials = [noisy_curve(seed) for seed in range(100)]
    targets = [c - a * 300.0**-b for (c, a, b), _, _ in trials]  # reached at n = 300
    fits = fit_all([series_of(SIZES, y, s, t) for (_, y, s), t in zip(trials, targets)])
    assert all(f.model == POWER_LAW for f in fits)
    for i, name in enumerate(("c", "a", "b")):
        inside = 0
        for ((truth), _, _), fitted in zip(trials, fits):
            low, high = percentile_interval(getattr(fitted.replicates, name))
            inside += low <= truth[i] <= high
        assert inside >= 90, name
    inside = sum(f.n_for(f.series.target).low <= 300 <= f.n_for(f.series.target).high for f in fits)
    assert inside >= 90


def test_n_for_target_inverts_the_curve_and_respects_the_ceiling():
    (c, a, b), y, samples = noisy_curve(3)
    fitted = fit_all([series_of(SIZES, y, samples)])[0]
    level = float(predict(fitted.params, 700.0))
    assert float(n_for_target(fitted.params, level)) == pytest.approx(700.0, rel=1e-9)
    assert math.isinf(float(n_for_target(fitted.params, float(fitted.params.c) + 1)))


def test_flat_points_fall_back_to_a_labelled_log_linear_fit():
    x = np.array([8.0, 32, 128, 1000])
    point = fit_point(x, np.array([40.0, 40, 40, 40]), np.ones(4))
    assert point.params.kind == LOG_LINEAR and "flat" in point.reason
    assert float(point.params.c) == pytest.approx(40) and float(point.params.a) == pytest.approx(0, abs=1e-9)


def test_parse_target():
    assert parse_target("sota") is None and parse_target("70") == 70.0
    for bad in ("abc", "0", "101"):
        with pytest.raises(Exception, match="--target"):
            parse_target(bad)


@pytest.fixture(scope="module")
def thesis_study(tmp_path_factory):
    return write_synthetic_study(tmp_path_factory.mktemp("thesis"), thesis_like_study())


def test_forecast_of_a_study_answers_per_arm_and_task_with_a_backtest(thesis_study):
    analysis = analyse(collect_study(thesis_study), n_boot=200)
    forecast = forecast_study(analysis, target=70.0, at=(5000.0,))
    overall = {(c.series.setting, c.series.arm): c for c in forecast.overall()}
    assert set(overall) == {("stl", "proposed"), ("mtl", "proposed")}  # baselines have one size each
    stl = overall[("stl", "proposed")]
    assert list(stl.series.y) == pytest.approx([65.93, 68.34, 71.71, 72.04])
    assert float(predict(stl.fitted.params, stl.n_target.value)) == pytest.approx(70.0, abs=1e-6)
    assert stl.n_target.low <= stl.n_target.value <= stl.n_target.high
    assert 5000.0 in stl.predictions
    # per task: 6 tasks x 2 arms; the task with a 450-instance pool has 3 distinct sizes (1000 = all), no backtest
    assert len(forecast.per_task()) == 12
    backtests = {(b.setting, b.arm): b for b in forecast.backtests}
    stl_tests = [c.backtest for c in forecast.per_task() if c.series.arm == "proposed" and c.series.setting == "stl"]
    done = [t for t in stl_tests if t is not None]
    assert len(done) == backtests[("stl", "proposed")].tasks == 5
    assert backtests[("stl", "proposed")].mae == pytest.approx(np.mean([abs(t.error) for t in done]))
    assert backtests[("stl", "proposed")].coverage == pytest.approx(np.mean([t.covered for t in done]))
    for t in done:
        assert t.held_out_size == "all"
    as_json = json.loads(json.dumps(forecast.to_json()))
    assert as_json["target"] == 70.0 and len(as_json["tasks"]) == 12 and len(as_json["backtests"]) == 2


def test_sota_target_is_each_tasks_full_data_baseline(thesis_study):
    analysis = analyse(collect_study(thesis_study), n_boot=200)
    forecast = forecast_study(analysis, arm="proposed", task="task1390_wscfixed_coreference")
    assert [c.series.task for c in forecast.curves] == ["task1390_wscfixed_coreference"] * 2
    baseline = next(k for k in analysis.cells if k.arm == "baseline_3")
    task_score = next(r.rougeL[baseline] for r in analysis.tasks if r.task == "task1390_wscfixed_coreference")
    assert all(c.series.target.value == pytest.approx(task_score) for c in forecast.curves)
    with pytest.raises(StudyError, match="--task nope: not an evaluated task"):
        forecast_study(analysis, task="nope")
    with pytest.raises(StudyError, match="--arm nope: no arm with >= 3 measured sizes"):
        forecast_study(analysis, arm="nope")


def test_report_has_the_forecast_section_and_a_coverage_warning(tmp_path):
    study = thesis_like_study()
    # a curve that collapses at its largest size: no fit of the first three sizes predicts it
    study.arms[0] = SyntheticArm(
        "proposed", "stl", "instruction_tuned", "def_pos2", {"100": 50, "200": 60, "1000": 70, "all": 30}
    )
    root = write_synthetic_study(tmp_path / "study", study)
    files = build_report(root, n_boot=50)
    markdown = files.markdown.read_text()
    section = markdown[markdown.index("## Forecast") :]
    assert "### Backtest" in section and "### Labels needed per task" in section
    assert f"STL proposed: {COVERAGE_WARNING_TEXT}" in section
    forecast = json.loads((files.markdown.parent / "forecast.json").read_text())
    stl = next(b for b in forecast["backtests"] if b["setting"] == "stl")
    assert stl["coverage"] < 0.8 and stl["warning"] == COVERAGE_WARNING_TEXT
    assert "forecast_overall.png" in {p.name for p in files.figures}
    html = files.html.read_text()
    assert html.count("<table class='sortable'>") >= 2  # per-task scores and labels needed


def test_cli_forecast_prints_the_table_and_writes_json(thesis_study, tmp_path):
    result = subprocess.run(
        [
            str(QUICKSTUDY),
            "forecast",
            str(thesis_study),
            "--target",
            "sota",
            "--bootstrap",
            "50",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env={"COLUMNS": "250", "PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert "Labels needed to reach" in result.stdout and "task957_e2e_nlg_text_generation_generate" in result.stdout
    assert "backtest STL proposed" in result.stdout
    written = json.loads((tmp_path / "forecast.json").read_text())
    assert written["target"] == "sota" and written["tasks"]
    printed = subprocess.run(
        [str(QUICKSTUDY), "forecast", str(thesis_study), "--json", "--arm", "proposed", "--bootstrap", "50"]
        + ["--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert printed.returncode == 0 and json.loads(printed.stdout)["overall"]


def test_cli_forecast_bad_input_is_one_line(thesis_study):
    result = subprocess.run(
        [str(QUICKSTUDY), "forecast", str(thesis_study), "--target", "abc"], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "--target 'abc'" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- sizes: [auto] ---------------------------------------------------------------------------------


def test_auto_sizes_are_a_geometric_ladder_with_enough_points_for_a_backtest():
    assert [s.label for s in auto_sizes(1000)] == ["16", "32", "64", "128", "256", "512", "all"]
    assert [s.label for s in auto_sizes(100)] == ["16", "32", "64", "all"]
    assert [s.label for s in auto_sizes(40)] == ["5", "10", "20", "all"]
    assert all(len(auto_sizes(pool)) >= FORECAST_POINTS for pool in range(8, 3000))


def test_plan_expands_auto_sizes_from_the_smallest_train_pool(smoke_config: Path):
    config = load_study_config(smoke_config, ["arms.stl_proposed.sizes=[auto]"])
    plan = plan_study(config)
    pool = smallest_train_pool(config, list(plan.unseen_tasks))
    expected = [s.label for s in auto_sizes(pool)]
    sizes = [r.size for r in plan.runs if r.arm == "stl_proposed" and r.kind == "finetune"]
    assert list(dict.fromkeys(sizes)) == expected and len(expected) >= FORECAST_POINTS
    with pytest.raises(ConfigError, match="arms.stl_proposed.sizes: 'auto' stands alone"):
        plan_study(load_study_config(smoke_config, ["arms.stl_proposed.sizes=[auto, 100]"]))
