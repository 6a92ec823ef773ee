"""Prompt encodings: SuperNI's reference layout, byte for byte.

The layout and the token-budget rules are those of the encoder Tk-Instruct was
trained and evaluated with (`DataCollatorForNI`, text mode); the tests compare
with its output (the golden prompts found through QUICKSTUDY_GOLDEN). `PromptBuilder` lays out each
piece of a task's prompt once and, under a budget, decides which demonstrations
fit from per-piece token counts where the tokenizer allows it.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from types import MappingProxyType
from typing import Any

from quickstudy.data.records import Example, Task
from quickstudy.errors import PromptError
from quickstudy.prompts.tokenizers import TokenCounter, token_counter


@dataclass(frozen=True)
class Encoding:
    """What a prompt holds. `input_only` means the bare instance input (no-instruction baselines)."""

    name: str
    add_task_definition: bool = True
    num_pos_examples: int = 0
    num_neg_examples: int = 0
    add_explanation: bool = False
    add_task_name: bool = False
    input_only: bool = False

    def __post_init__(self) -> None:
        for field in ("add_task_definition", "add_explanation", "add_task_name", "input_only"):
            if not isinstance(getattr(self, field), bool):
                raise PromptError(f"encoding {self.name!r}: option {field!r} must be true or false")
        for field in ("num_pos_examples", "num_neg_examples"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PromptError(f"encoding {self.name!r}: option {field!r} must be a whole number >= 0")
        if self.input_only and (
            self.add_task_definition or self.add_task_name or self.num_pos_examples or self.num_neg_examples
        ):
            raise PromptError(
                f"encoding {self.name!r}: option 'input_only' excludes definition, task name and examples"
            )

    @property
    def description(self) -> str:
        """What a prompt with this encoding holds, in words (for `quickstudy ls encodings`)."""
        if self.input_only:
            return "the bare instance input, no prompt layout (the no-instruction baselines)"
        parts = ["task name"] if self.add_task_name else []
        parts += ["definition"] if self.add_task_definition else []
        parts += [f"{self.num_pos_examples} positive examples"] if self.num_pos_examples else []
        parts += [f"{self.num_neg_examples} negative examples"] if self.num_neg_examples else []
        held = " + ".join(parts) or "no instruction: the input in the prompt layout"
        return held + (", examples with explanations" if self.add_explanation else "")

    @property
    def has_instructions(self) -> bool:
        """True when a prompt holds any instruction: a definition, the task name or examples."""
        return bool(self.add_task_definition or self.add_task_name or self.num_pos_examples or self.num_neg_examples)

    def options(self) -> dict[str, Any]:
        """The switches alone (no name), as the goldens and study configs write them."""
        options = asdict(self)
        del options["name"]
        return options


def name_for_options(
    add_task_definition: bool,
    num_pos_examples: int,
    num_neg_examples: int,
    add_explanation: bool,
    add_task_name: bool,
) -> str:
    """The conventional name of a set of switches: `name_def_pos2_neg2_expl`, `pos2`, `none`..."""
    parts = ["name"] if add_task_name else []
    parts += ["def"] if add_task_definition else []
    parts += [f"pos{num_pos_examples}"] if num_pos_examples else []
    parts += [f"neg{num_neg_examples}"] if num_neg_examples else []
    parts += ["expl"] if add_explanation else []
    return "_".join(parts) or "none"


def _preset(
    add_task_definition: bool, pos: int = 0, neg: int = 0, expl: bool = False, task_name: bool = False
) -> Encoding:
    name = name_for_options(add_task_definition, pos, neg, expl, task_name)
    return Encoding(name, add_task_definition, pos, neg, expl, task_name)


PRESETS: Mapping[str, Encoding] = MappingProxyType(
    {
        encoding.name: encoding
        for encoding in (
            _preset(True),
            _preset(True, pos=2),
            _preset(True, pos=2, neg=2),
            _preset(True, pos=2, expl=True),
            _preset(True, pos=2, neg=2, expl=True),
            _preset(False, pos=2),
            _preset(True, pos=2, task_name=True),
            _preset(False),
            Encoding("input_only", add_task_definition=False, input_only=True),
        )
    }
)


def encoding_by_name(name: str) -> Encoding:
    """A preset encoding; PromptError listing the valid names for an unknown one."""
    if name not in PRESETS:
        raise PromptError(f"unknown encoding {name!r}; valid names: {', '.join(PRESETS)}")
    return PRESETS[name]


def encoding_from_options(options: Mapping[str, Any]) -> Encoding:
    """A custom encoding from switches (any left out take the Encoding defaults); the name
    is derived from the switches unless given."""
    known = {field.name for field in fields(Encoding)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise PromptError(
            f"encoding options: unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
        )
    values = {field.name: field.default for field in fields(Encoding) if field.name != "name"}
    values.update({key: value for key, value in options.items() if key != "name"})
    if values["input_only"] and "add_task_definition" not in options:
        values["add_task_definition"] = False
    name = options.get("name") or (
        "input_only"
        if values["input_only"]
        else name_for_options(
            values["add_task_definition"],
            values["num_pos_examples"],
            values["num_neg_examples"],
            values["add_explanation"],
            values["add_task_name"],
        )
    )
    return Encoding(name=str(name), **values)


def resolve_encoding(value: str | Mapping[str, Any] | Encoding) -> Encoding:
    """An Encoding from a preset name, a mapping of options, or an Encoding as is."""
    if isinstance(value, Encoding):
        return value
    if isinstance(value, str):
        return encoding_by_name(value)
    if isinstance(value, Mapping):
        return encoding_from_options(value)
    raise PromptError(f"encoding must be a preset name or a mapping of options, not {type(value).__name__}")


# --- the reference layout, piece by piece ---------------------------------------


def closed(text: str) -> str:
    """`text` ending in punctuation: "." appended unless it ends in string.punctuation already."""
    return text if text and text[-1] in string.punctuation else text + "."


# The fixed start of every instance's part of a prompt (what a SplitCounter's texts start with).
TASK_INPUT_HEAD = "Now complete the following example -\n"


def task_input_text(instance_input: str) -> str:
    return TASK_INPUT_HEAD + closed(f"Input: {instance_input.strip()}") + "\nOutput: "


def definition_text(definition: str) -> str:
    return closed(f"Definition: {definition.strip()}") + "\n\n"


def example_text(kind: str, number: int, example: Example, add_explanation: bool) -> str:
    """One demonstration; `kind` is "Positive" or "Negative", `number` 1-based."""
    text = f" {kind} Example {number} -\n"
    text += closed(f"Input: {example.input.strip()}") + "\n"
    text += closed(f" Output: {example.output.strip()}") + "\n"
    # The reference writes " Explanation: ." for an empty explanation; only a missing one is skipped.
    if add_explanation and example.explanation is not None:
        text += closed(f" Explanation: {example.explanation.strip()}") + "\n"
    return text + "\n"


@dataclass(frozen=True)
class BuiltPrompt:
    """A prompt and what the budget did to it: demonstrations dropped, and whether the
    text was finally cut at the budget."""

    text: str
    truncated: bool = False
    dropped_examples: int = 0


class PromptBuilder:
    """Prompts for one task under one encoding, optionally within `max_source_length`
    tokens of `tokenizer` (the reference's budget rules)."""

    def __init__(
        self,
        task: Task,
        encoding: Encoding,
        tokenizer: Any = None,
        max_source_length: int | None = None,
    ):
        if max_source_length is not None and tokenizer is None:
            raise PromptError(f"task {task.name!r}: a max source length needs a tokenizer to count tokens")
        if max_source_length is not None and max_source_length < 1:
            raise PromptError(f"task {task.name!r}: max source length must be at least 1, not {max_source_length}")
        self.task = task
        self.encoding = encoding
        self.budget = max_source_length
        self._counter: TokenCounter | None = (
            token_counter(tokenizer, TASK_INPUT_HEAD) if max_source_length is not None else None
        )
        self._name = task.name + ". " if encoding.add_task_name else ""
        self._definition = definition_text(task.definition) if encoding.add_task_definition else ""
        self._positives = [
            example_text("Positive", number, example, encoding.add_explanation)
            for number, example in enumerate(task.positive_examples[: encoding.num_pos_examples], start=1)
        ]
        self._negatives = [
            example_text("Negative", number, example, encoding.add_explanation)
            for number, example in enumerate(task.negative_examples[: encoding.num_neg_examples], start=1)
        ]
        self._all_examples = "".join(self._positives) + "".join(self._negatives)
        self._lengths: dict[str, int | None] = {}
        if self._counter is not None:
            for piece in (self._name, self._definition, " ", *self._positives, *self._negatives):
                self._lengths[piece] = self._counter.piece_length(piece)

    def prompt(self, instance_input: str) -> str:
        """The prompt text for one instance input."""
        return self.build(instance_input).text

    def build(self, instance_input: str) -> BuiltPrompt:
        """The prompt for one instance input, with what the budget dropped or cut."""
        if self.encoding.input_only:
            return self._within_budget([instance_input], self._over_budget(instance_input), dropped=0)
        task_input = task_input_text(instance_input)
        if self._counter is None:
            return BuiltPrompt(self._name + self._definition + self._all_examples + task_input)
        over = self._over_budget(task_input)
        # The reference checks each candidate against the kept ones joined with a space,
        # although the final prompt joins them with nothing: reproduced on purpose.
        positives = self._kept(self._positives, [self._definition], task_input, over)
        negatives = self._kept(self._negatives, [self._definition, *_spaced(positives)], task_input, over)
        dropped = len(self._positives) - len(positives) + len(self._negatives) - len(negatives)
        pieces = [self._name, self._definition, *positives, *negatives, task_input]
        return self._within_budget(pieces, over, dropped)

    def _over_budget(self, varying: str) -> Callable[[list[str]], bool]:
        """Whether the concatenated pieces (the last one `varying`) have more tokens than the
        budget: their counts summed when every piece's count is fixed, otherwise the
        counter's answer for the fixed pieces joined, followed by `varying`."""
        counter, budget = self._counter, self.budget
        if counter is None or budget is None:
            return lambda pieces: False
        lengths = dict(self._lengths)
        lengths[varying] = counter.piece_length(varying)
        if all(length is not None for length in lengths.values()):
            return lambda pieces: counter.overhead + sum(lengths[piece] for piece in pieces) > budget  # type: ignore[misc]
        varying_count = counter.text_count(varying)
        return lambda pieces: counter.joined_exceeds("".join(pieces[:-1]), varying, varying_count, budget)

    def _kept(
        self, candidates: list[str], before: list[str], task_input: str, over: Callable[[list[str]], bool]
    ) -> list[str]:
        kept: list[str] = []
        for candidate in candidates:
            if over([*before, *_spaced(kept), candidate, task_input]):
                break
            kept.append(candidate)
        return kept

    def _within_budget(self, pieces: list[str], over: Callable[[list[str]], bool], dropped: int) -> BuiltPrompt:
        text = "".join(pieces)
        if self._counter is None or self.budget is None or not over(pieces):
            return BuiltPrompt(text, truncated=False, dropped_examples=dropped)
        return BuiltPrompt(self._counter.cut(text, self.budget), truncated=True, dropped_examples=dropped)


def _spaced(pieces: list[str]) -> list[str]:
    """`pieces` with " " between them: " ".join as a list of pieces."""
    spaced: list[str] = []
    for index, piece in enumerate(pieces):
        spaced += [" ", piece] if index else [piece]
    return spaced
