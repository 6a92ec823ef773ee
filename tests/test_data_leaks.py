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


# --- the study side: leakage: remove | report | refuse -------------------------------------


def study_config(root: Path, **extra):
    from quickstudy.study.config import validated_config

    raw = {
        "collection": str(root),
        "models": {
            "tuned": {"name_or_path": "tiny-t5"},
            "base": {"name_or_path": "tiny-t5", "init_seed": 2},
            "base_prefinetuned": {"prefinetune": {"from": "base", "per_task": 40}},
        },
        "arms": [
            {"name": "mtl", "start": "tuned", "encoding": "def", "setting": "mtl", "sizes": [10, "all"]},
            {
                "name": "stl_b1",
                "start": "base_prefinetuned",
                "encoding": "input_only",
                "setting": "stl",
                "sizes": ["all"],
            },
        ],
        **extra,
    }
    return validated_config(raw, where="test")


def selected_ids(spec) -> dict[str, set[str]]:
    """The instance ids a training run trains on, selected as study.execute selects them."""
    from quickstudy.data.sampling import nested_samples, parse_size, prefinetune_instances
    from quickstudy.data.splits import SplitConfig, task_split
    from quickstudy.study.execute import checked_tasks

    chosen = {}
    for task in checked_tasks(spec):
        if spec.kind == "prefinetune":
            chosen[task.name] = {i.id for i in prefinetune_instances(task, spec.per_task, spec.seed)}
        else:
            size = parse_size(spec.size)
            sample = nested_samples(task_split(task, SplitConfig(**spec.splits)), [size], spec.seed)[size.label]
            chosen[task.name] = {i.id for i in sample}
    return chosen


def test_remove_trains_on_none_of_the_leaked_instances(tmp_path):
    from quickstudy.study.plan import plan_study

    root = leaky_collection(tmp_path / "leaky")
    plan = plan_study(study_config(root))
    assert plan.leakage["held_out_found"] == 9 and plan.leakage["removed"] == {"B": 6, "C": 4}
    leaked = leak_audit(Collection(root), ["C"], ["A", "B"]).training_exclusions()
    trained = [run for run in plan.runs if run.kind != "evaluate"]
    assert {run.kind for run in trained} == {"prefinetune", "finetune"}
    for run in trained:
        for task, ids in selected_ids(run).items():
            assert not ids & leaked.get(task, frozenset()), (run.id, task)
    [prefinetune] = [run for run in plan.runs if run.kind == "prefinetune"]
    assert selected_ids(prefinetune)["C"] == {f"C-{i}" for i in range(40)} - leaked["C"]
    mtl = {run.size: selected_ids(run) for run in plan.runs if run.kind == "finetune" and run.arm == "mtl"}
    assert mtl["10"]["B"] < mtl["all"]["B"] and len(mtl["all"]["B"]) == 40 - 6  # nested, the pool minus leaks
    report = plan_study(study_config(root, leakage="report"))
    assert report.leakage["removed"] == {} and report.leakage["held_out_found"] == 9
    assert [run.excluded_instances for run in plan.runs if run.task == "A"] == [{}, {}]  # nothing of A left out
    assert all(not run.excluded_instances for run in report.runs)


def test_refuse_and_a_task_both_seen_and_unseen_are_config_errors(tmp_path):
    from quickstudy.errors import ConfigError, DataError
    from quickstudy.study.plan import plan_study

    root = leaky_collection(tmp_path / "leaky")
    with pytest.raises(ConfigError, match=r"leakage: refuse: 9 test/validation input\(s\).*A in B: 5; A in C: 4"):
        plan_study(study_config(root, leakage="refuse"))
    (root / "splits" / "default" / "train_tasks.txt").write_text("C\nA\n")
    with pytest.raises((ConfigError, DataError), match="'?A'?:? (is listed as )?both seen"):
        plan_study(study_config(root))
    both = plan_study(study_config(root, leakage="report"))
    assert {(p["unseen_task"], p["other_task"]) for p in both.leakage["pairs"]} >= {("A", "A")}


def test_bare_folder_has_no_seen_tasks(tmp_path):
    from quickstudy.errors import ConfigError
    from quickstudy.study.plan import plan_study

    root = leaky_collection(tmp_path / "leaky")
    bare = tmp_path / "bare"
    (root / "tasks").rename(bare)
    split = Collection(bare).split()
    assert (split.train, split.test) == ((), ("A", "B", "C"))
    with pytest.raises(ConfigError, match="models.base_prefinetuned.prefinetune: no seen tasks to pre-finetune on"):
        plan_study(study_config(bare))
    arms = [{"name": "mtl", "start": "tuned", "encoding": "def", "setting": "mtl", "sizes": ["all"]}]
    plan = plan_study(study_config(bare, arms=arms))
    assert plan.seen_tasks == () and {"A", "B"} <= set(plan.unseen_tasks)  # C (40 instances) has no train pool
    assert not [run for run in plan.runs if run.kind == "prefinetune"]


def test_plan_command_and_report_state_the_counts(quickstudy, tmp_path):
    import yaml

    root = leaky_collection(tmp_path / "leaky")
    config = {
        "collection": str(root),
        "splits": {"n_test": 3, "n_validation": 1},
        "models": {"tuned": {"name_or_path": "tiny-t5"}},
        "arms": [{"name": "zero_shot", "start": "tuned", "encoding": "def", "setting": "zero_shot"}],
        "generation": {"max_new_tokens": 2},
        "training": {"max_source_length": 32},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    b_copies = ["a input 10", "a input 20", "a input 30", "a input 40", "a input 50", "A INPUT 10"]
    write_task(root, "B", [f"b input {i}" for i in range(10)] + b_copies)
    write_task(root, "A", ["a input 10", "a input 20", "a input 30", "a input 40"] + [f"a {i}" for i in range(5)])
    code, stdout, stderr = quickstudy("study", "plan", str(tmp_path / "study.yaml"))
    assert code == 0, stderr
    assert (
        "leakage across tasks: 4 test/validation input(s) of unseen tasks occur in other tasks' training data (1 task pair(s))"
        in stdout
    )
    code, _, stderr = quickstudy("study", "run", str(tmp_path / "study.yaml"), "--out", str(tmp_path / "study"))
    assert code == 0, stderr
    assert json.loads((tmp_path / "study" / "plan.json").read_text())["leakage"]["removed"] == {"B": 5}
    from quickstudy.report.render import build_report

    files = build_report(tmp_path / "study", n_boot=50)
    assert "**Leakage across tasks**: 4 test/validation input(s)" in files.markdown.read_text()
    assert "training instance(s) of 1 task(s) removed before sampling (leakage: remove)" in files.markdown.read_text()
