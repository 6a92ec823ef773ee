"""A done run is verified before it is believed (issue 17): `study verify` lists a truncated
predictions.jsonl, a tampered score, a deleted spec.json and a truncated model.safetensors;
`study run` repairs them, and the results equal an undamaged study's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from quickstudy.report.render import build_report
from quickstudy.study.config import load_study_config
from quickstudy.study.execute import checkpoint_dir
from quickstudy.study.layout import RunKind
from quickstudy.study.plan import plan_study
from quickstudy.study.runner import run_study
from quickstudy.study.verify import damaged_runs

QUICKSTUDY = str(Path(sys.executable).with_name("quickstudy"))


@pytest.fixture(scope="module")
def study(smoke_config: Path, tmp_path_factory) -> tuple[Path, Path, str]:
    """The smoke study (models kept), run once; its config, folder and results.csv."""
    torch.set_num_threads(1)
    raw = yaml.safe_load(smoke_config.read_text())
    raw.update(keep_checkpoints=True, arms=[arm for arm in raw["arms"] if arm["name"] in ("stl_proposed", "zero_shot")])
    root = tmp_path_factory.mktemp("verify")
    config = root / "study.yaml"
    config.write_text(yaml.safe_dump(raw))
    study_dir = root / "study"
    assert run_study(load_study_config(config), study_dir).complete
    build_report(study_dir, root / "report", n_boot=50)
    return config, study_dir, (root / "report" / "results.csv").read_text()


def test_verify_lists_four_damages_and_study_run_repairs_them(study, tmp_path: Path) -> None:
    config, study_dir, undamaged_csv = study
    plan = plan_study(load_study_config(config))
    evaluates = [run for run in plan.runs if run.kind == RunKind.EVALUATE and run.depends_on]
    trained = next(run for run in plan.runs if run.kind == RunKind.FINETUNE and run.id not in
                   {e.depends_on[0] for e in evaluates[:3]})  # fmt: skip
    cut, tampered, unspecified = (study_dir / "runs" / run.id for run in evaluates[:3])
    lines = (cut / "predictions.jsonl").read_text().splitlines(keepends=True)
    (cut / "predictions.jsonl").write_text("".join(lines[: len(lines) // 2]))  # cut at a line boundary
    lines = (tampered / "predictions.jsonl").read_text().splitlines(keepends=True)
    first = json.loads(lines[0])
    first["scores"]["rougeL"] = 99.5
    (tampered / "predictions.jsonl").write_text(json.dumps(first) + "\n" + "".join(lines[1:]))
    (unspecified / "spec.json").unlink()
    weights = checkpoint_dir(study_dir, trained.id) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    result = subprocess.run([QUICKSTUDY, "study", "verify", str(study_dir)], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "300"})  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    listed = {line.split()[1].rstrip(":"): line for line in result.stdout.splitlines() if line.startswith("damaged ")}
    assert set(listed) == {cut.name, tampered.name, unspecified.name, trained.id}, result.stdout
    assert "predictions, but the run counted" in listed[cut.name]
    assert "stored scores differ from the recomputed ones" in listed[tampered.name]
    assert f"{unspecified / 'spec.json'}: missing" in listed[unspecified.name]
    assert "model.safetensors is torn or truncated" in listed[trained.id]
    assert "4 damaged run(s)" in result.stderr

    report = build_report(study_dir, tmp_path / "unverified", n_boot=50)  # the report leaves them out
    assert report.csv.read_text() != undamaged_csv

    repaired = run_study(load_study_config(config), study_dir)
    assert repaired.complete and len(repaired.repaired) == 4
    assert set(repaired.done) >= {cut.name, tampered.name, unspecified.name, trained.id}
    assert damaged_runs(study_dir, plan.runs) == []
    again = build_report(study_dir, tmp_path / "repaired", n_boot=50)
    assert again.csv.read_text() == undamaged_csv
