"""Prompt encodings against SuperNI's reference encoder output (QUICKSTUDY_GOLDEN's prompts.jsonl)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace

import pytest
from transformers import ByT5Tokenizer

import quickstudy.prompts.encoding as encoding_module
from quickstudy.data.collection import Collection
from quickstudy.errors import PromptError
from quickstudy.prompts.encoding import (
    PRESETS,
    Encoding,
    PromptBuilder,
    encoding_by_name,
    encoding_from_options,
    resolve_encoding,
)
from quickstudy.prompts.features import text_examples
from quickstudy.prompts.tokenizers import ByteCounter, SplitCounter, TokenCounter, token_counter

GOLDEN_LINES = 1728


def exact_counter(tokenizer, head: str = "") -> TokenCounter:
    """The reference's counting: the tokenizer counts every candidate prompt."""
    return TokenCounter(tokenizer)


@pytest.fixture(scope="module")
def collection(sample_dir) -> Collection:
    return Collection(sample_dir)


@pytest.fixture(scope="module")
def golden(golden_dir) -> list[dict]:
    return [json.loads(line) for line in (golden_dir / "prompts.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def byt5() -> ByT5Tokenizer:
    return ByT5Tokenizer()


def golden_groups(golden: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for line in golden:
        groups[(line["task"], line["encoding"], line["tokenizer"], line["max_source_length"])].append(line)
    return groups


@pytest.mark.superni
def test_every_golden_prompt_is_reproduced_through_the_trainer_path(collection, golden, byt5):
    assert len(golden) == GOLDEN_LINES
    checked = 0
    for (task_name, encoding_name, tokenizer_name, budget), lines in golden_groups(golden).items():
        task = collection.task(task_name)
        encoding = encoding_by_name(encoding_name)
        assert encoding.options() == {**lines[0]["options"], "input_only": False}
        upto = max(line["instance_index"] for line in lines) + 1
        examples = text_examples(
            task, task.instances[:upto], encoding, byt5 if tokenizer_name else None, budget, seed=0
        )
        for line in lines:
            example = examples[line["instance_index"]]
            assert example.instance_id == line["instance_id"]
            assert example.prompt == line["prompt"], f"{task_name} {encoding_name} {budget} #{line['instance_index']}"
            checked += 1
    assert checked == GOLDEN_LINES


@pytest.mark.superni
@pytest.mark.parametrize("counter", [exact_counter, SplitCounter], ids=["exact", "split"])
def test_exact_and_split_counting_reproduce_the_truncated_goldens(collection, golden, byt5, monkeypatch, counter):
    """The reference's counting (the tokenizer counts each candidate prompt), and the path
    every non-byte tokenizer takes (SplitCounter), with ByT5's tokenizer on the goldens."""
    monkeypatch.setattr(encoding_module, "token_counter", counter)
    truncated = [line for line in golden if line["max_source_length"] is not None]
    assert len(truncated) == GOLDEN_LINES * 2 // 3
    for (task_name, encoding_name, _, budget), lines in golden_groups(truncated).items():
        task = collection.task(task_name)
        builder = PromptBuilder(task, encoding_by_name(encoding_name), byt5, budget)
        for line in lines:
            assert builder.prompt(task.instances[line["instance_index"]].input) == line["prompt"]


@pytest.mark.superni
def test_goldens_exercise_dropping_and_cutting(collection, golden, byt5):
    built = []
    for line in golden:
        if line["max_source_length"] is not None:
            task = collection.task(line["task"])
            builder = PromptBuilder(task, encoding_by_name(line["encoding"]), byt5, line["max_source_length"])
            built.append((builder.build(task.instances[line["instance_index"]].input), line["max_source_length"]))
    assert any(prompt.truncated for prompt, _ in built) and any(not prompt.truncated for prompt, _ in built)
    assert any(prompt.dropped_examples for prompt, _ in built)
    for prompt, budget in built:
        # a cut prompt is the first `budget` bytes (its own eos is then one over, as in the reference)
        size = len(prompt.text.encode("utf-8"))
        assert budget - 3 <= size <= budget if prompt.truncated else size + 1 <= budget


def with_special_tokens(task):
    """The task with ByT5 special-token strings in some inputs, where byte counts stop adding up."""
    instances = [
        replace(instance, input=f"{instance.input} </s> <extra_id_0>x") if index % 3 == 0 else instance
        for index, instance in enumerate(task.instances)
    ]
    return replace(task, instances=instances)


@pytest.mark.superni
def test_byte_arithmetic_equals_tokenizer_counts_on_sample_instances(collection, byt5, monkeypatch):
    encoding = encoding_from_options(
        {"add_task_name": True, "num_pos_examples": 2, "num_neg_examples": 2, "add_explanation": True}
    )
    tasks = [collection.task(name) for name in collection.task_names()]
    tasks.append(with_special_tokens(tasks[0]))

    def every_prompt() -> list:
        builders = [(PromptBuilder(task, encoding, byt5, budget), task) for task in tasks for budget in (200, 700)]
        return [builder.build(instance.input) for builder, task in builders for instance in task.instances[:30]]

    fast = every_prompt()
    monkeypatch.setattr(encoding_module, "token_counter", exact_counter)
    exact = every_prompt()
    assert (
        len(fast) > 1400
        and any(prompt.truncated for prompt in fast)
        and any(prompt.dropped_examples for prompt in fast)
    )
    assert fast == exact


def test_byte_counter_declines_pieces_holding_special_tokens(byt5):
    counter = token_counter(byt5)
    assert isinstance(counter, ByteCounter)
    assert counter.piece_length("caf\u00e9 <sep> ok") == len("caf\u00e9 <sep> ok".encode("utf-8"))
    assert counter.piece_length("end </s>") is None
    text = "x </s>  y" * 20
    assert counter.cut(text, 30) == byt5.decode(byt5(text)["input_ids"][:30], skip_special_tokens=True)
    assert counter.cut("\u00e9\u00e9\u00e9", 3) == "\u00e9"  # the split character is dropped, as ByT5's decode does


@pytest.mark.superni
def test_candidates_are_checked_space_joined(collection, byt5):
    """The reference checks a negative against the kept positives joined with a space, so a
    prompt whose unspaced text fits exactly still loses the negative."""
    task = collection.task("task957_e2e_nlg_text_generation_generate")
    encoding = encoding_from_options({"num_pos_examples": 2, "num_neg_examples": 1})
    everything = PromptBuilder(task, encoding).prompt(task.instances[0].input)
    budget = len(byt5(everything)["input_ids"])
    fitted = PromptBuilder(task, encoding, byt5, budget).build(task.instances[0].input)
    assert " Positive Example 2 -" in fitted.text and " Negative Example 1 -" not in fitted.text
    assert fitted.dropped_examples == 1 and not fitted.truncated
    roomier = PromptBuilder(task, encoding, byt5, budget + 1).prompt(task.instances[0].input)
    assert roomier == everything


@pytest.mark.superni
def test_untruncated_layout_piece_by_piece(collection):
    task = collection.task("task957_e2e_nlg_text_generation_generate")
    encoding = encoding_by_name("name_def_pos2")
    prompt = PromptBuilder(task, encoding).prompt("  name Alimentum  ")
    assert prompt.startswith(f"{task.name}. Definition: ")
    assert prompt.endswith("\n\nNow complete the following example -\nInput: name Alimentum.\nOutput: ")
    assert prompt.count(" Positive Example ") == 2 and " Negative Example " not in prompt
    assert (
        PromptBuilder(task, encoding_by_name("none")).prompt("What?")
        == "Now complete the following example -\nInput: What?\nOutput: "
    )


@pytest.mark.superni
def test_input_only_is_the_bare_input_cut_only_at_the_budget(collection, byt5):
    task = collection.task("task039_qasc_find_overlapping_words")
    text = "  Sentence1: caf\u00e9 au lait \n"
    assert PromptBuilder(task, encoding_by_name("input_only")).prompt(text) == text
    assert PromptBuilder(task, encoding_by_name("input_only"), byt5, 100).prompt(text) == text
    cut = PromptBuilder(task, encoding_by_name("input_only"), byt5, 17).build(text)
    assert cut.truncated and cut.text == "  Sentence1: caf"


@pytest.mark.superni
def test_a_general_tokenizer_is_counted_exactly(collection):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    task = collection.task("task957_e2e_nlg_text_generation_generate")
    words = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = (
        [task.definition]
        + [e.input + " " + e.output for e in task.positive_examples]
        + [i.input for i in task.instances]
    )
    words.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]", pad_token="[PAD]")
    assert type(token_counter(tokenizer)) is SplitCounter

    encoding = encoding_by_name("def_pos2")
    instance_input = task.instances[0].input
    one_example = PromptBuilder(task, encoding_from_options({"num_pos_examples": 1})).prompt(instance_input)
    budget = len(tokenizer(one_example)["input_ids"])
    assert budget < len(one_example.encode("utf-8"))  # words, not bytes
    built = PromptBuilder(task, encoding, tokenizer, budget).build(instance_input)
    assert built.text == one_example and built.dropped_examples == 1


def test_encoding_names_and_options():
    assert set(PRESETS) == {
        "def",
        "def_pos2",
        "def_pos2_neg2",
        "def_pos2_expl",
        "def_pos2_neg2_expl",
        "pos2",
        "name_def_pos2",
        "none",
        "input_only",
    }
    for name, preset in PRESETS.items():
        assert preset.name == name
        if name != "input_only":
            assert encoding_from_options(preset.options()) == preset
    with pytest.raises(PromptError, match="unknown encoding 'def_pos3'.*def_pos2_neg2.*input_only"):
        encoding_by_name("def_pos3")
    custom = resolve_encoding({"num_pos_examples": 4, "num_neg_examples": 1, "add_explanation": True})
    assert custom.name == "def_pos4_neg1_expl" and custom.add_task_definition
    assert resolve_encoding({"input_only": True}) == PRESETS["input_only"]
    assert resolve_encoding("pos2") is PRESETS["pos2"]
    with pytest.raises(PromptError, match="unknown option.*num_pos"):
        encoding_from_options({"num_pos": 2})
    with pytest.raises(PromptError, match="num_neg_examples"):
        encoding_from_options({"num_neg_examples": -1})
    with pytest.raises(PromptError, match="input_only"):
        Encoding("odd", add_task_definition=True, input_only=True)


@pytest.mark.superni
def test_a_budget_needs_a_tokenizer(collection):
    with pytest.raises(PromptError, match="task039_qasc_find_overlapping_words.*tokenizer"):
        PromptBuilder(collection.task("task039_qasc_find_overlapping_words"), PRESETS["def"], None, 512)


def test_empty_explanation_is_written_but_a_missing_one_is_skipped():
    from quickstudy.data.collection import task_from_json
    from quickstudy.prompts.encoding import PromptBuilder

    raw = {
        "Definition": ["Copy the input"],
        "Positive Examples": [
            {"input": "a", "output": "a", "explanation": ""},
            {"input": "b", "output": "b"},
        ],
        "Instances": [{"id": "x", "input": "c", "output": ["c"]}],
    }
    task = task_from_json(raw, name="t", where="t.json")
    prompt = PromptBuilder(task, encoding_by_name("def_pos2_expl")).prompt("c")
    # The reference encoder: an explanation key that is present but empty gives " Explanation: ."
    assert " Output: a.\n Explanation: .\n\n Positive Example 2 -\nInput: b.\n Output: b.\n\nNow complete" in prompt


def sample_texts(collection: Collection) -> list[str]:
    texts = []
    for task in collection.tasks():
        texts += [task.definition] + [e.input + " " + e.output for e in task.positive_examples + task.negative_examples]
        texts += [instance.input for instance in task.instances[:20]]
    return texts


@pytest.fixture(scope="module")
def other_tokenizers(collection) -> dict:
    """A word-level and a T5-style SentencePiece tokenizer trained on the sample, offline."""
    from quickstudy.models.tiny import sentencepiece_tokenizer, word_level_tokenizer

    texts = sample_texts(collection)
    return {"word": word_level_tokenizer(texts, 3000), "sentencepiece": sentencepiece_tokenizer(texts, 2000)}


@pytest.mark.superni
@pytest.mark.parametrize("kind", ["word", "sentencepiece"])
def test_split_counting_equals_exact_counting_on_the_sample(collection, other_tokenizers, kind, monkeypatch):
    """Non-byte tokenizers: per-piece counts (re-tokenizing only near the budget) build the
    same prompts as counting every candidate, across budgets that drop examples and cut."""
    tokenizer = other_tokenizers[kind]
    assert type(token_counter(tokenizer, encoding_module.TASK_INPUT_HEAD)) is SplitCounter
    encodings = [encoding_by_name("def_pos2"), encoding_by_name("def_pos2_neg2_expl"), encoding_by_name("input_only")]
    tasks = [collection.task(name) for name in collection.task_names()]

    def every_prompt() -> list:
        return [
            PromptBuilder(task, encoding, tokenizer, budget).build(instance.input)
            for task in tasks
            for encoding in encodings
            for budget in (24, 100, 200, 450, 1024)
            for instance in task.instances[:6]
        ]

    fast = every_prompt()
    monkeypatch.setattr(encoding_module, "token_counter", exact_counter)
    exact = every_prompt()
    assert sum(p.truncated for p in fast) > 100 and sum(p.dropped_examples > 0 for p in fast) > 100
    assert sum(not p.truncated for p in fast) > 500
    assert fast == exact


@pytest.mark.superni
def test_byte_ids_equal_the_tokenizers_on_sample_prompts(collection, byt5, monkeypatch):
    """ByT5 training ids come from the bytes: the same ids, truncation and flags as the tokenizer's."""
    import quickstudy.prompts.features as features_module
    from quickstudy.prompts.features import encode_examples

    tasks = [collection.task(name) for name in collection.task_names()]
    tasks.append(with_special_tokens(tasks[0]))
    texts = [
        example
        for task in tasks
        for example in text_examples(task, task.instances[:8], encoding_by_name("def_pos2"), byt5, 200, seed=0)
    ]
    texts += [
        replace(texts[0], target="caf\u00e9 \u2014 </s> na\u00efve " * 5),
        replace(texts[1], prompt="\u00e9" * 150),
    ]
    fast = {budget: encode_examples(texts, byt5, budget, 12, decoder_only=False) for budget in (64, 200, None)}
    monkeypatch.setattr(features_module, "token_counter", exact_counter)
    for budget, encoded in fast.items():
        assert encoded == encode_examples(texts, byt5, budget, 12, decoder_only=False)
    assert any(e.truncated for e in fast[64]) and not all(e.truncated for e in fast[200])
