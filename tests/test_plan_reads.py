"""Planning parses each task file once (`study/survey.py`), however many steps use it."""

from __future__ import annotations

import builtins
import json
from collections import Counter
from pathlib import Path

import pytest

import quickstudy.data.collection as collection_module
from quickstudy.errors import DataError
from quickstudy.study import plan as plan_module
from quickstudy.study.config import load_study_config
from quickstudy.study.plan import StudyPlan, plan_study

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"


def write_task(root: Path, name: str, inputs: list[str]) -> None:
    task = {
        "Definition": [f"Copy the input of {name}."],
        "Categories": ["Copying"],
        "Instances": [{"id": f"{name}-{i}", "input": text, "output": [text.upper()]} for i, text in enumerate(inputs)],
    }
    (root / "tasks" / f"{name}.json").write_text(json.dumps(task))


@pytest.fixture(scope="module")
def leaky(tmp_path_factory) -> Path:
    """Unseen A and B, each repeating a held-out input of the other in its train pool (so a
    pool read before the other task's held-out inputs must be matched too); seen C and D,
    C repeating held-out inputs of both."""
    root = tmp_path_factory.mktemp("leaky")
    (root / "tasks").mkdir()
    a, b = [f"a input {i}" for i in range(30)], [f"b input {i}" for i in range(30)]
    a[20], b[21] = b[1], a[2]  # held out: the first 10 (n_test 8 + n_validation 2)
    write_task(root, "A", a)
    write_task(root, "B", b)
    write_task(root, "C", [f"c input {i}" for i in range(20)] + [a[3], b[4].upper()])
    write_task(root, "D", [f"d input {i}" for i in range(20)])
    split = root / "splits" / "default"
    split.mkdir(parents=True)
    (split / "test_tasks.txt").write_text("A\nB\n")
    (split / "train_tasks.txt").write_text("C\nD\n")
    return root


def counted_plan(root: Path, monkeypatch, overrides: list[str]) -> tuple[dict, Counter, Counter]:
    """(plan.json's content, parses per task file, reads of its bytes per task file)."""
    parses: Counter[str] = Counter()
    reads: Counter[str] = Counter()
    tasks = root / "tasks"
    real_parse, real_read, real_open = collection_module.task_from_json, Path.read_bytes, builtins.open

    def parse(raw, name, where, *args, **kwargs):
        parses[Path(where).name] += 1
        return real_parse(raw, name, where, *args, **kwargs)

    def read_bytes(path):
        if path.parent == tasks:
            reads[path.name] += 1
        return real_read(path)

    def opened(file, *args, **kwargs):
        if isinstance(file, (str, Path)) and Path(file).parent == tasks:
            reads[Path(file).name] += 1
        return real_open(file, *args, **kwargs)

    plan_module._cached_fingerprint.cache_clear()  # a hash from an earlier test is not a read
    monkeypatch.setattr(collection_module, "task_from_json", parse)
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(builtins, "open", opened)
    config = load_study_config(
        SMOKE,
        [f"collection={root}", "tasks.unseen.names=null", "tasks.seen.max_tasks=null", *overrides],
    )
    plan = plan_study(config).to_json()
    monkeypatch.undo()
    return plan, parses, reads


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["leakage=report"],
        ["tasks.unseen.categories=[Copying]", "tasks.seen.categories=[Copying]"],
        ["arms=[{name: a, start: base_prefinetuned, encoding: input_only, setting: mtl, sizes: [auto]}]"],
    ],
    ids=["remove", "report", "categories", "auto-sizes"],
)
def test_plan_parses_each_task_file_once(leaky, monkeypatch, overrides):
    plan, parses, reads = counted_plan(leaky, monkeypatch, overrides)
    pairs = {(pair["unseen_task"], pair["other_task"]) for pair in plan["leakage"]["pairs"]}
    assert pairs == {("A", "B"), ("B", "A"), ("A", "C"), ("B", "C")}  # the audit ran, both ways
    assert set(parses) == {"A.json", "B.json", "C.json", "D.json"}
    assert max(parses.values()) == 1, f"task files parsed more than once: {dict(parses)}"
    assert max(reads.values()) == 1, f"task files read more than once: {dict(reads)}"


def test_removed_instances_are_the_leaked_ones(leaky, monkeypatch):
    plan, _, _ = counted_plan(leaky, monkeypatch, [])
    assert plan["leakage"]["removed"] == {"A": 1, "B": 1, "C": 2}


def narrowing_collection(root: Path, extra: dict[str, str]) -> Path:
    """Unseen A, B (category Copying) and the `extra` files (name: content); seen C, D."""
    (root / "tasks").mkdir()
    for name in "ABCD":
        write_task(root, name, [f"{name} input {i}" for i in range(20)])
    for name, content in extra.items():
        (root / "tasks" / f"{name}.json").write_text(content)
    split = root / "splits" / "default"
    split.mkdir(parents=True)
    (split / "test_tasks.txt").write_text("\n".join(["A", "B", *extra]) + "\n")
    (split / "train_tasks.txt").write_text("C\nD\n")
    return root


def narrowed_plan(root: Path) -> StudyPlan:
    config = load_study_config(
        SMOKE, [f"collection={root}", "tasks.unseen.names=null", "tasks.unseen.categories=[Copying]"]
    )
    return plan_study(config)


def test_a_task_narrowing_excludes_is_not_checked(tmp_path):
    """An unseen task of another category with nothing to test on is left out, not an error."""
    other = {"Definition": ["d"], "Categories": ["Other"], "Instances": []}
    plan = narrowed_plan(narrowing_collection(tmp_path, {"E": json.dumps(other)}))
    assert plan.unseen_tasks == ("A", "B")
    assert len(plan.runs) == 20
    assert {task for run in plan.runs for task in run.tasks} == {"A", "B", "C", "D"}


def test_a_task_narrowing_cannot_parse_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"E\.json: invalid JSON"):
        narrowed_plan(narrowing_collection(tmp_path, {"E": "{"}))


def test_the_kept_tasks_problems_are_listed_together(tmp_path):
    """Narrowing keeps F and G (Copying); each of their problems is reported, one line each."""
    broken = {"Definition": ["d"], "Categories": ["Copying"], "Instances": [{"id": "x", "input": 3, "output": ["y"]}]}
    empty = {"Definition": ["d"], "Categories": ["Copying"], "Instances": []}
    root = narrowing_collection(tmp_path, {"F": json.dumps(broken), "G": json.dumps(empty)})
    with pytest.raises(DataError) as raised:
        narrowed_plan(root)
    lines = str(raised.value).splitlines()
    assert "3 problem(s)" in lines[0]
    assert [Path(line.split(":")[0]).name for line in lines[1:]] == ["F.json", "F.json", "G.json"]
    assert "Instances[0]: field 'input'" in lines[1]
    assert lines[2].endswith("F.json: no instances to test on")  # its one instance is broken
    assert lines[3].endswith("G.json: no instances to test on")
