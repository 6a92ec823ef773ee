"""`quickstudy data stats` on the real sample, with expected numbers computed
independently from the sample's INDEX.tsv, split files and raw JSON."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quickstudy.cli import app
from quickstudy.data.collection import Collection
from quickstudy.data.sampling import parse_sizes, read_manifest
from quickstudy.data.splits import SplitConfig
from quickstudy.data.stats import collection_stats


def index_rows(sample_dir: Path) -> dict[str, dict]:
    with open(sample_dir / "INDEX.tsv", newline="", encoding="utf-8") as handle:
        return {row["name"]: row for row in csv.DictReader(handle, delimiter="\t")}


def expected_stats(sample_dir: Path, n_test: int, n_validation: int, sizes: list[int | str], per_seen: int) -> dict:
    """The stats worked out by hand: counts from INDEX.tsv, leakage from the raw JSON."""
    rows = index_rows(sample_dir)
    unseen = (sample_dir / "splits/default/test_tasks.txt").read_text().split()
    seen = (sample_dir / "splits/default/train_tasks.txt").read_text().split()
    categories: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    train_of: dict[str, int] = {}
    category_of: dict[str, str] = {}
    for name in unseen:
        count = int(rows[name]["instances_kept"])
        inputs = [i["input"] for i in json.loads((sample_dir / "tasks" / f"{name}.json").read_text())["Instances"]]
        assert len(inputs) == count
        held = {re.sub(r"\s+", " ", text).strip().lower() for text in inputs[: n_test + n_validation]}
        train = [t for t in inputs[n_test + n_validation :] if re.sub(r"\s+", " ", t).strip().lower() not in held]
        category_of[name] = json.loads(rows[name]["categories"])[0]
        categories[category_of[name]] += 1
        totals["test"] += min(n_test, count)
        totals["validation"] += max(0, min(n_validation, count - n_test))
        totals["train"] += len(train)
        train_of[name] = len(train)
    totals["prefinetune"] = sum(min(per_seen, int(rows[name]["instances_kept"])) for name in seen)
    by_size = {}
    for size in sizes:
        taken = {name: (train_of[name] if size == "all" else min(size, train_of[name])) for name in unseen}
        per_category: Counter[str] = Counter()
        for name, n in taken.items():
            per_category[category_of[name]] += n
        by_size[str(size)] = {
            "instances": sum(taken.values()),
            "percent": round(100 * sum(taken.values()) / totals["train"], 2),
            "per_category": dict(per_category),
        }
    return {"tasks": len(unseen), "categories": dict(categories), "instances": dict(totals), "sizes": by_size}


def assert_matches(actual: dict, expected: dict) -> None:
    assert actual["tasks"] == expected["tasks"]
    assert actual["categories"] == expected["categories"]
    assert actual["instances"] == expected["instances"]
    assert list(actual["sizes"]) == list(expected["sizes"])
    for label, want in expected["sizes"].items():
        got = actual["sizes"][label]
        assert got["instances"] == want["instances"] and got["percent"] == want["percent"]
        assert {k: v for k, v in got["per_category"].items() if v} == {
            k: v for k, v in want["per_category"].items() if v
        }


@pytest.mark.superni
def test_cli_stats_json_on_the_real_sample(sample_dir: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "quickstudy.cli", "data", "stats", str(sample_dir), "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    actual = json.loads(result.stdout)
    expected = expected_stats(sample_dir, 100, 10, [100, 200, 1000, "all"], 100)
    assert_matches(actual, expected)
    # A few of these by hand: 12 unseen tasks, one per category; only four have more than
    # 100 instances (105, 121, 123, 204), so train is 0 + 11 + 13 + 94 = 118 and every size takes all of it.
    assert actual["tasks"] == 12 and set(actual["categories"].values()) == {1}
    assert actual["instances"]["train"] == 118 and actual["instances"]["validation"] == 5 + 10 + 10 + 10
    assert actual["sizes"]["100"]["instances"] == 118 and actual["sizes"]["100"]["percent"] == 100.0
    assert actual["leaked_removed"] == 0 and actual["seen_tasks"] == 12


@pytest.mark.superni
def test_stats_with_a_smaller_held_out_part(sample_dir: Path) -> None:
    config = SplitConfig(n_test=20, n_validation=5)
    stats = collection_stats(
        Collection(sample_dir), "default", parse_sizes("10,50,all"), config, prefinetune_per_task=40
    )
    expected = expected_stats(sample_dir, 20, 5, [10, 50, "all"], 40)
    assert_matches(stats.to_json(), expected)
    # Keyword Tagging's only task has 20 instances: all test, so it is capped at every count size.
    assert "task620_ohsumed_medical_subject_headings_answer_generation" in stats.sizes["10"].capped_tasks
    assert stats.sizes["all"].capped_tasks == []


@pytest.mark.superni
def test_cli_tables_and_manifest(sample_dir: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    result = CliRunner().invoke(
        app,
        [
            "data",
            "stats",
            str(sample_dir),
            "--n-test",
            "50",
            "--n-validation",
            "5",
            "--sizes",
            "10,6%,all",
            "--manifest",
            str(manifest),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    for title in ("Table 4.1", "Table 4.2", "Table 4.3", "Word Analogy", "6%"):
        assert title in result.output
    chosen = read_manifest(manifest)
    assert chosen.sizes == ("10", "6%", "all")
    analogy = chosen.tasks["task1152_bard_analogical_reasoning_causation"]
    assert len(analogy["all"]) == 204 - 55 and len(analogy["6%"]) == 9  # 6% of 149 = 8.94
    assert analogy["10"] == analogy["all"][:10] and analogy["6%"] == analogy["all"][:9]


def test_stats_of_a_bare_folder(tmp_path: Path) -> None:
    for name, n in (("a", 15), ("b", 3)):
        instances = [{"input": f"{name} {i}", "output": ["o"]} for i in range(n)]
        (tmp_path / f"{name}.json").write_text(
            json.dumps({"Definition": "d", "Categories": ["C"], "Instances": instances})
        )
    stats = collection_stats(
        Collection(tmp_path),
        sizes=parse_sizes("5,all"),
        config=SplitConfig(n_test=4, n_validation=2),
        prefinetune_per_task=10,
    )
    assert stats.to_json()["instances"] == {"train": 9, "validation": 2 + 0, "test": 4 + 3, "prefinetune": 0}
    assert stats.sizes["5"].instances == 5 and stats.sizes["5"].capped_tasks == ["b"]
