"""The synthetic demo collection: format, sizes, determinism, and that instructions matter."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from quickstudy.data.collection import Collection
from quickstudy.data.splits import SplitConfig, normalised_input, task_split
from quickstudy.data.synth import BABY, SOUND, write_synth_collection
from quickstudy.data.validate import validate_collection
from quickstudy.models.tiny import word_level_tokenizer


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "collection"
    write_synth_collection(out, seed=0)
    return out


@pytest.fixture(scope="module")
def collection(synth_dir: Path) -> Collection:
    return Collection(synth_dir)


def family_of(task_name: str) -> str:
    return task_name.split("_")[1]


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_same_seed_writes_byte_identical_files_and_another_seed_does_not(synth_dir: Path, tmp_path: Path) -> None:
    write_synth_collection(tmp_path / "again", seed=0)
    write_synth_collection(tmp_path / "other", seed=1)
    first, again, other = file_bytes(synth_dir), file_bytes(tmp_path / "again"), file_bytes(tmp_path / "other")
    assert first == again
    assert first.keys() == other.keys()
    task_files = [name for name in first if name.startswith("tasks/")]
    assert all(first[name] != other[name] for name in task_files)  # same task names, other instances
    assert all(first[name] == other[name] for name in first if name.startswith("splits/"))


def test_collection_validates_and_splits_list_every_task(synth_dir: Path, collection: Collection) -> None:
    report = validate_collection(synth_dir)
    assert report.problems == []
    assert report.splits_checked == ("default",)
    split = collection.split("default")
    assert len(split.train) >= 60 and len(split.test) >= 16 and split.excluded == ()
    assert set(split.train).isdisjoint(split.test)
    assert sorted(split.train + split.test) == collection.task_names()


def test_unseen_categories_are_the_thesis_kind_and_never_seen(collection: Collection) -> None:
    split = collection.split("default")
    seen_categories = {collection.task(name).category for name in split.train}
    unseen_categories = Counter(collection.task(name).category for name in split.test)
    assert len(unseen_categories) >= 6
    assert seen_categories.isdisjoint(unseen_categories)
    assert {"Textual Entailment", "Title Generation", "Coreference Resolution", "Word Analogy"} <= set(
        unseen_categories
    )


def test_unseen_tasks_split_into_test_validation_and_a_full_train_set(collection: Collection) -> None:
    for name in collection.split("default").test:
        task = collection.task(name)
        split = task_split(task, SplitConfig(n_test=100, n_validation=10))
        assert (len(split.test), len(split.validation), len(split.train)) == (100, 10, 1000), name
        assert split.leaked_removed == 0
        inputs = [normalised_input(instance.input) for instance in task.instances]
        assert len(set(inputs)) == len(inputs), f"{name}: repeated input"


def test_seen_tasks_have_enough_instances_for_prefinetuning(collection: Collection) -> None:
    for name in collection.split("default").train:
        task = collection.task(name)
        assert len(task.instances) >= 100
        assert len({instance.input for instance in task.instances}) == len(task.instances)


def test_every_task_has_a_definition_and_examples_apart_from_its_instances(collection: Collection) -> None:
    for task in collection.tasks():
        assert task.definition.strip() and len(task.positive_examples) == 2 and len(task.negative_examples) == 2
        answers = {instance.input: instance.references[0] for instance in task.instances}
        for example in task.positive_examples + task.negative_examples:
            assert example.explanation and example.input not in answers
        for example in task.negative_examples:
            correct = re.fullmatch(r"The answer should be (.+) , not (.+) \.", example.explanation)
            assert correct and correct[2] == example.output and correct[1] != example.output, task.name


def test_tasks_of_a_family_share_inputs_and_only_the_definition_tells_the_answer(collection: Collection) -> None:
    """Two tasks of one family answer the same input differently, and no unseen
    task is a copy of a seen one: without the definition the target is ambiguous."""
    answers = {task.name: {i.input: i.references[0] for i in task.instances} for task in collection.tasks()}
    families = defaultdict(list)
    for name in answers:
        families[family_of(name)].append(name)
    assert len(families) >= 6
    split = collection.split("default")
    for name in split.test:
        siblings = [other for other in families[family_of(name)] if other in split.train]
        assert siblings, f"{name}: no seen task shares its inputs"
        for other in siblings:
            shared = answers[name].keys() & answers[other].keys()
            assert len(shared) >= 50, (name, other)
            differing = sum(answers[name][x] != answers[other][x] for x in shared)
            assert differing >= len(shared) // 4, (name, other)


def test_answers_follow_the_definitions(collection: Collection) -> None:
    """Spot checks that recompute answers from the input text alone."""
    for instance in collection.task("task001_list_reverse").instances:
        assert instance.references[0] == " ".join(instance.input.split()[::-1])
    for instance in collection.task("task015_list_first_baby").instances:
        assert instance.references[0] == BABY[instance.input.split()[0]]
    for instance in collection.task("task016_list_last_sound").instances:
        assert instance.references[0] == SOUND[instance.input.split()[-1]]
    for instance in collection.task("task025_pair_overlap").instances:
        first, second = (part.split() for part in instance.input.split(" | "))
        assert instance.references[0] == (" ".join(x for x in first if x in second) or "none")
    for instance in collection.task("task060_entail_agree").instances:
        premise, hypothesis = instance.input.rstrip(" .").split(" . ")
        _, color, animal, _, _, _, place = premise.split()
        expected = hypothesis in (f"the {animal} is {color}", f"the {animal} is in the {place}")
        assert instance.references[0] == ("yes" if expected else "no")


def test_classification_labels_are_balanced_in_the_test_slice(collection: Collection) -> None:
    for name, labels in (("task059_entail_label", 3), ("task072_cause_relation", 3), ("task077_answer_answerable", 2)):
        counts = Counter(instance.references[0] for instance in collection.task(name).instances[:100])
        assert len(counts) == labels and min(counts.values()) >= 100 // labels // 2, (name, counts)


def test_vocabulary_fits_a_small_word_level_tokenizer(collection: Collection) -> None:
    texts = []
    for task in collection.tasks():
        texts.append(task.definition)
        texts += [
            text for e in task.positive_examples + task.negative_examples for text in (e.input, e.output, e.explanation)
        ]
        texts += [text for i in task.instances for text in (i.input, *i.references)]
    tokenizer = word_level_tokenizer(texts)
    assert 100 <= len(tokenizer) <= 300
    distinct_words = {word for text in texts for word in re.findall(r"\w+|[^\w\s]+", text)}
    assert len(tokenizer) == len(distinct_words) + 3  # <pad> </s> <unk>


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quickstudy.cli", *args], capture_output=True, text=True, timeout=120)


def test_cli_writes_a_collection_and_refuses_to_overwrite_without_force(tmp_path: Path, synth_dir: Path) -> None:
    out = tmp_path / "demo"
    done = run_cli("data", "synth", str(out), "--seed", "0")
    assert done.returncode == 0, done.stderr
    assert "61 seen, 16 unseen" in done.stdout
    assert file_bytes(out) == file_bytes(synth_dir)
    refused = run_cli("data", "synth", str(out), "--seed", "1")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and str(out) in refused.stderr and "Traceback" not in refused.stderr
    assert file_bytes(out) == file_bytes(synth_dir)
    replaced = run_cli("data", "synth", str(out), "--seed", "1", "--force")
    assert replaced.returncode == 0, replaced.stderr
    assert file_bytes(out) != file_bytes(synth_dir)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["demo"]  # no staging folders left behind
