"""Chat-template prompts for decoder-only instruct models: the SuperNI prompt as the user
message, the target as the assistant's, one rendering for training and generation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import ByT5Tokenizer

from quickstudy.data.collection import Collection
from quickstudy.data.records import Instance, Task
from quickstudy.errors import PromptError
from quickstudy.evaluate.generate import generate_predictions, prompt_ids
from quickstudy.models.loading import MODEL_INFO, BaseModelCache, load_model, save_model
from quickstudy.models.spec import ModelSpec
from quickstudy.prompts.chat import ChatTemplate
from quickstudy.prompts.encoding import PRESETS
from quickstudy.prompts.features import IGNORE_INDEX, encode_examples, text_examples
from quickstudy.prompts.tokenizers import tokenizer_by_name

# Meta's Llama-3-Instruct template (its tokenizer_config.json), written into a byte tokenizer.
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)


def llama3_tokenizer() -> ByT5Tokenizer:
    tokenizer = ByT5Tokenizer()
    tokenizer.add_special_tokens(
        {"bos_token": "<|begin_of_text|>", "additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]}
    )  # fmt: skip
    tokenizer.chat_template = LLAMA3_TEMPLATE
    return tokenizer


TEMPLATES = {
    "chatml": (lambda: tokenizer_by_name("byt5-chatml"), "<|im_end|>"),
    "llama3": (llama3_tokenizer, "<|eot_id|>"),
}


@pytest.fixture(params=sorted(TEMPLATES))
def chat_tokenizer(request):
    make, end_of_turn = TEMPLATES[request.param]
    return make(), end_of_turn


def test_training_conversation_starts_with_the_generation_prompt_and_labels_cover_only_the_answer(
    chat_tokenizer, synth_collection: Path
):
    tokenizer, end_of_turn = chat_tokenizer
    chat = ChatTemplate(tokenizer)
    assert chat.end_of_turn_id == tokenizer.convert_tokens_to_ids(end_of_turn)
    task = Collection(synth_collection).task("task066_coref_referent")
    plain = text_examples(task, task.instances[:8], PRESETS["def_pos2"])
    budget = max(len(tokenizer(e.prompt)["input_ids"]) for e in plain) + 4  # room for every plain prompt
    examples = text_examples(task, task.instances[:8], PRESETS["def_pos2"], tokenizer, budget, 0, chat_template=True)
    encoded = encode_examples(examples, tokenizer, budget, 128, decoder_only=True, chat_template=True)
    generation = prompt_ids(tokenizer, [e.prompt for e in examples], False, budget, chat_template=True)
    for example, item, prompt in zip(examples, encoded, generation):
        head = tokenizer.decode(prompt)
        assert head == chat.prompt_text(example.prompt)  # the generation prompt, as the template renders it
        assert chat.conversation_text(example.prompt, example.target).startswith(head)  # byte for byte
        assert tokenizer.decode(item.input_ids).startswith(head)
        assert item.input_ids[: len(prompt)] == prompt  # the very ids generation continues
        assert len(prompt) <= budget  # the budget counts the template's tokens
        assert item.labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
        answer = item.labels[len(prompt) :]
        assert answer == item.input_ids[len(prompt) :] and answer[-1] == chat.end_of_turn_id
        assert tokenizer.decode(answer[:-1]) == example.target.strip()  # the answer and nothing else
    # the template's tokens come out of the SuperNI prompt's budget: its prompts are shorter
    assert sum(len(e.prompt) for e in examples) < sum(len(e.prompt) for e in plain)
    assert any(e.dropped_examples or e.truncated for e in examples)


def test_a_long_answer_is_cut_before_the_end_of_turn_token():
    tokenizer = tokenizer_by_name("byt5-chatml")
    instance = Instance(id="t-0", input="x", references=("a long target " * 10,))
    (example,) = text_examples(Task(name="t", definition="Repeat."), [instance], PRESETS["none"])
    (item,) = encode_examples([example], tokenizer, None, 8, decoder_only=True, chat_template=True)
    answer = [label for label in item.labels if label != IGNORE_INDEX]
    assert len(answer) == 8 and answer[-1] == ChatTemplate(tokenizer).end_of_turn_id
    assert tokenizer.decode(answer[:-1]) == "a long "


def test_auto_uses_the_template_of_a_decoder_only_model_and_a_saved_model_keeps_the_choice(tmp_path: Path):
    cache = BaseModelCache(max_entries=0)
    assert load_model(ModelSpec(name_or_path="tiny-llama", tokenizer="byt5-chatml"), cache=cache).chat_template
    assert not load_model(ModelSpec(name_or_path="tiny-llama"), cache=cache).chat_template  # no template: as before
    assert not load_model(ModelSpec(name_or_path="tiny-t5", tokenizer="byt5-chatml"), cache=cache).chat_template
    off = load_model(ModelSpec(name_or_path="tiny-llama", tokenizer="byt5-chatml", chat_template=False), cache=cache)
    assert not off.chat_template
    with pytest.raises(PromptError, match="decoder-only models only"):
        load_model(ModelSpec(name_or_path="tiny-t5", tokenizer="byt5-chatml", chat_template=True), cache=cache)
    with pytest.raises(PromptError, match="has no chat template"):
        load_model(ModelSpec(name_or_path="tiny-llama", chat_template=True), cache=cache)
    save_model(off, tmp_path / "off")
    assert json.loads((tmp_path / "off" / MODEL_INFO).read_text())["chat_template"] is False
    reloaded = load_model(ModelSpec(name_or_path=str(tmp_path / "off")), cache=cache)
    assert reloaded.tokenizer.chat_template and not reloaded.chat_template  # trained without: evaluated without


def test_generation_stops_at_the_end_of_turn_token():
    """A model whose every next token is <|im_end|>: with the template generation stops after
    one step; without it (<|im_end|> is not the byte tokenizer's end of sequence) it runs on."""
    loaded = load_model(ModelSpec(name_or_path="tiny-llama", tokenizer="byt5-chatml"), cache=BaseModelCache(0))
    head = loaded.model.lm_head
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        biased.weight.zero_()
        biased.bias.zero_()
        biased.bias[ChatTemplate(loaded.tokenizer).end_of_turn_id] = 10.0
    loaded.model.lm_head = biased
    steps = []
    loaded.model.register_forward_hook(lambda *_: steps.append(1))
    assert generate_predictions(loaded, ["Input: 1\nOutput: "], max_new_tokens=6, progress=False) == [""]
    assert len(steps) == 1
    steps.clear()
    generate_predictions(loaded, ["Input: 1\nOutput: "], max_new_tokens=6, progress=False, chat_template=False)
    assert len(steps) == 6


def test_prompts_command_shows_the_templated_text(synth_collection: Path, quickstudy):
    spec = "{name_or_path: tiny-llama, tokenizer: byt5-chatml}"
    code, out, _ = quickstudy(
        "prompts", str(synth_collection), "--task", "task066_coref_referent", "--encoding", "def", "--model", spec,
        "--limit", "1",
    )  # fmt: skip
    assert code == 0
    prompt = json.loads(out)["prompt"]
    assert prompt.startswith("<|im_start|>user\nDefinition: ") and prompt.endswith(
        "<|im_end|>\n<|im_start|>assistant\n"
    )
    code, out, _ = quickstudy(
        "prompts", str(synth_collection), "--task", "task066_coref_referent", "--encoding", "def", "--model", "tiny-llama",
        "--limit", "1",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["prompt"].startswith("Definition: ")
