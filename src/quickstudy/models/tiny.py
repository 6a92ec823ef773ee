"""Tiny offline models and tokenizers, for tests and the demo.

Nothing here touches the network: models are built from a config with seeded
random weights, tokenizers are ByT5's byte tokenizer (no files needed) or a
word-level tokenizer trained on the fly with `tokenizers`.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import (
    ByT5Tokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from quickstudy.errors import ModelError

# name -> what it is (for `quickstudy ls models`)
TINY_MODELS = MappingProxyType(
    {
        "tiny-t5": "a small T5 (encoder-decoder) with seeded random weights, built offline from a config",
        "tiny-llama": "a small Llama (decoder-only) with seeded random weights, built offline from a config",
    }
)
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")


def is_tiny_name(name: str) -> bool:
    return name in TINY_MODELS


def byte_tokenizer() -> ByT5Tokenizer:
    """ByT5's byte-level tokenizer: 256 bytes + specials, appends </s>."""
    return ByT5Tokenizer()


def word_level_tokenizer(texts: Iterable[str], vocab_size: int = 8000) -> PreTrainedTokenizerFast:
    """A word-level tokenizer trained on `texts`: words and punctuation runs are
    tokens, the rest is <unk>; like T5's tokenizer it appends </s>."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return _appending_eos(tokenizer)


def sentencepiece_tokenizer(texts: Iterable[str], vocab_size: int = 8000) -> PreTrainedTokenizerFast:
    """A T5-style SentencePiece (unigram) tokenizer trained on `texts`, offline: T5's
    normalizer and Metaspace pre-tokenizer ("▁" marks a word start); appends </s>."""
    from tokenizers.implementations import SentencePieceUnigramTokenizer

    trained = SentencePieceUnigramTokenizer()
    trained.train_from_iterator(
        texts, vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), unk_token="<unk>", show_progress=False
    )
    return _appending_eos(trained._tokenizer)


def _appending_eos(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """The trained tokenizer as a transformers tokenizer that appends </s>, as T5's does."""
    eos_id = tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos_id)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def tiny_model(
    name: str, tokenizer: PreTrainedTokenizerBase, seed: int = 0, overrides: dict[str, Any] | None = None
) -> PreTrainedModel:
    """A small randomly initialised model sized to `tokenizer`; the same seed gives the same weights."""
    vocab_size = len(tokenizer)
    pad_id, eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    if pad_id is None or eos_id is None:
        raise ModelError(f"model {name!r}: its tokenizer needs pad and eos tokens")
    overrides = overrides or {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "tiny-t5":
            defaults = dict(
                d_model=128, d_kv=32, d_ff=256, num_layers=2, num_decoder_layers=2, num_heads=4, dropout_rate=0.1
            )
            config = T5Config(
                vocab_size=vocab_size, pad_token_id=pad_id, eos_token_id=eos_id, decoder_start_token_id=pad_id,
                **{**defaults, **overrides},
            )  # fmt: skip
            return T5ForConditionalGeneration(config)
        if name == "tiny-llama":
            defaults = dict(
                hidden_size=128,
                intermediate_size=256,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=4,
                max_position_embeddings=4096,
                tie_word_embeddings=False,
            )
            config = LlamaConfig(
                vocab_size=vocab_size, pad_token_id=pad_id, eos_token_id=eos_id, bos_token_id=eos_id,
                **{**defaults, **overrides},
            )  # fmt: skip
            return LlamaForCausalLM(config)
    raise ModelError(f"model {name!r}: unknown tiny model (known: {', '.join(TINY_MODELS)})")
