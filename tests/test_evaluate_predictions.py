"""Prediction files: the reference layout, round trips, bad input, atomic writes."""

from __future__ import annotations

import json

import pytest

from quickstudy.data.collection import Collection
from quickstudy.errors import PredictionsError
from quickstudy.evaluate.predictions import (
    InstanceScores,
    PredictionRecord,
    read_predictions,
    with_task_categories,
    write_predictions,
)


@pytest.mark.superni
def test_reads_golden_predictions_in_reference_layout(golden_dir):
    records = read_predictions(golden_dir / "predictions.jsonl")
    first = json.loads((golden_dir / "predictions.jsonl").read_text().splitlines()[0])
    assert len(records) == 479
    assert records[0].task == first["Task"]
    assert records[0].instance_id == first["Instance"]["id"]
    assert records[0].references == tuple(first["Instance"]["output"])
    assert records[0].prediction == first["prediction"]
    assert records[0].category == first["Categories"][0]
    assert records[0].to_json() == first


def test_round_trip_keeps_optional_fields(tmp_path):
    records = [
        PredictionRecord(
            task="task1_x",
            instance_id="task1-0",
            input="Is it ünïcode?",
            references=("Yes", "yes."),
            prediction="yes",
            categories=("Textual Entailment",),
            prompt="Definition: ...\nInput: Is it ünïcode?\nOutput:",
            scores=InstanceScores(100.0, 100.0, 100.0),
            prompt_truncated=False,
        ),
        PredictionRecord(task="task1_x", instance_id="task1-1", input="", references=("No",), prediction=""),
    ]
    path = tmp_path / "runs" / "predictions.jsonl"
    write_predictions(path, records)
    assert read_predictions(path) == records
    line = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert line["scores"] == {"exact_match": 100.0, "rouge1": 100.0, "rougeL": 100.0}
    assert line["prompt_truncated"] is False
    assert [p.name for p in path.parent.iterdir()] == ["predictions.jsonl"]  # no temp file left


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "predictions.jsonl"
    good = PredictionRecord(task="t", instance_id="1", input="", references=("a",), prediction="a")
    write_predictions(path, [good])
    before = path.read_text()
    broken = PredictionRecord(task="t", instance_id="2", input="", references=("a",), prediction=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        write_predictions(path, [good, broken])
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.jsonl"]


GOOD = {"id": "i1", "Task": "task1_x", "Instance": {"id": "i1", "input": "q", "output": ["a"]}, "prediction": "a"}


@pytest.mark.parametrize(
    ("second_line", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({**GOOD, "prediction": None}), "'prediction'"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "Task"}), "'Task'"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "Instance"}), "'Instance'"),
        (json.dumps({**GOOD, "Instance": {"id": "i1", "input": "q", "output": "a"}}), "list of strings"),
        (json.dumps({**GOOD, "Instance": {"id": "i1", "input": "q", "output": ["a", 3]}}), "list of strings"),
        (json.dumps({**GOOD, "Instance": {"id": "i1", "input": "q", "output": []}}), "no reference"),
        (json.dumps({**GOOD, "Categories": 7}), "'Categories'"),
    ],
)
def test_bad_lines_name_file_and_line_number(tmp_path, second_line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + second_line + "\n")
    with pytest.raises(PredictionsError, match=message) as error:
        read_predictions(path)
    assert f"{path}:2:" in str(error.value)


def test_empty_and_missing_files_are_errors(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n")
    with pytest.raises(PredictionsError, match="empty"):
        read_predictions(empty)
    with pytest.raises(PredictionsError, match="not found"):
        read_predictions(tmp_path / "missing.jsonl")


@pytest.mark.superni
def test_categories_come_from_the_collection_when_lines_lack_them(sample_dir):
    collection = Collection(sample_dir)
    records = [
        PredictionRecord(
            task="task1344_glue_entailment_classification", instance_id="1", input="", references=("0",), prediction="0"
        ),
        PredictionRecord(task="task_not_in_collection", instance_id="2", input="", references=("0",), prediction="0"),
        PredictionRecord(
            task="task1344_glue_entailment_classification",
            instance_id="3",
            input="",
            references=("0",),
            prediction="0",
            categories=("Mine",),
        ),
    ]
    resolved = with_task_categories(records, collection)
    assert [r.category for r in resolved] == ["Textual Entailment", "unknown", "Mine"]
    assert [r.category for r in with_task_categories(records, None)] == ["unknown", "unknown", "Mine"]
