"""SuperNI prompts through a tokenizer's chat template (instruct models of today).

The SuperNI prompt is the user message and the target the assistant message. Training
and generation share one rendering: the generation prompt (the conversation up to the
assistant's turn) is a byte-for-byte prefix of the rendered training conversation, so the
ids a model is trained to continue are the ids it is asked to continue. Labels cover the
assistant's tokens and its end-of-turn token only; generation stops at that token; the
prompt's token budget counts the tokens the template adds around the user message.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from quickstudy.errors import PromptError

ChatTemplateSetting = Literal["auto"] | bool

# A ChatML template (the layout of Qwen2.5-Instruct and many others, without a system message):
# what the offline `byt5-chatml` tokenizer carries, so tests and demos run a real chat template.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CHATML_SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>")
_PROBE = "x"
_SENTINEL = "\x00answer\x00"


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def uses_chat_template(setting: ChatTemplateSetting, tokenizer: Any, is_seq2seq: bool, where: str = "model") -> bool:
    """Whether prompts go through the tokenizer's chat template: `auto` when the tokenizer has
    one and the model is decoder-only; `true` requires both (PromptError naming `where`)."""
    if setting == "auto":
        return has_chat_template(tokenizer) and not is_seq2seq
    if not setting:
        return False
    if is_seq2seq:
        raise PromptError(f"{where}: chat_template: true applies to decoder-only models only")
    if not has_chat_template(tokenizer):
        raise PromptError(
            f"{where}: chat_template: true, but tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no chat template"
        )
    return True


@dataclass(frozen=True)
class ChatTemplate:
    """A tokenizer's chat template applied to SuperNI prompts and targets."""

    tokenizer: Any

    def prompt_text(self, prompt: str) -> str:
        """The conversation up to the assistant's turn: what generation continues."""
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )

    def conversation_text(self, prompt: str, target: str) -> str:
        """The whole training conversation: the prompt as the user's turn, the target as the assistant's."""
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": target}], tokenize=False
        )

    def answer_text(self, prompt: str, target: str) -> str:
        """What the conversation adds after the generation prompt (the answer and end of turn)."""
        head, whole = self.prompt_text(prompt), self.conversation_text(prompt, target)
        if not whole.startswith(head):
            raise PromptError(
                f"tokenizer {getattr(self.tokenizer, 'name_or_path', '?')!r}: its chat template renders the "
                "generation prompt differently from the start of the conversation, so training and generation "
                "would disagree (set chat_template: false)"
            )
        return whole[len(head) :]

    def prompt_ids(self, prompt: str) -> list[int]:
        return list(self.tokenizer(self.prompt_text(prompt), add_special_tokens=False)["input_ids"])

    def answer_ids(self, prompt: str, target: str, max_target_length: int | None) -> list[int]:
        """The answer's ids up to and including the end-of-turn token, the answer cut to
        `max_target_length - 1` tokens so the end of turn always stays."""
        ids = list(self.tokenizer(self.answer_text(prompt, target), add_special_tokens=False)["input_ids"])
        end = ids.index(self.end_of_turn_id) if self.end_of_turn_id in ids else len(ids)
        answer = ids[:end]
        if max_target_length is not None:
            answer = answer[: max(max_target_length - 1, 0)]
        return [*answer, self.end_of_turn_id]

    @cached_property
    def end_of_turn_id(self) -> int:
        """The first special token the template writes after an assistant message (`<|im_end|>`,
        `<|eot_id|>`), else the tokenizer's end of sequence."""
        whole = self.conversation_text(_PROBE, _SENTINEL)
        after = whole[whole.index(_SENTINEL) + len(_SENTINEL) :] if _SENTINEL in whole else ""
        special = set(self.tokenizer.all_special_ids)
        for token in self.tokenizer(after, add_special_tokens=False)["input_ids"]:
            if token in special:
                return int(token)
        if self.tokenizer.eos_token_id is None:
            raise PromptError(
                f"tokenizer {getattr(self.tokenizer, 'name_or_path', '?')!r}: its chat template ends an assistant "
                "turn with no special token and it has no end-of-sequence token"
            )
        return int(self.tokenizer.eos_token_id)

    @cached_property
    def overhead(self) -> int:
        """Tokens the template adds to a prompt, over the tokenizer's own count of the prompt."""
        return len(self.prompt_ids(_PROBE)) - len(self.tokenizer(_PROBE)["input_ids"])

    def stop_ids(self) -> list[int]:
        """Where generation stops: the end-of-turn token, and end of sequence."""
        eos = self.tokenizer.eos_token_id
        return [self.end_of_turn_id] + ([eos] if eos is not None and eos != self.end_of_turn_id else [])


def source_budget(tokenizer: Any, max_source_length: int | None, chat_template: bool) -> int | None:
    """The token budget left for the SuperNI prompt text once the template's own tokens are counted."""
    if max_source_length is None or not chat_template:
        return max_source_length
    budget = max_source_length - ChatTemplate(tokenizer).overhead
    if budget < 1:
        raise PromptError(
            f"max_source_length {max_source_length} leaves no room for a prompt: the chat template alone takes "
            f"{ChatTemplate(tokenizer).overhead} tokens"
        )
    return budget


def templated_prompt_ids(tokenizer: Any, prompt: str, max_source_length: int | None) -> tuple[list[int], bool]:
    """The generation prompt's ids within `max_source_length` and whether the prompt was cut to
    fit: where the tokens of prompt and template do not add up exactly, the user message is
    shortened, the template's head and tail kept."""
    chat = ChatTemplate(tokenizer)
    ids = chat.prompt_ids(prompt)
    cut = False
    for _ in range(4):
        if max_source_length is None or len(ids) <= max_source_length:
            return ids, cut
        content = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        keep = max(len(content) - (len(ids) - max_source_length), 0)
        prompt, cut = tokenizer.decode(content[:keep], skip_special_tokens=True), True
        ids = chat.prompt_ids(prompt)
    return ids[:max_source_length], True
