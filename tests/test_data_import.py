"""`quickstudy data import`: your own rows + an instruction paragraph -> a SuperNI collection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

from quickstudy.data.collection import Collection
from quickstudy.data.validate import validate_collection

ROWS = [{"input": f"sentence number {i}", "output": "yes" if i % 2 else "no"} for i in range(12)]
DEFINITION = "Answer yes if the sentence number is odd, otherwise no."


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The installed command as a subprocess, so a traceback would show."""
    return subprocess.run(
        [sys.executable, "-m", "quickstudy.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def written_sources(folder: Path) -> dict[str, str]:
    """The same rows as each kind of source the importer reads."""
    folder.mkdir()
    dataset = datasets.Dataset.from_list(ROWS)
    dataset.to_parquet(str(folder / "rows.parquet"))
    dataset.save_to_disk(str(folder / "saved"))
    (folder / "rows.csv").write_text("input,output\n" + "".join(f"{r['input']},{r['output']}\n" for r in ROWS))
    (folder / "rows.tsv").write_text("input\toutput\n" + "".join(f"{r['input']}\t{r['output']}\n" for r in ROWS))
    return {
        "jsonl": str(write_jsonl(folder / "rows.jsonl", ROWS)),
        "csv": str(folder / "rows.csv"),
        "tsv": str(folder / "rows.tsv"),
        "parquet": str(folder / "rows.parquet"),
        "save_to_disk": str(folder / "saved"),
    }


def test_every_source_kind_imports_into_a_valid_collection(quickstudy, tmp_path):
    sources = written_sources(tmp_path / "sources")
    out = tmp_path / "collection"
    for kind, source in sources.items():
        code, stdout, stderr = quickstudy(
            "data", "import", source, "--out", str(out), "--name", f"task_{kind}", "--definition", DEFINITION,
            "--category", "Parity", "--examples", "2",
        )  # fmt: skip
        assert code == 0, stderr
        assert f"task task_{kind} (unseen): 10 instances, 2 examples" in stdout
    assert validate_collection(out).problems == []
    collection = Collection(out)
    assert list(collection.split("default").test) == [f"task_{kind}" for kind in sources]
    assert collection.split("default").train == ()
    for kind in sources:
        task = collection.task(f"task_{kind}")
        assert task.definition == DEFINITION and task.categories == ["Parity"]
        assert [(e.input, e.output) for e in task.positive_examples] == [
            ("sentence number 0", "no"),
            ("sentence number 1", "yes"),
        ]
        assert [(i.id, i.input, i.references) for i in task.instances] == [
            (f"task_{kind}-{n + 1}", r["input"], (r["output"],)) for n, r in enumerate(ROWS) if n >= 2
        ]


def test_bad_rows_are_named_and_nothing_is_written_unless_skipped(tmp_path):
    rows = [dict(row) for row in ROWS]
    del rows[2]["output"]  # row 3: missing output
    rows[5]["output"] = ""  # row 6: empty output
    rows[8]["input"] = 7  # row 9: input not a string
    source = write_jsonl(tmp_path / "bad.jsonl", rows)
    out = tmp_path / "collection"
    refused = cli("data", "import", str(source), "--out", str(out), "--definition", DEFINITION)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert "bad.jsonl: 3 bad row(s), nothing written" in line
    assert (
        "row 3: field 'output'" in line and "row 6: field 'output'" in line and "row 9: field 'input' is a int" in line
    )
    assert not out.exists()
    skipped = cli("data", "import", str(source), "--out", str(out), "--definition", DEFINITION, "--skip-bad")
    assert skipped.returncode == 0, skipped.stderr
    assert "9 instances, 0 examples, 3 bad rows skipped" in skipped.stdout
    ids = [i.id for i in Collection(out).task("bad").instances]
    assert ids == [f"bad-{n}" for n in range(1, 13) if n not in (3, 6, 9)]


def test_existing_task_needs_replace_and_seen_moves_between_split_lists(quickstudy, tmp_path):
    source = str(write_jsonl(tmp_path / "mine.jsonl", ROWS))
    out = tmp_path / "collection"
    assert quickstudy("data", "import", source, "--out", str(out), "--definition", DEFINITION)[0] == 0
    test_list = out / "splits" / "default" / "test_tasks.txt"
    test_list.write_text("# my unseen tasks\n" + test_list.read_text())
    again = cli("data", "import", source, "--out", str(out), "--definition", "changed")
    assert again.returncode == 2 and "mine.json: task 'mine' already exists; pass --replace" in again.stderr
    assert Collection(out).task("mine").definition == DEFINITION
    code, _, stderr = quickstudy(
        "data", "import", source, "--out", str(out), "--definition", "x", "--seen", "--replace"
    )
    assert code == 0, stderr
    split = Collection(out).split("default")
    assert (split.train, split.test) == (("mine",), ())
    assert test_list.read_text() == "# my unseen tasks\n"  # other lines kept


def test_task_config_file_imports_many_tasks(quickstudy, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", ROWS)
    write_jsonl(tmp_path / "b.jsonl", [{"text": r["input"], "label": [r["output"], r["output"].upper()]} for r in ROWS])
    (tmp_path / "b.txt").write_text(DEFINITION + "\n")
    config = tmp_path / "tasks.yaml"
    config.write_text(
        "- {source: a.jsonl, definition: Say yes or no., category: Parity}\n"
        "- {source: b.jsonl, name: upper, definition: '@b.txt', input_field: text, output_field: label, seen: true}\n"
    )
    out = tmp_path / "collection"
    code, stdout, stderr = quickstudy("data", "import", str(config), "--out", str(out))
    assert code == 0, stderr
    split = Collection(out).split("default")
    assert (split.train, split.test) == (("upper",), ("a",))
    upper = Collection(out).task("upper")
    assert upper.definition == DEFINITION and upper.instances[1].references == ("yes", "YES")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {source: a.jsonl, definition: x, colour: red}\n")
    result = cli("data", "import", str(bad), "--out", str(out))
    assert (
        result.returncode == 2 and result.stderr.strip() == f"error: {bad}: [0].colour: Extra inputs are not permitted"
    )


def test_class_labels_become_their_names(quickstudy, tmp_path):
    features = datasets.Features(
        {"input": datasets.Value("string"), "output": datasets.ClassLabel(names=["no", "yes"])}
    )
    rows = [{"input": r["input"], "output": int(r["output"] == "yes")} for r in ROWS]
    saved = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows, features=features)})
    saved.save_to_disk(str(tmp_path / "saved"))
    out = tmp_path / "collection"
    code, _, stderr = quickstudy("data", "import", f"{tmp_path / 'saved'}:train", "--out", str(out), "--name", "labels", "--definition", DEFINITION)  # fmt: skip
    assert code == 0, stderr
    assert [i.references for i in Collection(out).task("labels").instances][:2] == [("no",), ("yes",)]


