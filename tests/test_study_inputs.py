"""Study inputs are checked before any run (issue 17): a plan is a set (no task listed twice,
no seed twice, unique run ids), `study plan` applies the checks of `data validate`, and the
config's input rules (sizes, pools, booleans, `--set` values, YAML shapes) are one-line errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from quickstudy.errors import ConfigError, DataError
from quickstudy.study.config import load_study_config
from quickstudy.study.plan import plan_study

QUICKSTUDY = str(Path(sys.executable).with_name("quickstudy"))
UNSEEN = ["task066_coref_referent", "task031_analogy_solve"]


def broken_copy(collection: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "collection"
    shutil.copytree(collection, copy)
    return copy


def plan_errors(smoke_config: Path, *overrides: str) -> str:
    with pytest.raises((ConfigError, DataError)) as error:
        plan_study(load_study_config(smoke_config, list(overrides)))
    return str(error.value)


def test_a_task_listed_twice_is_refused_by_plan_naming_file_and_name(smoke_config, synth_collection, tmp_path) -> None:
    root = broken_copy(synth_collection, tmp_path)
    tests = root / "splits/default/test_tasks.txt"
    tests.write_text(tests.read_text() + UNSEEN[0] + "\n")
    message = plan_errors(smoke_config, f"collection={root}")
    assert f"{tests}:" in message and f"task {UNSEEN[0]!r} is listed twice" in message


def test_plan_applies_every_check_of_data_validate_one_line_each(smoke_config, synth_collection, tmp_path) -> None:
    root = broken_copy(synth_collection, tmp_path)
    seen = (root / "splits/default/train_tasks.txt").read_text().split()
    (root / "splits/default/train_tasks.txt").write_text("\n".join([*seen, UNSEEN[1], "task999_gone"]) + "\n")
    (root / "tasks" / f"{UNSEEN[0]}.json").write_text('{"Definition": "d"}')
    (root / "tasks" / f"{seen[0]}.json").write_text("{")
    result = subprocess.run(
        [QUICKSTUDY, "study", "plan", str(smoke_config), "--set", f"collection={root}"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and "problem(s)" in lines[0]
    found = "\n".join(lines[1:])
    assert "task 'task999_gone' is listed but missing" in found
    assert f"task {UNSEEN[1]!r} is listed as both seen (train) and unseen (test)" in found


def test_broken_task_files_of_the_study_are_listed_together(smoke_config, synth_collection, tmp_path) -> None:
    root = broken_copy(synth_collection, tmp_path)
    seen = (root / "splits/default/train_tasks.txt").read_text().split()
    (root / "tasks" / f"{UNSEEN[0]}.json").write_text('{"Definition": "d"}')
    (root / "tasks" / f"{seen[0]}.json").write_text("{")
    (root / "tasks" / f"{UNSEEN[1]}.json").write_text('{"Definition": "d", "Instances": []}')
    lines = plan_errors(smoke_config, f"collection={root}").splitlines()
    assert lines[0] == f"{root}: 3 problem(s) (`quickstudy data validate` checks the whole collection)"
    assert sorted(lines[1:]) == sorted([
        f"{root / 'tasks' / seen[0]}.json: invalid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
        f"{root / 'tasks' / UNSEEN[0]}.json: field 'Instances' is missing",
        f"{root / 'tasks' / UNSEEN[1]}.json: no instances to test on",
    ])  # fmt: skip


def test_held_out_counts_must_leave_a_train_pool(smoke_config) -> None:
    message = plan_errors(smoke_config, "splits.n_test=100000")
    assert message.startswith("splits: n_test 100000 + n_validation 2 leave no train instance")


def test_duplicate_seeds_and_booleans_as_numbers_are_refused(smoke_config) -> None:
    assert "seeds: seeds must be unique; repeated: 1" in plan_errors(smoke_config, "seeds=[1, 1]")
    assert "seeds.0: Input should be a valid integer" in plan_errors(smoke_config, "seeds=[true]")
    assert "training.batch_size: a boolean" in plan_errors(smoke_config, "training.batch_size=true")
    assert "splits.n_test: a boolean" in plan_errors(smoke_config, "splits.n_test=true")
    assert "sample size '0'" in plan_errors(smoke_config, "arms.stl_proposed.sizes=[0]")


def test_an_empty_set_value_is_an_error(smoke_config) -> None:
    assert plan_errors(smoke_config, "collection=") == "--set 'collection=': no value after '='"


def test_config_files_of_the_wrong_kind_or_shape_are_one_line(smoke_config, tmp_path) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(smoke_config.read_bytes().replace(b"name: smoke", b"name: sm\xf6ke"))
    raw = yaml.safe_load(smoke_config.read_text())
    as_list = tmp_path / "list.yaml"
    as_list.write_text(yaml.safe_dump({**raw, "models": [raw["models"]["base"]]}))
    expected = {
        latin1: f"error: {latin1}: not UTF-8 text (byte",
        tmp_path: f"error: {tmp_path}: is a folder, not a config file",
        as_list: f"error: {as_list}: models: Input should be a valid dictionary",
    }
    for path, start in expected.items():
        result = subprocess.run([QUICKSTUDY, "study", "plan", str(path)], capture_output=True, text=True)
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert result.stderr.startswith(start) and len(result.stderr.strip().splitlines()) == 1, result.stderr
