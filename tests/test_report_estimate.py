"""The estimate recorded before launch (`study plan --estimate`) beside the hours the runs took."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from quickstudy.errors import StudyError
from quickstudy.report.analysis import analyse
from quickstudy.report.render import build_report
from quickstudy.report.results import collect_study
from quickstudy.study.estimate import DEVICE_PROFILES, RunEstimate, StudyEstimate, record_estimate, recorded_estimate
from quickstudy.study.layout import ESTIMATE_FILE
from studies import thesis_like_study, write_synthetic_study

QUICKSTUDY = Path(sys.executable).with_name("quickstudy")
N_BOOT = 50
RUN_SECONDS = 600.0  # every synthetic run took 600 s on one GPU (tests/studies.py)


def run_estimate(run_id: str, seconds: float) -> RunEstimate:
    return RunEstimate(run_id, "finetune", "arm", (), 1, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, seconds)


def estimated_study(root: Path, seconds_of: dict[str, float]) -> Path:
    """A thesis-like study whose recorded estimate gives each named run its seconds."""
    study = write_synthetic_study(root, thesis_like_study())
    runs = [run_estimate(run_id, seconds) for run_id, seconds in seconds_of.items()]
    record_estimate(study, StudyEstimate(runs, DEVICE_PROFILES["a100-40gb"], {}), gpus=1)
    return study


def arm_runs(root: Path, setting: str, arm: str) -> list[str]:
    results = collect_study(root)
    return [run.run_id for run in results.runs if run.setting == setting and run.arm == arm]


def test_each_arm_shows_its_done_runs_estimate_beside_the_hours_they_took(tmp_path):
    probe = write_synthetic_study(tmp_path / "probe", thesis_like_study())
    proposed = arm_runs(probe, "stl", "proposed")  # 6 tasks x 4 sizes: a fine-tune and an evaluation each
    baseline = arm_runs(probe, "mtl", "baseline_2")
    seconds = {run_id: 300.0 for run_id in proposed} | {run_id: 1200.0 for run_id in baseline[:1]}
    root = estimated_study(tmp_path / "study", seconds | {"ft-not-in-this-study": 10_000.0})

    analysis = analyse(collect_study(root), n_boot=N_BOOT)
    progress = {(p.setting, p.arm): p.cost for p in analysis.progress}
    stl = progress[("stl", "proposed")]
    assert stl.compared == len(proposed) == 48 and (stl.other_device, stl.not_covered) == (0, 0)
    assert stl.estimated_hours == pytest.approx(48 * 300 / 3600)
    assert stl.measured_hours == pytest.approx(48 * RUN_SECONDS / 3600)
    mtl = progress[("mtl", "baseline_2")]
    assert (mtl.compared, mtl.estimated_hours, mtl.not_covered) == (1, pytest.approx(1200 / 3600), 1)
    assert mtl.measured_hours == pytest.approx(RUN_SECONDS / 3600)  # the run without an estimate is left out
    assert progress[("stl", "baseline_1")].compared == 0
    assert (analysis.cost.compared, analysis.cost.covered, analysis.cost.planned) == (
        49,
        49,
        len(analysis.results.runs),
    )

    files = build_report(root, n_boot=N_BOOT)
    markdown = files.markdown.read_text()
    bullet = next(line for line in markdown.splitlines() if "**Estimate before launch**" in line)
    assert bullet.startswith("- **Estimate before launch** (a100-40gb; recorded ")
    assert "UTC, after the first run had started; A100 40GB" in bullet  # the synthetic runs are from January
    assert (
        "4.3 h of compute for the 49 done runs it covers that ran on a GPU; they took 8.2 h of GPU time "
        f"(1.9x the estimate, loading, saving and scoring included); it covers 49 of the study's "
        f"{len(analysis.results.runs)} runs; {analysis.cost.not_covered} done runs are not in it"
    ) in bullet
    row = next(line for line in markdown.splitlines() if line.startswith("| proposed | stl |"))
    assert row.rstrip().endswith("| 4.0 h | 8.0 h | 2.00 |")
    summary = json.loads(files.summary.read_text())
    assert summary["estimate"]["device"] == "a100-40gb" and summary["estimate"]["cost"]["compared"] == 49
    entry = next(p for p in summary["progress"] if (p["setting"], p["arm"]) == ("stl", "proposed"))
    assert entry["cost"]["estimated_hours"] == pytest.approx(4.0)


def test_an_estimate_for_another_device_or_configuration_is_not_compared(tmp_path):
    probe = write_synthetic_study(tmp_path / "probe", thesis_like_study())
    every_run = {run.run_id: 60.0 for run in collect_study(probe).runs}
    on_cpu = write_synthetic_study(tmp_path / "cpu", thesis_like_study())
    runs = [run_estimate(run_id, seconds) for run_id, seconds in every_run.items()]
    record_estimate(on_cpu, StudyEstimate(runs, DEVICE_PROFILES["cpu"], {}), gpus=1)
    cost = analyse(collect_study(on_cpu), n_boot=N_BOOT).cost
    done = sum(run.state == "done" for run in collect_study(on_cpu).runs)
    assert (cost.compared, cost.other_device, cost.estimated_hours) == (0, done, 0.0)  # the runs used GPUs
    markdown = build_report(on_cpu, n_boot=N_BOOT).markdown.read_text()
    assert f"{done} done runs it covers ran on another kind of device and are not compared" in markdown

    elsewhere = estimated_study(tmp_path / "other", {"ft-of-another-config": 100.0})
    cost = analyse(collect_study(elsewhere), n_boot=N_BOOT).cost
    assert (cost.compared, cost.covered, cost.not_covered) == (0, 0, done)
    assert "planned with another configuration" in build_report(elsewhere, n_boot=N_BOOT).markdown.read_text()


def test_cpu_runs_count_wall_time_per_process(tmp_path):
    root = write_synthetic_study(tmp_path / "study", thesis_like_study())
    run = next(run for run in collect_study(root).runs if run.kind.trains)
    assert run.device_hours == pytest.approx(RUN_SECONDS / 3600)  # its GPU-hours
    on_cpu = replace(run, device="cpu", gpu_hours=0.0, spec=run.spec.model_copy(update={"processes": 2}))
    assert on_cpu.device_hours == pytest.approx(2 * RUN_SECONDS / 3600)


def test_without_an_estimate_the_report_says_how_to_record_one(tmp_path):
    root = write_synthetic_study(tmp_path / "study", thesis_like_study())
    markdown = build_report(root, n_boot=N_BOOT).markdown.read_text()
    assert "**Estimate before launch**: none recorded (`quickstudy study plan CONFIG --estimate" in markdown
    assert "measured / estimated" not in markdown


def test_a_damaged_estimate_is_one_line_naming_the_file(tmp_path):
    root = write_synthetic_study(tmp_path / "study", thesis_like_study())
    damaged = {
        "truncated": ('{"device": {"name": "h100"}', "JSONDecodeError"),
        "no runs": ('{"device": {"name": "h100", "assumption": "x"}}', "KeyError: 'runs'"),
        "negative seconds": (
            '{"device": {"name": "h100", "assumption": "x"}, "runs": [{"run_id": "a", "seconds": -1}]}',
            "run a: seconds -1.0 is not a finite, non-negative number",
        ),
    }
    for why, (text, reason) in damaged.items():
        (root / ESTIMATE_FILE).write_text(text)
        with pytest.raises(StudyError, match="delete it or estimate again$") as raised:
            recorded_estimate(root)
        message = str(raised.value)
        assert message.startswith(f"{root / ESTIMATE_FILE}: not an estimate") and reason in message, why
    # end to end, with a value that would have reached the report's arithmetic
    (root / ESTIMATE_FILE).write_text(
        '{"device": {"name": "h100", "assumption": "x"}, "runs": [{"run_id": "a", "seconds": NaN}]}'
    )
    done = subprocess.run([str(QUICKSTUDY), "report", str(root)], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().endswith("delete it or estimate again") and "seconds nan" in done.stderr
    assert str(root / ESTIMATE_FILE) in done.stderr and len(done.stderr.strip().splitlines()) == 1