def test_hub_path_reads_a_local_dataset_and_names_an_unreachable_one(tmp_path):
    """`hf:NAME` goes through datasets.load_dataset, which also takes a local dataset
    folder: the real hub code path, without a download."""
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", ROWS)
    write_jsonl(folder / "test.jsonl", ROWS[:3])
    out = tmp_path / "collection"
    env = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = cli("data", "import", f"hf:{folder}::test", "--out", str(out), "--definition", DEFINITION, env=env)
    assert result.returncode == 0, result.stderr
    assert "task my_dataset (unseen): 3 instances" in result.stdout
    missing = cli("data", "import", "hf:no-such-user/no-such-dataset", "--out", str(out), "--definition", "x", env=env)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    [line] = missing.stderr.strip().splitlines()
    assert line.startswith("error: hf:no-such-user/no-such-dataset: cannot be read (")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["rows.jsonl"], "--definition is required"),
        (["rows.txt", "--definition", "x"], "rows.txt: unknown source type"),
        (["missing.csv", "--definition", "x"], "missing.csv: file not found"),
        (["rows.jsonl", "--definition", "x", "--name", "a/b"], "--name: 'a/b' is not a plain file name"),
        (["rows.jsonl", "--definition", "x", "--input-field", "text"], "field 'text' is missing"),
    ],
)
def test_bad_arguments_are_one_line(tmp_path, args, expected):
    write_jsonl(tmp_path / "rows.jsonl", ROWS)
    (tmp_path / "rows.txt").write_text("x")
    args = [str(tmp_path / a) if a.startswith(("rows", "missing")) else a for a in args]
    result = cli("data", "import", *args, "--out", str(tmp_path / "collection"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr
    assert not (tmp_path / "collection").exists()
