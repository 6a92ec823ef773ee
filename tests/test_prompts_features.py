"""Text examples, token ids, the token cache, tokenizers by name and `quickstudy prompts`."""

from __future__ import annotations

import json

import pytest
from transformers import ByT5Tokenizer

import quickstudy.prompts.cache as cache_module
from quickstudy.data.collection import Collection
from quickstudy.errors import ModelError
from quickstudy.prompts.cache import cached_encoded_examples
from quickstudy.prompts.encoding import PRESETS
from quickstudy.prompts.features import (
    IGNORE_INDEX,
    chosen_reference,
    decoder_prompt_ids,
    encode_examples,
    text_examples,
)
from quickstudy.prompts.tokenizers import tokenizer_by_name

MULTI_REFERENCE_TASK = "task039_qasc_find_overlapping_words"  # instances with up to 6 references


@pytest.fixture(scope="module")
def collection(sample_dir) -> Collection:
    return Collection(sample_dir)


@pytest.fixture(scope="module")
def byt5() -> ByT5Tokenizer:
    return ByT5Tokenizer()


@pytest.fixture(scope="module")
def word_tokenizer(collection):
    """A word-level tokenizer with bos/eos trained offline on a sample task (a decoder-only setup)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    task = collection.task(MULTI_REFERENCE_TASK)
    words = Tokenizer(models.WordLevel(unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = [task.definition] + [i.input + " " + " ".join(i.references) for i in task.instances]
    words.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>", "<s>", "</s>"]))
    words.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", words.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=words, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )


@pytest.mark.superni
def test_targets_are_one_seeded_reference_and_all_references_are_kept(collection):
    task = collection.task(MULTI_REFERENCE_TASK)
    multi = [instance for instance in task.instances if len(instance.references) > 1]
    examples = text_examples(task, multi, PRESETS["def_pos2"], seed=1)
    assert [e.references for e in examples] == [i.references for i in multi]
    assert all(e.target in e.references for e in examples)
    assert examples == text_examples(task, multi, PRESETS["def_pos2"], seed=1)
    assert [e.target for e in examples] != [e.target for e in text_examples(task, multi, PRESETS["def_pos2"], seed=2)]
    picks = {chosen_reference(("a", "b", "c"), seed, "t", "i") for seed in range(40)}
    assert picks == {"a", "b", "c"}
    # the choice for an instance does not depend on which other instances are in the sample
    assert text_examples(task, multi[3:4], PRESETS["def_pos2"], seed=1)[0] == examples[3]


@pytest.mark.superni
def test_seq2seq_ids_are_the_tokenizers_cut_to_the_lengths(collection, byt5):
    task = collection.task(MULTI_REFERENCE_TASK)
    examples = text_examples(task, task.instances[:6], PRESETS["def_pos2"], byt5, 256)
    encoded = encode_examples(examples, byt5, 256, 8, decoder_only=False)
    for example, item in zip(examples, encoded):
        full = byt5(example.prompt)["input_ids"]
        assert item.input_ids == (full if len(full) <= 256 else full[:255] + [byt5.eos_token_id])
        assert len(item.input_ids) <= 256
        target = byt5(example.target)["input_ids"]
        assert item.labels == (target if len(target) <= 8 else target[:7] + [byt5.eos_token_id])
        assert item.truncated == example.truncated
    assert any(item.truncated for item in encoded)
    untruncated = encode_examples(text_examples(task, task.instances[:2], PRESETS["def_pos2"]), byt5, 64, None, False)
    assert all(item.truncated and len(item.input_ids) == 64 for item in untruncated)


@pytest.mark.superni
def test_decoder_only_masks_the_prompt_and_ends_with_eos(collection, word_tokenizer):
    task = collection.task(MULTI_REFERENCE_TASK)
    examples = text_examples(task, task.instances[:4], PRESETS["def"], word_tokenizer, 200)
    encoded = encode_examples(examples, word_tokenizer, 200, 5, decoder_only=True)
    for example, item in zip(examples, encoded):
        prompt_ids = decoder_prompt_ids(word_tokenizer, example.prompt)
        assert prompt_ids[0] == word_tokenizer.bos_token_id and word_tokenizer.eos_token_id not in prompt_ids
        target_ids = word_tokenizer(example.target, add_special_tokens=False)["input_ids"][:4] + [
            word_tokenizer.eos_token_id
        ]
        assert item.input_ids == prompt_ids + target_ids
        assert item.labels == [IGNORE_INDEX] * len(prompt_ids) + target_ids
        assert word_tokenizer.decode(item.input_ids[len(prompt_ids) : -1]).split() == example.target.split()[:4]


@pytest.mark.superni
def test_decoder_only_chat_template(collection, word_tokenizer):
    task = collection.task(MULTI_REFERENCE_TASK)
    tokenizer = word_tokenizer.__class__(
        tokenizer_object=word_tokenizer.backend_tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tokenizer.chat_template = "{% for m in messages %}<s> {{ m['role'] }} {{ m['content'] }} </s>{% endfor %}{% if add_generation_prompt %}<s> assistant{% endif %}"
    example = text_examples(task, task.instances[:1], PRESETS["none"])[0]
    item = encode_examples([example], tokenizer, None, None, decoder_only=True, chat_template=True)[0]
    prompt_ids = tokenizer(f"<s> user {example.prompt} </s><s> assistant", add_special_tokens=False)["input_ids"]
    assert item.input_ids[: len(prompt_ids)] == prompt_ids
    assert item.labels[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    assert item.labels[len(prompt_ids) :] == item.input_ids[len(prompt_ids) :]
    assert item.labels[-1] == tokenizer.eos_token_id  # the answer's turn ends with </s>, the last label


@pytest.mark.superni
def test_token_cache_hit_returns_identical_ids_without_tokenizing(collection, byt5, tmp_path, monkeypatch):
    task = collection.task(MULTI_REFERENCE_TASK)
    arguments = dict(
        task=task,
        instances=task.instances[:20],
        encoding=PRESETS["def_pos2"],
        tokenizer=byt5,
        max_source_length=300,
        max_target_length=16,
        decoder_only=False,
        seed=3,
    )
    first = cached_encoded_examples(tmp_path, **arguments)
    assert first == encode_examples(
        text_examples(task, task.instances[:20], PRESETS["def_pos2"], byt5, 300, 3), byt5, 300, 16, False
    )
    assert len(list(tmp_path.glob("*.npz"))) == 1

    def no_tokenizing(*_args, **_kwargs):
        raise AssertionError("a cache hit must not tokenize")

    with monkeypatch.context() as patched:
        patched.setattr(cache_module, "text_examples", no_tokenizing)
        patched.setattr(cache_module, "encode_examples", no_tokenizing)
        assert cached_encoded_examples(tmp_path, **arguments) == first
        with pytest.raises(AssertionError, match="must not tokenize"):
            cached_encoded_examples(tmp_path, **{**arguments, "max_source_length": 301})
        with pytest.raises(AssertionError, match="must not tokenize"):
            cached_encoded_examples(tmp_path, **{**arguments, "instances": task.instances[1:21]})

    entry = next(tmp_path.glob("*.npz"))
    entry.write_bytes(b"PK\x03\x04 not a zip")
    assert cached_encoded_examples(tmp_path, **arguments) == first
    assert not list(tmp_path.glob("*.tmp"))


def test_tokenizer_fingerprint_follows_changes_to_the_same_tokenizer():
    from quickstudy.prompts.cache import tokenizer_fingerprint

    tokenizer = ByT5Tokenizer()
    before = tokenizer_fingerprint(tokenizer)
    assert tokenizer_fingerprint(ByT5Tokenizer()) == before
    tokenizer.add_tokens(["<sep>"])
    after_token = tokenizer_fingerprint(tokenizer)
    tokenizer.chat_template = "{{ messages[0]['content'] }}"
    assert len({before, after_token, tokenizer_fingerprint(tokenizer)}) == 3


def test_tokenizers_by_name(tmp_path, monkeypatch):
    import huggingface_hub.constants

    # offline: the hub is never reached (the constant is read once, when huggingface_hub is imported)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    byt5 = tokenizer_by_name("byt5")
    assert byt5("ab")["input_ids"] == [ord("a") + 3, ord("b") + 3, byt5.eos_token_id]
    byt5.save_pretrained(tmp_path / "saved")
    assert tokenizer_by_name(str(tmp_path / "saved"))("ab")["input_ids"] == byt5("ab")["input_ids"]
    with pytest.raises(
        ModelError, match=r"tokenizer 'quickstudy-no-such-org/no-such-tokenizer'.*cannot be loaded"
    ) as raised:
        tokenizer_by_name("quickstudy-no-such-org/no-such-tokenizer")
    assert "\n" not in str(raised.value)


@pytest.mark.superni
def test_prompts_command_prints_the_golden_prompts(sample_dir, golden_dir, quickstudy):
    code, out, err = quickstudy(
        "prompts",
        str(sample_dir),
        "--task",
        "task1390_wscfixed_coreference",
        "--task",
        "task620_ohsumed_medical_subject_headings_answer_generation",
        "--encoding",
        "def_pos2_neg2_expl",
        "--tokenizer",
        "byt5",
        "--max-source-length",
        "256",
        "--limit",
        "3",
    )
    assert code == 0, err
    printed = [json.loads(line) for line in out.splitlines()]
    golden = [json.loads(line) for line in (golden_dir / "prompts.jsonl").read_text(encoding="utf-8").splitlines()]
    expected = [
        {"task": g["task"], "instance_id": g["instance_id"], "prompt": g["prompt"]}
        for name in ("task1390_wscfixed_coreference", "task620_ohsumed_medical_subject_headings_answer_generation")
        for g in golden
        if g["task"] == name and g["encoding"] == "def_pos2_neg2_expl" and g["max_source_length"] == 256
    ]
    assert printed == expected and len(printed) == 6


@pytest.mark.superni
def test_prompts_command_all_tasks_untruncated(sample_dir, quickstudy):
    code, out, _ = quickstudy("prompts", str(sample_dir), "--task", "all", "--encoding", "input_only", "--limit", "2")
    records = [json.loads(line) for line in out.splitlines()]
    collection = Collection(sample_dir)
    assert code == 0 and len(records) == 2 * len(collection.task_names())
    first = collection.task(records[0]["task"]).instances[0]
    assert records[0] == {"task": collection.task_names()[0], "instance_id": first.id, "prompt": first.input}


@pytest.mark.superni
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--task", "task999_missing", "--encoding", "def"], "task 'task999_missing' not found"),
        (["--task", "all", "--encoding", "def_pos9"], "unknown encoding 'def_pos9'; valid names: def, def_pos2"),
        (["--task", "all", "--encoding", "def", "--max-source-length", "64"], "--max-source-length needs --tokenizer"),
    ],
)
def test_prompts_command_bad_input_is_one_line(sample_dir, quickstudy, arguments, message):
    code, out, err = quickstudy("prompts", str(sample_dir), *arguments)
    assert code != 0 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1
