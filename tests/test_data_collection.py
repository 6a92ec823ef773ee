"""Loading SuperNI task collections: every real sample file, tolerated layouts, split lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quickstudy.data.collection import Collection
from quickstudy.errors import DataError


def sample_task_files(sample_dir: Path) -> list[Path]:
    return sorted((sample_dir / "tasks").glob("*.json"))


@pytest.mark.superni
def test_every_sample_task_loads_as_its_raw_json_says(sample_dir: Path) -> None:
    collection = Collection(sample_dir)
    files = sample_task_files(sample_dir)
    assert len(files) == 24 and collection.task_names() == [p.stem for p in files]
    for path in files:
        raw = json.loads(path.read_text(encoding="utf-8"))
        task = collection.task(path.stem)
        definition = raw["Definition"][0] if isinstance(raw["Definition"], list) else raw["Definition"]
        assert task.name == path.stem
        assert task.definition == definition
        assert task.category == raw["Categories"][0]
        assert len(task.positive_examples) == len(raw["Positive Examples"])
        assert [e.output for e in task.negative_examples] == [
            e["output"][0] if isinstance(e["output"], list) else e["output"] for e in raw["Negative Examples"]
        ]
        assert len(task.instances) == len(raw["Instances"])
        for index, (instance, item) in enumerate(zip(task.instances, raw["Instances"])):
            assert instance.id == item.get("id", f"{path.stem}-{index}")
            assert instance.input == item["input"]
            assert list(instance.references) == item["output"]


@pytest.mark.superni
def test_sample_has_both_definition_layouts_and_missing_ids(sample_dir: Path) -> None:
    """The sample really exercises the tolerated layouts the loader claims to handle."""
    raws = [json.loads(p.read_text(encoding="utf-8")) for p in sample_task_files(sample_dir)]
    assert any(isinstance(r["Definition"], str) for r in raws)
    assert any(isinstance(r["Definition"], list) for r in raws)
    assert any("id" not in i for r in raws for i in r["Instances"])
    assert any("id" in i for r in raws for i in r["Instances"])


@pytest.mark.superni
def test_sample_split_lists_match_the_split_files(sample_dir: Path) -> None:
    split = Collection(sample_dir).split("default")
    folder = sample_dir / "splits" / "default"
    assert list(split.test) == (folder / "test_tasks.txt").read_text().split()
    assert list(split.train) == (folder / "train_tasks.txt").read_text().split()
    assert split.excluded == ()
    assert len(split.test) == 12 and len(split.train) == 12


def write_json(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload), encoding="utf-8")


def test_tolerated_layouts(tmp_path: Path) -> None:
    write_json(
        tmp_path / "t1.json",
        {
            "Definition": "Do it.",
            "Categories": ["Cat A", "Cat B"],
            "Domains": float("nan"),  # real files hold NaN where pandas wrote them
            "Positive Examples": [{"input": "x", "output": ["y", "z"]}],
            "Instances": [
                {"input": "a", "output": "single string"},
                {"id": "custom", "input": "b", "output": ["r1", "r2"], "extra": 1},
                {"input": "c", "output": ["r3"]},
            ],
            "Unknown Field": {"ignored": True},
        },
    )
    task = Collection(tmp_path).task("t1")
    assert task.category == "Cat A" and task.domains == []
    assert task.positive_examples[0].output == "y" and task.positive_examples[0].explanation is None
    assert [i.id for i in task.instances] == ["t1-0", "custom", "t1-2"]
    assert [i.references for i in task.instances] == [("single string",), ("r1", "r2"), ("r3",)]


def test_bare_folder_makes_every_task_unseen_and_none_seen(tmp_path: Path) -> None:
    for name in ("b_task", "a_task"):
        write_json(tmp_path / f"{name}.json", {"Definition": "d", "Instances": [{"input": "i", "output": ["o"]}]})
    collection = Collection(tmp_path)
    split = collection.split("default")
    assert (split.train, split.test) == ((), ("a_task", "b_task"))  # nothing to pre-finetune on
    assert collection.task("a_task").category == "unknown"


def test_split_listing_a_missing_task_names_the_split_file(tmp_path: Path) -> None:
    write_json(tmp_path / "tasks" / "present.json", {"Definition": "d", "Instances": []})
    split_dir = tmp_path / "splits" / "default"
    split_dir.mkdir(parents=True)
    (split_dir / "test_tasks.txt").write_text("present\nabsent\n")
    with pytest.raises(DataError, match=r"test_tasks\.txt: task 'absent' is listed but missing"):
        Collection(tmp_path).split("default")
    with pytest.raises(DataError, match="split 'other' not found"):
        Collection(tmp_path).split("other")


@pytest.mark.parametrize("name", ["../x", "sub/x", "..", ".hidden", "a b", ""])
def test_task_names_that_are_not_plain_file_names_are_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / "tasks").mkdir()
    with pytest.raises(DataError, match="not a plain file name"):
        Collection(tmp_path).task(name)


def test_missing_folder_and_missing_task(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="collection folder not found"):
        Collection(tmp_path / "nope")
    (tmp_path / "tasks").mkdir()
    with pytest.raises(DataError, match="task 'ghost' not found"):
        Collection(tmp_path).task("ghost")
