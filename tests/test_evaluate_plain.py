"""`quickstudy evaluate` on the plain layout: `prediction` + `references` or `output`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def write_lines(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.mark.superni
def test_plain_lines_score_as_the_reference_layout(quickstudy, golden_dir, tmp_path):
    reference = [json.loads(line) for line in (golden_dir / "predictions.jsonl").read_text().splitlines()]
    plain = [
        {
            "task": line["Task"],
            "id": line["Instance"]["id"],
            "category": line["Categories"][0],
            "input": line["Instance"]["input"],
            "references": line["Instance"]["output"],
            "prediction": line["prediction"],
        }
        for line in reference
    ]
    path = write_lines(tmp_path / "plain.jsonl", plain)
    code, stdout, stderr = quickstudy("evaluate", str(path), "--json")
    assert code == 0, stderr
    expected = json.loads(quickstudy("evaluate", str(golden_dir / "predictions.jsonl"), "--json")[1])
    assert json.loads(stdout) == expected


def test_bare_input_output_prediction_lines(quickstudy, tmp_path):
    lines = [
        {"input": "a", "output": "yes", "prediction": "yes"},
        {"input": "b", "output": ["no", "nope"], "prediction": "nope"},
        {"input": "c", "output": "yes", "prediction": "no"},
    ]
    path = write_lines(tmp_path / "mine.jsonl", lines)
    code, stdout, stderr = quickstudy("evaluate", str(path), "--json")
    assert code == 0, stderr
    scores = json.loads(stdout)
    assert scores["n"] == 3 and list(scores["per_task"]) == ["mine"] and list(scores["per_category"]) == ["unknown"]
    assert scores["overall"]["exact_match"] == pytest.approx(200 / 3, abs=0.01)
    assert "overall" in quickstudy("evaluate", str(path))[1]


def test_categories_from_the_collection_by_task_name(quickstudy, tmp_path):
    collection = tmp_path / "collection" / "tasks"
    collection.mkdir(parents=True)
    task = {"Definition": ["d"], "Categories": ["Sentiment Analysis"], "Instances": [{"input": "x", "output": ["y"]}]}
    (collection / "sentiment.json").write_text(json.dumps(task))
    path = write_lines(tmp_path / "p.jsonl", [{"task": "sentiment", "references": ["y"], "prediction": "y"}])
    code, stdout, stderr = quickstudy("evaluate", str(path), "--json", "--collection", str(tmp_path / "collection"))
    assert code == 0, stderr
    assert list(json.loads(stdout)["per_category"]) == ["Sentiment Analysis"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ({"references": ["a"]}, ":2: field 'prediction' is missing or not a string"),
        ({"references": "a", "prediction": "a"}, ":2: field 'references' must be a list of strings"),
        ({"output": [], "prediction": "a"}, ":2: field 'output' has no reference"),
        ({"output": 3, "prediction": "a"}, ":2: field 'output' must be a string or a list of strings"),
        ({"output": "a", "prediction": "a", "task": 5}, ":2: field 'task' must be a non-empty string"),
    ],
)
def test_bad_plain_lines_are_one_line_errors(tmp_path, line, expected):
    path = write_lines(tmp_path / "p.jsonl", [{"output": "a", "prediction": "a"}, line])
    result = subprocess.run(
        [sys.executable, "-m", "quickstudy.cli", "evaluate", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {path}{expected}"]
