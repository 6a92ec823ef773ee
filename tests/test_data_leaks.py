"""Leakage audit across tasks (`quickstudy data leaks`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quickstudy.data.collection import Collection
from quickstudy.data.leaks import SEEN, UNSEEN_TRAIN, leak_audit, without_excluded


def write_task(root: Path, name: str, inputs: list[str]) -> None:
    task = {
        "Definition": [f"Copy the input of {name}."],
        "Categories": ["Copying"],
        "Instances": [{"id": f"{name}-{i}", "input": text, "output": [text.upper()]} for i, text in enumerate(inputs)],
    }
    (root / "tasks").mkdir(parents=True, exist_ok=True)
    (root / "tasks" / f"{name}.json").write_text(json.dumps(task))


def leaky_collection(root: Path) -> Path:
    """Unseen A and B, seen C: 5 of A's test inputs sit in B's train pool (one of them
    twice), 3 in C, 1 of A's validation inputs in C, and A repeats 2 of its own test inputs."""
    a = [f"a input {i}" for i in range(140)]
    a[120], a[121] = "A INPUT 3", "  a input   4 "  # own train pool repeats test inputs (normalised)
    b = [f"b input {i}" for i in range(150)]
    for k, index in enumerate((10, 20, 30, 40, 50)):  # test inputs of A, in B's train pool (index >= 110)
        b[115 + k] = a[index]
    b[130] = a[10].upper()  # a second copy of one of them
    b[5] = a[60]  # in B's test part: B never trains on it, so not a leak
    c = [f"c input {i}" for i in range(40)]
    c[1], c[2], c[3], c[4] = a[70], a[80], a[90], a[105]  # three test inputs and one validation input of A
    write_task(root, "A", a)
    write_task(root, "B", b)
    write_task(root, "C", c)
    split = root / "splits" / "default"
    split.mkdir(parents=True)
    (split / "test_tasks.txt").write_text("A\nB\n")
    (split / "train_tasks.txt").write_text("C\n")
    return root


def test_audit_counts_each_pair_of_tasks(tmp_path):
    collection = Collection(leaky_collection(tmp_path / "leaky"))
    audit = leak_audit(collection, ["C"], ["A", "B"])
    assert audit.own_train_removed == {"A": 2, "B": 0}
    pairs = {
        (p.unseen_task, p.other_task, p.other_role): (p.test, p.validation, p.other_instances) for p in audit.pairs()
    }
    assert pairs == {("A", "B", UNSEEN_TRAIN): (5, 0, 6), ("A", "C", SEEN): (3, 1, 4)}
    excluded = audit.training_exclusions()
    assert excluded == {
        "B": frozenset({"B-115", "B-116", "B-117", "B-118", "B-119", "B-130"}),
        "C": frozenset({"C-1", "C-2", "C-3", "C-4"}),
    }
    assert [i.id for i in without_excluded(collection.task("C").instances, excluded["C"])][:3] == ["C-0", "C-5", "C-6"]


def test_a_task_both_seen_and_unseen_leaks_all_its_held_out_inputs(tmp_path):
    collection = Collection(leaky_collection(tmp_path / "leaky"))
    pairs = {(p.unseen_task, p.other_task): p for p in leak_audit(collection, ["A"], ["A"]).pairs()}
    assert (pairs["A", "A"].test, pairs["A", "A"].validation) == (100, 10)


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_reports_the_counts(quickstudy, tmp_path, as_json):
    root = leaky_collection(tmp_path / "leaky")
    code, stdout, stderr = quickstudy("data", "leaks", str(root), *(["--json"] if as_json else []))
    assert code == 0, stderr
    if as_json:
        printed = json.loads(stdout)
        assert [(p["unseen_task"], p["other_task"], p["test"], p["validation"]) for p in printed["pairs"]] == [
            ("A", "B", 5, 0),
            ("A", "C", 3, 1),
        ]
        assert len(printed["leaks"]) == 9 and printed["own_train_removed"] == {"A": 2, "B": 0}
    else:
        assert "2 train instance(s) repeating" in stdout
        assert "unseen train pool" in stdout and "seen task" in stdout


@pytest.mark.superni
def test_clean_collection_has_no_leaks(quickstudy, sample_dir):
    code, stdout, stderr = quickstudy("data", "leaks", str(sample_dir), "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["pairs"] == []
