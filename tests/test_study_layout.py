"""The run-directory contract: the plan writes what a run means, the report reads it (never names)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from quickstudy.errors import StudyError
from quickstudy.report.render import build_report
from quickstudy.report.results import collect_study
from quickstudy.study.config import load_study_config
from quickstudy.study.layout import SETTINGS, RunKind, RunSpec, Setting, read_run_spec, run_spec_from_json
from quickstudy.study.plan import plan_study
from quickstudy.study.runner import run_study

# A no-instruction encoding named anything, and a pre-finetuned role named anything.
CUSTOM = [
    "models.warmed={prefinetune: {from: base, encoding: input_only, per_task: 4, seed: 1}}",
    "arms.stl_baseline1.start=warmed",
    "arms.stl_baseline1.encoding={name: bare, input_only: true}",
    "arms.stl_baseline1.name=arm_b",
    "arms.stl_baseline3.name=arm_c",
]


def write_done_evaluations(study_dir: Path, runs: list[RunSpec]) -> None:
    """Each evaluate run as done, one scored prediction per task (no model needed)."""
    (study_dir / "runs").mkdir(parents=True)
    for run in runs:
        folder = study_dir / "runs" / run.id
        folder.mkdir()
        (folder / "spec.json").write_text(json.dumps(run.to_json()))
        if run.kind != RunKind.EVALUATE:
            continue
        lines = [
            {
                "id": f"{task}-0",
                "Task": task,
                "Instance": {"id": f"{task}-0"},
                "scores": dict.fromkeys(("rougeL", "exact_match", "rouge1"), 50.0),
            }
            for task in run.tasks
        ]
        (folder / "predictions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        (folder / "status.json").write_text(json.dumps({"state": "done"}))


def test_custom_encoding_and_prefinetuned_role_are_reported_by_meaning(smoke_config: Path, tmp_path: Path) -> None:
    plan = plan_study(load_study_config(smoke_config, CUSTOM))
    (warmed,) = [run for run in plan.runs if run.kind == RunKind.PREFINETUNE]
    assert warmed.role == "warmed" and warmed.start_role == "base" and warmed.instructions is False
    arm_b = [run for run in plan.runs if run.arm == "arm_b"]
    assert arm_b and all(
        r.instructions is False and r.start_is_prefinetuned and r.start_role == "warmed" for r in arm_b
    )
    assert all(r.encoding == "bare" and not r.lora for r in arm_b)

    write_done_evaluations(tmp_path / "study", list(plan.runs))
    arms = {name: arm for (_, name), arm in collect_study(tmp_path / "study").arms.items()}
    assert (arms["arm_b"].role, arms["arm_b"].from_prefinetuned_base, arms["arm_b"].start) == (
        "baseline",
        True,
        "warmed",
    )
    assert (arms["arm_c"].role, arms["arm_c"].from_prefinetuned_base) == ("baseline", False)
    assert (arms["stl_proposed"].role, arms["zero_shot"].role) == ("proposed", "zero_shot")


def test_a_spec_json_from_an_older_plan_still_loads(tmp_path: Path) -> None:
    """Before the meaning fields, spec.json had `start` and the encoding's name; the reader recovers them."""
    old = {
        "id": "ev-0123456789abcdef", "kind": "evaluate", "arm": "stl_baseline1", "setting": "stl", "task": "t1",
        "size": "8", "seed": 1, "start": "base_prefinetuned", "encoding": "input_only", "tasks": ["t1"],
        "model": {"run": "ft-0123456789abcdef"}, "depends_on": ["ft-0123456789abcdef"], "training": {"seed": 1},
        "encoding_options": {"add_task_definition": False, "num_pos_examples": 0, "num_neg_examples": 0,
                             "add_explanation": False, "add_task_name": False, "input_only": True},
    }  # fmt: skip
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(old))
    spec = read_run_spec(path)
    assert (spec.start_role, spec.instructions, spec.start_is_prefinetuned) == ("base_prefinetuned", False, True)
    assert spec.kind == RunKind.EVALUATE and spec.depends_on == ("ft-0123456789abcdef",)
    proposed = run_spec_from_json(
        {**old, "start": "instruction_tuned", "encoding": "def_pos2", "encoding_options": {}}, "x"
    )
    assert (proposed.instructions, proposed.start_is_prefinetuned) == (True, False)


def test_a_malformed_spec_is_one_error_naming_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"id": "ev-1", "kind": "evaluate", "seed": "one", "instructions": True}))
    with pytest.raises(StudyError, match=r"spec\.json: seed: "):
        read_run_spec(path)
    path.write_text(json.dumps({"id": "ev-1", "kind": "evaluate", "instructions": True, "sede": 1}))
    with pytest.raises(StudyError, match=r"spec\.json: sede: unknown key"):
        read_run_spec(path)


def in_pairs(tasks: list[str]) -> list[list[str]]:
    return [list(tasks[i : i + 2]) for i in range(0, len(tasks), 2)]


def test_a_new_arm_setting_is_one_table_entry_planned_run_and_reported(
    smoke_config: Path, tmp_path: Path, monkeypatch
) -> None:
    """Adding an arm setting: an entry in layout.SETTINGS with its expansion function, nothing else."""
    monkeypatch.setitem(SETTINGS, "pairs", Setting("pairs", "PAIRS", "PAIRS: a model per two tasks", 1, True, in_pairs))
    raw = yaml.safe_load(smoke_config.read_text())
    raw["arms"] = [
        {"name": "paired", "start": "instruction_tuned", "encoding": "def_pos2", "setting": "pairs", "sizes": [4]}
    ]
    path = tmp_path / "pairs.yaml"
    path.write_text(yaml.safe_dump(raw))
    study = load_study_config(path)

    plan = plan_study(study)
    (finetune,) = [run for run in plan.runs if run.kind == RunKind.FINETUNE]
    assert finetune.setting == "pairs" and list(finetune.tasks) == list(plan.unseen_tasks)[:2]
    assert run_study(study, tmp_path / "study").complete

    files = build_report(tmp_path / "study", n_boot=50)
    rows = list(csv.DictReader(files.csv.open()))
    assert {(row["arm"], row["setting"], row["size"]) for row in rows} == {("paired", "pairs", "4")}
    assert len(rows) == len(finetune.tasks)
    assert "### PAIRS" in files.markdown.read_text()


def test_run_file_names_and_setting_names_are_written_only_in_their_owner() -> None:
    """No string literal outside study/layout.py names a run file or a setting (the stages'
    own output files are named once, in evaluate/predictions.py)."""
    import ast

    import quickstudy

    owners = {"spec.json": "study/layout.py", "status.json": "study/layout.py", "plan.json": "study/layout.py",
              "study.yaml": "study/layout.py", "log.txt": "study/layout.py",
              "predictions.jsonl": "evaluate/predictions.py", "metrics.json": "evaluate/predictions.py"}  # fmt: skip
    settings = {"stl", "mtl", "zero_shot"}
    package = Path(quickstudy.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        module = path.relative_to(package).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            if node.value in owners and owners[node.value] != module:
                found.append(f"{module}:{node.lineno}: {node.value!r}")
            if node.value in settings and module != "study/layout.py":
                found.append(f"{module}:{node.lineno}: {node.value!r}")
    assert not found
