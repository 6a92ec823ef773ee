"""configs/demo-compare.yaml: three instruction-tuned tiny models side by side (a T5 pre-finetuned
with definitions, one with def_pos2, a decoder-only Llama through its chat template with a LoRA
arm) against the supervised SOTA; the report draws one curve per start model and names the
quickest learner. Run here as a smaller preset of the shipped config (--set), end to end
through the installed command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SMALLER = [
    "tasks.seen.max_tasks=2",
    "tasks.unseen.max_tasks=1",
    "splits.n_test=6",
    "training.max_steps=2",
    "models.t5_def.prefinetune.per_task=2",
    "models.t5_def.prefinetune.training.max_steps=2",
    "models.t5_def_pos2.prefinetune.per_task=2",
    "models.t5_def_pos2.prefinetune.training.max_steps=2",
    "models.llama_chat.prefinetune.per_task=2",
    "models.llama_chat.prefinetune.training.max_steps=2",
    "generation.max_new_tokens=4",
    "executor.workers=1",
]


def test_demo_compare_reports_one_curve_per_start_model_and_the_quickest_learner(synth_collection: Path, tmp_path):
    study = tmp_path / "study"
    sets = [f"--set={item}" for item in [f"collection={synth_collection}", *SMALLER]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "quickstudy.cli"]
    run = subprocess.run(
        [*command, "study", "run", "demo-compare", *sets, "--out", str(study)], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = subprocess.run([*command, "report", str(study)], capture_output=True, text=True, env=env)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "Which instruction-tuned model is the quickest learner?" in report.stdout
    summary = json.loads((study / "report" / "summary.json").read_text())
    starts = {"t5_def", "t5_def_pos2", "llama_chat"}
    curves = {(cell["arm"]) for cell in summary["cells"].values() if cell["role"] == "proposed"}
    assert curves == {"stl_t5_def", "stl_t5_def_pos2", "stl_llama_chat"}  # one instruction curve per start model
    assert {q["start"] for q in summary["quickest_learner"]} == starts
    assert set(summary["thesis_reading"]["by_start"]) == starts
    assert [q["start"] for q in summary["thesis_reading"]["quickest_learner"]["stl"]][0] in starts
    text = (study / "report" / "report.md").read_text()
    assert "quickest learner" in text
    assert "`stl_llama_chat`, from `llama_chat`, LoRA" in text  # the answers name the LoRA arm as such
    plan = json.loads((study / "plan.json").read_text())
    assert (
        len(plan["runs"]) == 3 + 4 * 3 * 2 - 2 * 2
    )  # 3 pre-finetunes; 3 sizes x 3 arms + SOTA, each trained and scored
