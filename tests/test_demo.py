"""The built-in demo end to end, with its one-minute smoke preset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quickstudy.data.collection import Collection
from quickstudy.demo import demo_paths, prepared_demo_data
from quickstudy.study.layout import ESTIMATE_FILE

QUICKSTUDY = [sys.executable, "-m", "quickstudy.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def run_demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*QUICKSTUDY, "demo", *args], capture_output=True, text=True, env=ENV, timeout=300)


@pytest.fixture(scope="module")
def smoke_demo(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("demo") / "demo-study"
    return out, run_demo("--preset", "smoke", "--out", str(out))


def test_smoke_demo_runs_every_arm_and_writes_the_report(smoke_demo):
    out, done = smoke_demo
    assert done.returncode == 0, done.stderr
    assert f"report: {out / 'report' / 'report.html'}" in done.stdout
    for name in ("report.md", "report.html", "results.csv", "summary.json"):
        assert (out / "report" / name).stat().st_size > 0
    arms = {json.loads(p.read_text())["arm"] for p in (out / "runs").glob("*/spec.json")}
    assert arms >= {
        "stl_proposed", "mtl_proposed", "stl_baseline1", "stl_baseline2", "stl_baseline3",
        "mtl_baseline1", "mtl_baseline2", "zero_shot",
    }  # fmt: skip
    states = [json.loads(p.read_text())["state"] for p in (out / "runs").glob("*/status.json")]
    assert states and set(states) == {"done"}
    markdown = (out / "report" / "report.md").read_text()
    for heading in ("## What was run", "## The answers", "## Sample efficiency"):
        assert heading in markdown
    # the cost calibrated on this CPU before launch, beside what the runs took
    assert "of compute estimated, calibrated on this machine" in done.stdout
    bullet = next(line for line in markdown.splitlines() if "**Estimate before launch**" in line)
    assert bullet.startswith("- **Estimate before launch** (calibrated (cpu); recorded ")
    assert "measured on this machine's cpu" in bullet and "after the first run" not in bullet
    assert f"for the {len(states)} done runs it covers that ran on a CPU" in bullet


def test_smoke_demo_prints_the_answers_and_plain_progress_lines(smoke_demo):
    out, done = smoke_demo
    assert done.returncode == 0, done.stderr
    answers = (out / "report" / "report.md").read_text().split("## The answers")[1].split("\n## ")[0]
    bullets = [line[2:] for line in answers.splitlines() if line.startswith("- ")]
    printed = " ".join(done.stdout.split())
    assert bullets and all(" ".join(b.replace("**", "").replace("`", "").split()) in printed for b in bullets)
    assert printed.index("How much data") < printed.index("report: ")  # the answers, then the paths
    # stdout is not a terminal: timestamped lines, each run's end and the study's state, no live view
    lines = [line for line in done.stdout.splitlines() if line[:4].isdigit()]
    assert any(" done ft-" in line for line in lines) and any(" done ev-" in line for line in lines)
    planned = len(list((out / "runs").glob("*/spec.json")))
    assert f" study {planned}/{planned} done, 0 failed, 0 running" in lines[-1]
    assert "\x1b[" not in done.stdout


def test_running_the_demo_again_trains_nothing(smoke_demo):
    out, first = smoke_demo
    assert first.returncode == 0, first.stderr
    before = {p: p.stat().st_mtime_ns for p in [*(out / "runs").glob("*/status.json"), out / ESTIMATE_FILE]}
    again = run_demo("--preset", "smoke", "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in before} == before  # the estimate made before launch is kept
    assert "compute estimated" not in again.stdout


def test_demo_tokenizer_covers_every_word_of_the_collection(tmp_path):
    paths = demo_paths(tmp_path / "d")
    prepared_demo_data(paths)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(paths.tokenizer)
    task = next(Collection(paths.collection).tasks())
    ids = tokenizer(task.definition + " " + task.instances[0].input)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert 100 <= len(tokenizer) <= 400


def test_unknown_preset_is_a_one_line_error(tmp_path):
    done = run_demo("--preset", "nope", "--out", str(tmp_path / "x"))
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and "nope" in done.stderr
    assert not (tmp_path / "x").exists()
