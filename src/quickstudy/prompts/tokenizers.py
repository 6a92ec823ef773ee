"""Tokenizers by name, and the token counts the reference encoder's budget asks for.

SuperNI's reference encoder re-tokenizes the whole candidate prompt for every
demonstration it tries to add. `token_counter` returns an object that gives the
same answers: for ByT5's byte tokenizer it adds up per-piece byte lengths instead,
which is exact as long as no piece contains a special-token string (those are
then counted by the tokenizer itself); for any other tokenizer it adds the count of
the task's fixed text to the count of the instance's part, each measured once, and
tokenizes the joined text only when that sum is within a few tokens of the budget.
"""

from __future__ import annotations

import os
from typing import Any

from quickstudy.errors import ModelError, first_line

BYT5 = "byt5"
BYT5_CHATML = "byt5-chatml"  # ByT5's bytes plus ChatML's turn tokens and template (prompts.chat)


def tokenizer_by_name(name: str, trust_remote_code: bool = False) -> Any:
    """A Hugging Face tokenizer: `byt5` or `byt5-chatml` (built in memory, no files), a hub id
    or a local path."""
    if name in (BYT5, BYT5_CHATML):
        from transformers import ByT5Tokenizer

        tokenizer = ByT5Tokenizer()
        if name == BYT5_CHATML:
            from quickstudy.prompts.chat import CHATML_SPECIAL_TOKENS, CHATML_TEMPLATE

            tokenizer.add_special_tokens({"additional_special_tokens": list(CHATML_SPECIAL_TOKENS)})
            tokenizer.chat_template = CHATML_TEMPLATE
        return tokenizer
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, ImportError) as error:
        where = "local folder" if os.path.isdir(name) else "hub id or path"
        raise ModelError(f"tokenizer {name!r} ({where}): cannot be loaded: {first_line(error)}") from None


class TokenCounter:
    """Exact counts from the tokenizer itself: what the reference encoder computes."""

    overhead = 0

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    def count(self, text: str) -> int:
        """Number of input ids for `text`, special tokens included, as the tokenizer returns them."""
        return len(self.tokenizer(text)["input_ids"])

    def piece_length(self, piece: str) -> int | None:
        """Tokens `piece` adds to any prompt it is part of, or None when that is not fixed."""
        return None

    def text_count(self, text: str) -> int | None:
        """What `joined_exceeds` is told about the varying text (None: nothing, it counts the join)."""
        return None

    def joined_exceeds(self, prefix: str, text: str, text_count: int | None, budget: int) -> bool:
        """Whether `prefix + text` has more than `budget` tokens: the reference's check."""
        return self.count(prefix + text) > budget

    def cut(self, text: str, budget: int) -> str:
        """The text of the first `budget` tokens, special tokens skipped (the reference's final cut)."""
        ids = self.tokenizer(text)["input_ids"]
        return self.tokenizer.decode(ids[:budget], skip_special_tokens=True)


class ByteCounter(TokenCounter):
    """ByT5: one token per UTF-8 byte plus one end-of-sequence token.

    Counts add up over pieces as long as no piece holds a special-token string such
    as `</s>` (matched whole, with surrounding spaces stripped); the prompt layout
    puts white space at every boundary between pieces, and no special token of a
    byte tokenizer contains white space, so no such string can span two pieces.
    """

    overhead = 1

    def __init__(self, tokenizer: Any):
        super().__init__(tokenizer)
        self._specials = tuple(tokenizer.added_tokens_encoder)
        self._first_chars = frozenset(token[0] for token in self._specials)

    def _plain(self, text: str) -> bool:
        if not any(char in text for char in self._first_chars):
            return True
        return not any(token in text for token in self._specials)

    def piece_length(self, piece: str) -> int | None:
        return len(piece.encode("utf-8")) if self._plain(piece) else None

    def ids(self, text: str, max_length: int | None = None) -> list[int] | None:
        """The tokenizer's input ids for `text` from its bytes (end-of-sequence last; cut to
        `max_length` keeping it, as truncation does), or None when `text` holds a special-token string."""
        if not self._plain(text):
            return None
        ids = [byte + self.tokenizer.offset for byte in text.encode("utf-8")]
        if max_length is not None:
            ids = ids[: max_length - 1]
        ids.append(self.tokenizer.eos_token_id)
        return ids

    def cut(self, text: str, budget: int) -> str:
        if not self._plain(text):
            return super().cut(text, budget)
        # The first `budget` ids are all bytes (the eos comes last); a character split
        # by the cut is dropped, as the tokenizer's own decode (errors="ignore") does.
        return text.encode("utf-8")[:budget].decode("utf-8", errors="ignore")


class SplitCounter(TokenCounter):
    """Any other tokenizer (word-level, SentencePiece, BPE): the count of `prefix + text`,
    where the prefixes are a task's few fixed texts (definition, kept demonstrations) and
    every text starts with the same `head` (the fixed start of an instance's part), is
    estimated as (tokens the prefix adds in front of `head`) + (tokens of `text`): each
    prefix is tokenized once per task, each text once. Prefix and text meet at white space
    followed by `head`, where a tokenizer that splits at white space (word-level,
    SentencePiece, byte-level BPE) tokenizes the join as the two parts, so the estimate is
    the count; the joined text is still tokenized, as the reference does, whenever the
    estimate is within MARGIN tokens of the budget, so a decision could change only where
    a tokenizer's join differs from its parts by more than MARGIN tokens (tests compare it
    with exact counting on the sample with word-level and SentencePiece tokenizers)."""

    MARGIN = 2

    def __init__(self, tokenizer: Any, head: str = ""):
        super().__init__(tokenizer)
        self.head = head
        self._head_count = self.count(head)
        self._added: dict[str, int] = {}  # prefix -> tokens it adds in front of `head`

    def text_count(self, text: str) -> int | None:
        return self.count(text) if text.startswith(self.head) else None

    def joined_exceeds(self, prefix: str, text: str, text_count: int | None, budget: int) -> bool:
        if text_count is not None:
            added = self._added.get(prefix)
            if added is None:
                added = self._added[prefix] = self.count(prefix + self.head) - self._head_count
            estimate = added + text_count
            if abs(estimate - budget) > self.MARGIN:
                return estimate > budget
        return super().joined_exceeds(prefix, text, text_count, budget)


def token_counter(tokenizer: Any, head: str = "") -> TokenCounter:
    """The fastest exact counter for `tokenizer`: byte arithmetic for a byte tokenizer
    that behaves as one on a probe, else a SplitCounter whose texts start with `head`."""
    from transformers import ByT5Tokenizer

    if isinstance(tokenizer, ByT5Tokenizer) and all(" " not in token for token in tokenizer.added_tokens_encoder):
        counter = ByteCounter(tokenizer)
        probe = "Input: caf\u00e9 \u2014 na\u00efve.\n Output: "
        if counter.ids(probe) == counter.tokenizer(probe)["input_ids"]:
            return counter
    return SplitCounter(tokenizer, head)
