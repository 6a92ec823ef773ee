"""Tasks whose held-out instances leave no train pool: `short_tasks: skip` (the default) drops
them from every arm and `study plan` names them; `keep` plans them anyway."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from quickstudy.shipped import config_file
from quickstudy.study.config import load_study_config
from quickstudy.study.plan import plan_study

SHORT, SMALL, FULL = "task066_coref_referent", "task031_analogy_solve", "task067_coref_other"


@pytest.fixture(scope="module")
def collection(synth_collection: Path, tmp_path_factory) -> Path:
    """The synthetic collection with SHORT cut to 10 instances (the smoke config's 8 test + 2
    validation: no train pool) and SMALL to 13 (a train pool of 3, below its sizes 4 and 8)."""
    folder = tmp_path_factory.mktemp("short") / "collection"
    shutil.copytree(synth_collection, folder)
    for name, keep in ((SHORT, 10), (SMALL, 13)):
        path = folder / "tasks" / f"{name}.json"
        task = json.loads(path.read_text())
        task["Instances"] = task["Instances"][:keep]
        path.write_text(json.dumps(task))
    return folder


def planned(collection: Path, *overrides: str):
    names = f"tasks.unseen.names=[{SHORT}, {SMALL}, {FULL}]"
    return plan_study(load_study_config(config_file(Path("smoke")), [f"collection={collection}", names, *overrides]))


def test_skip_drops_a_task_without_train_pool_from_every_arm(collection):
    plan = planned(collection)
    assert plan.skipped_tasks == plan.no_train_pool == (SHORT,)
    assert SHORT not in plan.unseen_tasks
    assert all(SHORT not in run.tasks for run in plan.runs)  # STL, MTL, zero-shot and baselines alike
    assert any(SMALL in run.tasks for run in plan.runs) and plan.below_smallest_size == {SMALL: 3}
    assert plan.to_json()["skipped_tasks"] == [SHORT]


def test_keep_plans_it_anyway(collection):
    plan = planned(collection, "short_tasks=keep")
    assert plan.skipped_tasks == () and plan.no_train_pool == (SHORT,)
    assert any(run.task == SHORT for run in plan.runs)


def test_study_plan_names_the_skipped_and_the_short_tasks(collection, tmp_path):
    command = [sys.executable, "-m", "quickstudy.cli", "study", "plan", "smoke", "--set", f"collection={collection}"]
    command += ["--set", f"tasks.unseen.names=[{SHORT}, {SMALL}, {FULL}]"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    output = " ".join(done.stdout.split())
    assert f"skipped from every arm (short_tasks: skip): {SHORT}" in output
    assert f"fewer train instances than the smallest size and train on all they have: {SMALL} (3)" in output
    bad = subprocess.run([*command, "--set", "short_tasks=drop"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "short_tasks" in bad.stderr and bad.stderr.strip().count("\n") == 0
