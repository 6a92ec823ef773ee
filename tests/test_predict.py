"""`quickstudy predict`: any model, a collection's test instances, the study's metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

WORDS = "apple river stone cloud music garden pencil window rocket candle forest silver planet bridge tiger".split()
TRAIN = {"learning_rate": 1e-3, "max_steps": 3, "batch_size": 4, "max_source_length": 96, "max_target_length": 8}
TRAIN |= {"precision": "fp32", "checkpoint_every_steps": None, "progress_bar": False}
SPLITS = {"n_test": 10, "n_validation": 2}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    """Imported tasks: the word reversed and its first letter (unseen), first letter again (seen)."""
    from quickstudy.data.importing import TaskImport, imported_tasks, write_imported

    folder = tmp_path_factory.mktemp("predict")
    rows = [(w + str(i), w) for i in range(3) for w in WORDS]
    (folder / "reverse.jsonl").write_text("".join(json.dumps({"input": t, "output": w[::-1]}) + "\n" for t, w in rows))
    (folder / "first.jsonl").write_text("".join(json.dumps({"input": t, "output": w[0]}) + "\n" for t, w in rows))
    specs = [
        TaskImport(
            source=str(folder / "reverse.jsonl"), name="reverse", definition="Reverse the word.", category="Rev"
        ),
        TaskImport(source=str(folder / "first.jsonl"), name="first", definition="Its first letter.", examples=2),
        TaskImport(source=str(folder / "first.jsonl"), name="seen_first", definition="First letter.", seen=True),
    ]
    write_imported(folder / "collection", imported_tasks(specs))
    return folder / "collection"


def trained_model(folder: Path, collection: Path, lora: bool = False) -> Path:
    """A tiny T5 fine-tuned for a few steps by `quickstudy train` (MTL over both tasks)."""
    model = {"name_or_path": "tiny-t5", "tokenizer": "byte", "init_seed": 3}
    config = {
        "stage": "finetune",
        "model": model | ({"lora": {"r": 4, "alpha": 8}} if lora else {}),
        "data": {"collection": str(collection), "tasks": ["reverse", "first"], "size": "all", **SPLITS},
        "encoding": "def_pos2",
        "train": TRAIN,
        "output_dir": str(folder / "train"),
    }
    path = folder / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "quickstudy.cli", "train", str(path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return folder / "train"


@pytest.mark.slow
def test_predict_prints_the_metrics_of_the_equivalent_study(quickstudy, collection, tmp_path):
    trained = trained_model(tmp_path, collection)
    study = {
        "name": "scored",
        "collection": str(collection),
        "splits": SPLITS,
        "models": {"trained": {"name_or_path": str(trained / "model")}},
        "arms": [{"name": "zero_shot", "start": "trained", "encoding": "def_pos2", "setting": "zero_shot"}],
        "training": {"max_source_length": 96},
        "generation": {"max_new_tokens": 12},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    code, _, stderr = quickstudy("study", "run", str(tmp_path / "study.yaml"), "--out", str(tmp_path / "study"))
    assert code == 0, stderr
    [study_metrics] = [json.loads(p.read_text()) for p in (tmp_path / "study" / "runs").glob("*/metrics.json")]

    out = tmp_path / "pred" / "predictions.jsonl"
    args = [str(trained), str(collection), "--encoding", "def_pos2", "--size", "10", "--out", str(out)]
    args += ["--max-source-length", "96", "--max-new-tokens", "12"]
    code, stdout, stderr = quickstudy("predict", *args, "--json")
    assert code == 0, stderr
    printed = json.loads(stdout)
    assert printed["n"] == 20 and set(printed["per_task"]) == {"reverse", "first"}
    for key in ("overall", "per_task", "per_category"):
        assert printed[key] == study_metrics[key]
    written = [json.loads(line) for line in out.read_text().splitlines()]
    [study_predictions] = (tmp_path / "study" / "runs").glob("*/predictions.jsonl")
    assert written == [json.loads(line) for line in study_predictions.read_text().splitlines()]
    assert json.loads((out.parent / "predictions.metrics.json").read_text())["overall"] == printed["overall"]

    code, table, stderr = quickstudy("predict", *args, "--task", "first", "--limit", "3")
    assert code == 0, stderr
    assert "3 predictions, 1 tasks" in table and "overall" in table


@pytest.mark.slow
def test_predict_loads_a_lora_adapter_written_by_train(quickstudy, collection, tmp_path):
    trained = trained_model(tmp_path, collection, lora=True)
    assert json.loads((trained / "model" / "quickstudy_model.json").read_text())["lora_adapter"] is True
    out = tmp_path / "lora.jsonl"
    args = ["--encoding", "def", "--task", "reverse", "--limit", "4", "--max-new-tokens", "4", "--json"]
    code, stdout, stderr = quickstudy("predict", str(trained / "model"), str(collection), *args, "--out", str(out))
    assert code == 0, stderr
    assert json.loads(stdout)["n"] == 4 and len(out.read_text().splitlines()) == 4


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["no-such-folder/model", "{collection}", "--encoding", "def"], "model 'no-such-folder/model': cannot load"),
        (["tiny-t5", "{collection}", "--encoding", "nope"], "nope"),
        (["tiny-t5", "{collection}", "--encoding", "def", "--task", "missing"], "task 'missing' not found"),
    ],
)
def test_bad_input_is_one_line(collection, tmp_path, args, expected):
    args = [a.format(collection=collection) for a in args]
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "quickstudy.cli", "predict", *args, "--out", str(tmp_path / "p.jsonl")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr
    assert not (tmp_path / "p.jsonl").exists()
