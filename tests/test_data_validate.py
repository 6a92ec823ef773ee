"""Broken collections: the loader stops at the first problem with one line naming
file and field; `validate` (and `quickstudy data validate`) reports every problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quickstudy.data.collection import Collection
from quickstudy.data.validate import validate_collection
from quickstudy.errors import DataError

GOOD = {
    "Definition": ["Copy the input."],
    "Categories": ["Copying"],
    "Instances": [{"id": "g-0", "input": "a", "output": ["a"]}],
}


def make_collection(root: Path, tasks: dict[str, object | str], train: list[str] = (), test: list[str] = ()) -> Path:
    """Task files (a str payload is written verbatim) and a default split."""
    (root / "tasks").mkdir(parents=True)
    for name, payload in tasks.items():
        text = payload if isinstance(payload, str) else json.dumps(payload)
        (root / "tasks" / f"{name}.json").write_text(text, encoding="utf-8")
    split = root / "splits" / "default"
    split.mkdir(parents=True)
    (split / "train_tasks.txt").write_text("".join(f"{n}\n" for n in train))
    (split / "test_tasks.txt").write_text("".join(f"{n}\n" for n in test))
    return root


def with_instances(*instances: object) -> dict:
    return {"Definition": "d", "Instances": list(instances)}


BROKEN_TASKS = {
    "invalid_json": ('{"Definition": "d", "Instances": [', "invalid JSON"),
    "not_an_object": ("[1, 2]", "top level must be a JSON object"),
    "no_definition": ({"Instances": []}, "field 'Definition' is missing"),
    "bad_definition": ({"Definition": [], "Instances": []}, "field 'Definition' must be"),
    "no_instances": ({"Definition": "d"}, "field 'Instances' is missing"),
    "instances_not_list": ({"Definition": "d", "Instances": {}}, "field 'Instances' must be a list"),
    "instance_without_input": (with_instances({"id": "1", "output": ["o"]}), "Instances[0]: field 'input' is missing"),
    "instance_without_output": (
        with_instances({"id": "1", "input": "i"}),
        "Instances[0]: field 'output' has no reference",
    ),
    "instance_empty_references": (
        with_instances({"id": "1", "input": "i", "output": []}),
        "Instances[0]: field 'output' has no reference",
    ),
    "duplicate_ids": (
        with_instances({"id": "7", "input": "i", "output": ["o"]}, {"id": "7", "input": "j", "output": ["p"]}),
        "Instances[1]: duplicate instance id '7'",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_TASKS))
def test_each_broken_task_is_one_problem_naming_file_and_field(tmp_path: Path, case: str) -> None:
    payload, expected = BROKEN_TASKS[case]
    root = make_collection(tmp_path, {"good": GOOD, case: payload}, train=["good"], test=[case])
    path = str(root / "tasks" / f"{case}.json")

    problems = validate_collection(root).problems
    assert len(problems) == 1, problems
    assert problems[0].where.startswith(path) and expected in str(problems[0])

    with pytest.raises(DataError) as raised:
        Collection(root).task(case)
    message = str(raised.value)
    assert message.startswith(path) and expected in message and "\n" not in message
    assert Collection(root).task("good").instances[0].id == "g-0"


def test_split_listing_a_missing_task(tmp_path: Path) -> None:
    root = make_collection(tmp_path, {"good": GOOD}, train=["good"], test=["ghost"])
    problems = validate_collection(root).problems
    assert [str(p) for p in problems] == [
        f"{root / 'splits/default/test_tasks.txt'}: task 'ghost' is listed but missing from {root / 'tasks'}"
    ]


def test_split_with_path_traversal_names_file_and_line(tmp_path: Path) -> None:
    root = make_collection(tmp_path, {"good": GOOD}, train=["good", "../good"], test=["good_too/../../etc"])
    problems = [str(p) for p in validate_collection(root).problems]
    assert problems == [
        f"{root / 'splits/default/train_tasks.txt'}:2: task name '../good' is not a plain file name",
        f"{root / 'splits/default/test_tasks.txt'}:1: task name 'good_too/../../etc' is not a plain file name",
    ]
    with pytest.raises(DataError, match=r"train_tasks\.txt:2: task name '\.\./good'"):
        Collection(root).split("default")


def test_task_both_seen_and_unseen_is_a_problem(tmp_path: Path) -> None:
    root = make_collection(tmp_path, {"good": GOOD}, train=["good"], test=["good"])
    assert [p.message for p in validate_collection(root).problems] == [
        "task 'good' is listed as both seen (train) and unseen (test)"
    ]


def test_validate_reports_every_problem_in_every_file(tmp_path: Path) -> None:
    many_bad = with_instances(
        {"id": "1", "input": "i", "output": ["o"]},
        {"id": "2", "output": ["o"]},
        "not an object",
        {"id": "1", "input": "k", "output": ["o"]},
        {"id": "5", "input": "k", "output": [3]},
    )
    many_bad.pop("Definition")
    root = make_collection(
        tmp_path,
        {"good": GOOD, "many_bad": many_bad, "broken": "{", "also_bad": {"Definition": "d"}},
        train=["good", "missing_one"],
        test=["many_bad", "../escape"],
    )
    report = validate_collection(root)
    lines = [str(p) for p in report.problems]
    assert report.tasks_checked == 4 and report.splits_checked == ("default",)
    assert len(lines) == 9, lines
    many = str(root / "tasks" / "many_bad.json")
    assert f"{many}: field 'Definition' is missing" in lines
    assert f"{many}: Instances[1]: field 'input' is missing or not a string" in lines
    assert f"{many}: Instances[2]: must be an object" in lines
    assert f"{many}: Instances[3]: duplicate instance id '1'" in lines
    assert f"{many}: Instances[4]: field 'output' has no reference" in lines
    assert any(line.startswith(str(root / "tasks" / "broken.json")) and "invalid JSON" in line for line in lines)
    assert f"{root / 'tasks' / 'also_bad.json'}: field 'Instances' is missing" in lines
    assert any("'missing_one' is listed but missing" in line for line in lines)
    assert any("'../escape' is not a plain file name" in line for line in lines)


@pytest.mark.superni
def test_every_file_of_the_real_sample_is_valid(sample_dir: Path) -> None:
    report = validate_collection(sample_dir)
    assert report.problems == []
    assert report.tasks_checked == len(list((sample_dir / "tasks").glob("*.json"))) == 24


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "quickstudy.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_validate_broken_collection_lists_problems_and_exits_non_zero(tmp_path: Path) -> None:
    root = make_collection(
        tmp_path,
        {
            "good": GOOD,
            "dup": with_instances(
                {"id": "1", "input": "i", "output": ["o"]}, {"id": "1", "input": "j", "output": ["o"]}
            ),
        },
        train=["good"],
        test=["dup", "[/odd]"],
    )
    result = run_cli("data", "validate", str(root))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"{root / 'tasks' / 'dup.json'}: Instances[1]: duplicate instance id '1'"
    assert lines[1] == f"{root / 'splits/default/test_tasks.txt'}:2: task name '[/odd]' is not a plain file name"
    assert lines[2].startswith("error: ") and "2 problem(s)" in lines[2] and len(lines) == 3


def test_cli_stats_on_broken_collection_is_one_line_without_traceback(tmp_path: Path) -> None:
    root = make_collection(tmp_path, {"good": GOOD, "bad": {"Definition": "d"}}, train=["good"], test=["bad"])
    result = run_cli("data", "stats", str(root), "--json")
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.strip() == f"error: {root / 'tasks' / 'bad.json'}: field 'Instances' is missing"


@pytest.mark.superni
def test_cli_validate_real_sample_passes(sample_dir: Path) -> None:
    result = run_cli("data", "validate", str(sample_dir))
    assert result.returncode == 0, result.stderr
    assert "24 task files" in result.stdout and "no problems" in result.stdout


# --- issue 17: a plan is a set; links, FIFOs and odd bytes are refused, never followed or read


def test_a_task_listed_twice_is_a_problem_naming_file_line_and_name(tmp_path: Path) -> None:
    root = make_collection(tmp_path, {"a": GOOD, "b": GOOD}, train=["a"], test=["b", "b"])
    report = validate_collection(root)
    assert [str(p) for p in report.problems] == [
        f"{root / 'splits/default/test_tasks.txt'}:2: task 'b' is listed twice (first on line 1)"
    ]
    with pytest.raises(DataError, match=r"test_tasks.txt:2: task 'b' is listed twice"):
        Collection(root).split("default")


def test_cli_stats_refuses_a_task_listed_twice(tmp_path: Path) -> None:
    root = make_collection(tmp_path, {"a": GOOD, "b": GOOD}, train=["a"], test=["b", "b"])
    result = run_cli("data", "stats", str(root), "--json")
    assert result.returncode != 0 and result.stdout == ""
    assert (
        result.stderr.strip()
        == f"error: {root / 'splits/default/test_tasks.txt'}:2: task 'b' is listed twice (first on line 1)"
    )


def test_a_link_out_of_the_collection_is_refused_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(GOOD), encoding="utf-8")
    root = make_collection(tmp_path / "c", {"a": GOOD}, train=["a"], test=["b"])
    (root / "tasks" / "b.json").symlink_to(outside)
    (root / "tasks" / "inner.json").symlink_to(root / "tasks" / "a.json")  # inside: fine
    problems = [str(p) for p in validate_collection(root).problems]
    assert problems == [f"{root / 'tasks/b.json'}: is a link to {outside}, outside the collection"]
    with pytest.raises(DataError, match="outside the collection"):
        Collection(root).task("b")
    assert Collection(root).task("inner").instances[0].id == "g-0"


def test_a_fifo_task_file_is_refused_without_hanging(tmp_path: Path) -> None:
    root = make_collection(tmp_path, {"a": GOOD}, train=["a"], test=["x"])
    os.mkfifo(root / "tasks" / "x.json")
    result = run_cli("data", "validate", str(root))  # timeout=120 in run_cli: a hang fails the test
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"{root / 'tasks/x.json'}: is not a regular file" in result.stderr.splitlines()


def test_a_split_file_that_is_not_utf8_is_one_problem(tmp_path: Path) -> None:
    root = make_collection(tmp_path, {"a": GOOD}, train=["a"])
    (root / "splits/default/test_tasks.txt").write_bytes(b"a\xff\xfe\n")
    result = run_cli("data", "stats", str(root), "--json")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {root / 'splits/default/test_tasks.txt'}: not UTF-8 text (byte 1)"


def test_task_file_with_huge_numbers_or_deep_nesting_is_one_problem(tmp_path: Path) -> None:
    root = make_collection(
        tmp_path, {"big": '{"Definition": "d", "Instances": [' + "9" * 5000 + "]}", "deep": "[" * 100_000}
    )
    problems = [str(p) for p in validate_collection(root).problems]
    assert len(problems) == 2 and all("invalid JSON" in p for p in problems)
