"""`quickstudy evaluate` on the golden predictions and on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def golden_metrics(golden_dir):
    return json.loads((golden_dir / "metrics.json").read_text())


@pytest.mark.superni
def test_json_output_equals_golden_metrics(quickstudy, golden_dir, golden_metrics, tmp_path):
    out = tmp_path / "scores" / "metrics.json"
    code, stdout, stderr = quickstudy("evaluate", str(golden_dir / "predictions.jsonl"), "--json", "--out", str(out))
    assert code == 0, stderr
    printed = json.loads(stdout)
    assert printed["n"] == 479
    assert {k: printed["overall"][k] for k in golden_metrics["overall"]} == golden_metrics["overall"]
    for category, scores in printed["per_category"].items():
        key = "_".join(category.lower().split())
        for metric in ("exact_match", "rouge1", "rougeL"):
            assert scores[metric] == golden_metrics["per_category"][f"{metric}_for_{key}"]
    for task, scores in printed["per_task"].items():
        for metric in ("exact_match", "rouge1", "rougeL"):
            assert scores[metric] == golden_metrics["per_task"][f"{metric}_for_{task}"]
    assert len(printed["per_task"]) == 24 and "per_instance" not in printed
    written = json.loads(out.read_text())
    assert [row["rougeL"] for row in written["per_instance"]] == golden_metrics["per_instance_rougeL"]


@pytest.mark.superni
def test_table_shows_overall_and_categories(quickstudy, golden_dir, golden_metrics):
    code, stdout, stderr = quickstudy("evaluate", str(golden_dir / "predictions.jsonl"))
    assert code == 0, stderr
    assert "Textual Entailment" in stdout and "overall" in stdout
    assert f"{golden_metrics['overall']['rougeL']:.2f}" in stdout


@pytest.mark.superni
def test_categories_from_collection_when_lines_lack_them(quickstudy, golden_dir, sample_dir, tmp_path):
    lines = [json.loads(line) for line in (golden_dir / "predictions.jsonl").read_text().splitlines()]
    for line in lines:
        del line["Categories"]
    path = tmp_path / "bare.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with_collection = json.loads(quickstudy("evaluate", str(path), "--json", "--collection", str(sample_dir))[1])
    assert "Textual Entailment" in with_collection["per_category"]
    without = json.loads(quickstudy("evaluate", str(path), "--json")[1])
    assert list(without["per_category"]) == ["unknown"]
    assert without["overall"] == with_collection["overall"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"Task": "t", "Instance": {"id": "1", "output": ["a"]}, "prediction": "a"}\nnot json\n', ":2:"),
        ('{"Task": "t", "Instance": {"id": "1", "output": "a"}, "prediction": "a"}\n', ":1:"),
        ('{"Task": "t", "Instance": {"id": "1", "output": ["a"]}}\n', ":1:"),
        ("", "empty"),
    ],
)
def test_bad_input_is_one_line_and_nonzero_exit(quickstudy, tmp_path, content, expected):
    path = tmp_path / "predictions.jsonl"
    path.write_text(content)
    out = tmp_path / "metrics.json"
    code, _, stderr = quickstudy("evaluate", str(path), "--out", str(out))
    assert code != 0
    assert len(stderr.strip().splitlines()) == 1
    assert expected in stderr and "predictions.jsonl" in stderr
    assert not out.exists()


def test_installed_command_exits_with_one_line_and_no_traceback(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text('{"Task": "t", "Instance": {"id": "1", "output": ["a"]}, "prediction": "a"}\n{"Task": 3}\n')
    result = subprocess.run(
        [sys.executable, "-m", "quickstudy.cli", "evaluate", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {path}:2: field 'Instance' is missing or not an object"]
