"""Sample sizes, seeded nested samples, capping, pre-finetuning set, manifests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quickstudy.data.collection import Collection
from quickstudy.data.records import Instance, Task
from quickstudy.data.sampling import (
    SampleSize,
    nested_samples,
    parse_size,
    parse_sizes,
    prefinetune_instances,
    read_manifest,
    sample_manifest,
    sample_shortfalls,
    select_instances,
    write_manifest,
)
from quickstudy.data.splits import SplitConfig, task_split
from quickstudy.errors import ConfigError, DataError

WORD_ANALOGY = "task1152_bard_analogical_reasoning_causation"  # 204 instances: 94 train with the default split


@pytest.fixture(scope="module")
def analogy_split(sample_dir: Path):
    return task_split(Collection(sample_dir).task(WORD_ANALOGY))


def test_parse_size() -> None:
    assert parse_size("100") == SampleSize(kind="count", count=100)
    assert parse_size(" ALL ").kind == "all"
    assert parse_size("6%").label == "6%"
    assert parse_size("2.5%").label == "2.5%"
    assert [s.label for s in parse_sizes("100, 200,1000,all")] == ["100", "200", "1000", "all"]
    assert [s.label for s in parse_sizes(["10", 20, "6%"])] == ["10", "20", "6%"]


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "0%", "150%", "x%", ""])
def test_bad_size_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="sample size"):
        parse_sizes(bad) if bad == "" else parse_size(bad)


def test_repeated_sizes_are_refused() -> None:
    with pytest.raises(ConfigError, match="100 given more than once"):
        parse_sizes("100,all,100")


@pytest.mark.parametrize(
    ("size", "pool", "asked", "drawn"),
    [
        ("100", 250, 100, 100),
        ("100", 40, 100, 40),
        ("all", 40, 40, 40),
        ("6%", 250, 15, 15),
        ("6%", 10, 1, 1),  # 0.6 rounds to 1
        ("2.5%", 20, 1, 1),  # 0.5 rounds half up
        ("2.5%", 100, 3, 3),  # 2.5 rounds half up
        ("2.5%", 140, 4, 4),  # 3.5 rounds half up
        ("6%", 0, 1, 0),  # at least 1 asked, none there
        ("100%", 37, 37, 37),
    ],
)
def test_size_counts(size: str, pool: int, asked: int, drawn: int) -> None:
    parsed = parse_size(size)
    assert (parsed.asked_for(pool), parsed.count_for(pool)) == (asked, drawn)


@pytest.mark.superni
def test_samples_are_nested_prefixes_of_one_permutation(analogy_split) -> None:
    samples = nested_samples(analogy_split, parse_sizes("10,20,50,all"), seed=1)
    assert [len(samples[k]) for k in ("10", "20", "50", "all")] == [10, 20, 50, 94]
    assert (
        samples["10"] == samples["20"][:10]
        and samples["20"] == samples["50"][:20]
        and samples["50"] == samples["all"][:50]
    )
    assert sorted(i.id for i in samples["all"]) == sorted(i.id for i in analogy_split.train)
    assert [i.id for i in samples["all"]] != [i.id for i in analogy_split.train]  # shuffled, not the file order
    held_out = {i.id for i in analogy_split.test + analogy_split.validation}
    assert not held_out & {i.id for i in samples["all"]}


@pytest.mark.superni
def test_samples_depend_on_the_seed_only(analogy_split) -> None:
    sizes = parse_sizes("30")
    first = nested_samples(analogy_split, sizes, seed=1)["30"]
    assert nested_samples(analogy_split, sizes, seed=1)["30"] == first
    assert nested_samples(analogy_split, parse_sizes("5,30,all"), seed=1)["30"] == first  # other sizes change nothing
    assert nested_samples(analogy_split, sizes, seed=2)["30"] != first


@pytest.mark.superni
def test_samples_are_the_same_in_another_process(sample_dir: Path, analogy_split) -> None:
    """Seeding must not use Python's salted hash(): a fresh process with another hash seed agrees."""
    script = (
        "import json, sys\n"
        "from quickstudy.data.collection import Collection\n"
        "from quickstudy.data.sampling import nested_samples, parse_sizes, prefinetune_instances\n"
        "from quickstudy.data.splits import task_split\n"
        f"c = Collection({str(sample_dir)!r})\n"
        f"s = nested_samples(task_split(c.task({WORD_ANALOGY!r})), parse_sizes('40'), seed=7)['40']\n"
        "p = prefinetune_instances(c.task('task085_unnatural_addsub_arithmetic'), 20, seed=7)\n"
        "print(json.dumps([[i.id for i in s], [i.id for i in p]]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    there = json.loads(out.stdout)
    here_sample = [i.id for i in nested_samples(analogy_split, parse_sizes("40"), seed=7)["40"]]
    task = Collection(sample_dir).task("task085_unnatural_addsub_arithmetic")
    assert there == [here_sample, [i.id for i in prefinetune_instances(task, 20, seed=7)]]


@pytest.mark.superni
def test_capping_is_reported(analogy_split) -> None:
    sizes = parse_sizes("50,100,200,all,6%")
    samples = nested_samples(analogy_split, sizes, seed=3)
    assert len(samples["100"]) == len(samples["200"]) == len(samples["all"]) == 94
    assert len(samples["6%"]) == 6  # 5.64 rounds to 6
    shortfalls = sample_shortfalls(analogy_split, sizes)
    assert [(s.task, s.size, s.asked, s.available) for s in shortfalls] == [
        (WORD_ANALOGY, "100", 100, 94),
        (WORD_ANALOGY, "200", 200, 94),
    ]


def toy_task(n: int) -> Task:
    return Task(
        name="toy",
        definition="d",
        instances=[Instance(id=f"toy-{i}", input=f"in {i}", references=("o",)) for i in range(n)],
    )


def test_task_without_train_pool_gets_empty_samples() -> None:
    split = task_split(toy_task(50), SplitConfig(n_test=100, n_validation=10))
    samples = nested_samples(split, parse_sizes("10,all,5%"), seed=1)
    assert samples == {"10": [], "all": [], "5%": []}
    assert [s.size for s in sample_shortfalls(split, parse_sizes("10,all,5%"))] == ["10", "5%"]


@pytest.mark.superni
def test_prefinetune_instances(sample_dir: Path) -> None:
    task = Collection(sample_dir).task("task085_unnatural_addsub_arithmetic")
    assert len(task.instances) == 145
    chosen = prefinetune_instances(task, 100, seed=1)
    assert len(chosen) == 100 and len({i.id for i in chosen}) == 100
    assert {i.id for i in chosen} <= {i.id for i in task.instances}
    assert chosen == prefinetune_instances(task, 100, seed=1)
    assert chosen != prefinetune_instances(task, 100, seed=2)
    assert prefinetune_instances(task, 10, seed=1) == chosen[:10]
    assert len(prefinetune_instances(toy_task(29), 100, seed=1)) == 29
    with pytest.raises(ConfigError):
        prefinetune_instances(task, -1)


@pytest.mark.superni
def test_manifest_round_trip(tmp_path: Path, sample_dir: Path) -> None:
    collection = Collection(sample_dir)
    splits = [
        task_split(collection.task(n), SplitConfig(n_test=20, n_validation=5)) for n in collection.split().test[:4]
    ]
    sizes = parse_sizes("10,50,all")
    manifest = sample_manifest(splits, sizes, seed=4)
    path = tmp_path / "out" / "manifest.json"
    write_manifest(path, manifest)
    assert [p.name for p in path.parent.iterdir()] == ["manifest.json"]  # no temp file left behind
    again = read_manifest(path)
    assert again == manifest and again.sizes == ("10", "50", "all") and again.seed == 4
    for split in splits:
        ids = again.ids(split.task.name, "50")
        assert select_instances(split.train, ids, "test") == nested_samples(split, sizes, seed=4)["50"]
    with pytest.raises(DataError, match="no sample of size '200'"):
        again.ids(splits[0].task.name, "200")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{", "invalid JSON"),
        ('{"seed": "1", "sizes": [], "tasks": {}}', "field 'seed'"),
        ('{"seed": 1, "sizes": ["10"], "tasks": {"t": {"10": [1]}}}', "tasks.t.10 must be a list of instance ids"),
        ('{"seed": 1, "sizes": ["10", "all"], "tasks": {"t": {"10": []}}}', "tasks.t must map each of the sizes"),
    ],
)
def test_malformed_manifest(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(content)
    with pytest.raises(DataError, match=expected) as raised:
        read_manifest(path)
    assert str(raised.value).startswith(str(path))


@pytest.mark.superni
def test_select_unknown_id_names_it(analogy_split) -> None:
    with pytest.raises(DataError, match="'nope'"):
        select_instances(analogy_split.train, ["nope"], "manifest.json: task x")


@pytest.mark.parametrize("text", ["0", "²", "١٠"])
def test_zero_and_non_ascii_digits_are_not_sizes(text: str) -> None:
    with pytest.raises(ConfigError, match=f"sample size {text!r}"):
        parse_size(text)
