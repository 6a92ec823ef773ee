"""The estimate recorded before launch (`study plan --estimate`) beside the hours the runs took."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from quickstudy.report.analysis import analyse
from quickstudy.report.render import build_report
from quickstudy.report.results import collect_study
from quickstudy.study.estimate import DEVICE_PROFILES, RunEstimate, StudyEstimate, record_estimate
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

    progress = {(p.setting, p.arm): p for p in analyse(collect_study(root), n_boot=N_BOOT).progress}
    stl = progress[("stl", "proposed")]
    assert stl.estimated_runs == len(proposed) == 48
    assert stl.estimated_hours == pytest.approx(48 * 300 / 3600)
    assert stl.measured_hours == pytest.approx(48 * RUN_SECONDS / 3600)
    mtl = progress[("mtl", "baseline_2")]
    assert (mtl.estimated_runs, mtl.estimated_hours) == (1, pytest.approx(1200 / 3600))
    assert mtl.measured_hours == pytest.approx(RUN_SECONDS / 3600)  # the runs without an estimate are left out
    assert progress[("stl", "baseline_1")].estimated_runs == 0

    files = build_report(root, n_boot=N_BOOT)
    markdown = files.markdown.read_text()
    assert "**Estimate before launch** (a100-40gb;" in markdown
    assert (
        "4:20:00 (h:mm:ss) of compute for the 49 done runs it covers; they took 8:10:00 of device time (1.9x the estimate)"
        in markdown
    )
    row = next(line for line in markdown.splitlines() if line.startswith("| proposed | stl |"))
    assert row.rstrip().endswith("| 4:00:00 | 8:00:00 | 2.00 |")
    summary = json.loads(files.summary.read_text())
    assert summary["estimate"]["device"] == "a100-40gb"
    entry = next(p for p in summary["progress"] if (p["setting"], p["arm"]) == ("stl", "proposed"))
    assert entry["estimated_hours"] == pytest.approx(4.0)


def test_without_an_estimate_the_report_says_how_to_record_one(tmp_path):
    root = write_synthetic_study(tmp_path / "study", thesis_like_study())
    markdown = build_report(root, n_boot=N_BOOT).markdown.read_text()
    assert "**Estimate before launch**: none recorded (`quickstudy study plan CONFIG --estimate" in markdown
    assert "measured / estimated" not in markdown


def test_a_damaged_estimate_is_one_line_naming_the_file(tmp_path):
    root = write_synthetic_study(tmp_path / "study", thesis_like_study())
    (root / ESTIMATE_FILE).write_text('{"device": {"name": "h100"}')
    done = subprocess.run([str(QUICKSTUDY), "report", str(root)], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().endswith("delete it or estimate again")
    assert str(root / ESTIMATE_FILE) in done.stderr and len(done.stderr.strip().splitlines()) == 1
