"""On-disk cache of token ids: encode a task's sample once, reuse it in every run.

The key is a hash of everything the ids depend on: the task's content, the
instances (ids, inputs, references, in order), the encoding, the tokenizer
(class, vocabulary, special tokens, chat template, transformers version), the
lengths, the model kind and the seed. Entries are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import weakref
import zipfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from quickstudy.data.records import Instance, Task
from quickstudy.prompts.encoding import Encoding
from quickstudy.prompts.features import EncodedExample, encode_examples, text_examples

CACHE_FORMAT = 1  # bump when the prompt layout or the encoding of ids changes


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def task_fingerprint(task: Task, instances: Sequence[Instance]) -> str:
    """Hash of the task text a prompt can hold and of the instances, in order."""
    return _digest(
        {
            "name": task.name,
            "definition": task.definition,
            "positive": [asdict(example) for example in task.positive_examples],
            "negative": [asdict(example) for example in task.negative_examples],
            "instances": [[instance.id, instance.input, list(instance.references)] for instance in instances],
        }
    )


_FINGERPRINTS: weakref.WeakKeyDictionary[Any, tuple[tuple, str]] = weakref.WeakKeyDictionary()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Hash of what decides a tokenizer's ids: class, vocabulary, special tokens, chat template.
    Remembered per tokenizer object (hashing a large vocabulary for every task adds up) while
    its size, special tokens and chat template stay as they were."""
    import transformers

    special = {key: str(value) for key, value in tokenizer.special_tokens_map.items()}
    chat_template = str(getattr(tokenizer, "chat_template", None))
    stamp = (len(tokenizer), json.dumps(special, sort_keys=True), chat_template)
    try:
        remembered = _FINGERPRINTS.get(tokenizer)
    except TypeError:  # not weakly referenceable: hash every time
        remembered = None
    if remembered is not None and remembered[0] == stamp:
        return remembered[1]
    fingerprint = _digest(
        {
            "class": type(tokenizer).__name__,
            "transformers": transformers.__version__,
            "vocab": sorted(tokenizer.get_vocab().items()),
            "special": special,
            "chat_template": chat_template,
        }
    )
    try:
        _FINGERPRINTS[tokenizer] = (stamp, fingerprint)
    except TypeError:
        pass
    return fingerprint


def cached_encoded_examples(
    cache_dir: str | Path,
    task: Task,
    instances: Sequence[Instance],
    encoding: Encoding,
    tokenizer: Any,
    max_source_length: int | None,
    max_target_length: int | None,
    decoder_only: bool,
    seed: int = 0,
    chat_template: bool = False,
) -> list[EncodedExample]:
    """`encode_examples(text_examples(...))` for these instances, read from `cache_dir`
    when encoded before with the same inputs, else encoded and stored there."""
    key = _digest(
        {
            "format": CACHE_FORMAT,
            "task": task_fingerprint(task, instances),
            "encoding": asdict(encoding),
            "tokenizer": tokenizer_fingerprint(tokenizer),
            "max_source_length": max_source_length,
            "max_target_length": max_target_length,
            "decoder_only": decoder_only,
            "chat_template": chat_template,
            "seed": seed,
        }
    )
    path = Path(cache_dir) / f"{task.name}-{key[:24]}.npz"
    if path.is_file():
        cached = _read(path)
        if cached is not None and len(cached) == len(instances):
            return cached
    texts = text_examples(task, instances, encoding, tokenizer, max_source_length, seed, chat_template)
    encoded = encode_examples(texts, tokenizer, max_source_length, max_target_length, decoder_only, chat_template)
    _write(path, encoded)
    return encoded


def _write(path: Path, encoded: Sequence[EncodedExample]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "input_ids": np.array([i for example in encoded for i in example.input_ids], dtype=np.int64),
        "input_lengths": np.array([len(example.input_ids) for example in encoded], dtype=np.int64),
        "labels": np.array([i for example in encoded for i in example.labels], dtype=np.int64),
        "label_lengths": np.array([len(example.labels) for example in encoded], dtype=np.int64),
        "truncated": np.array([example.truncated for example in encoded], dtype=bool),
    }
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read(path: Path) -> list[EncodedExample] | None:
    """The cached examples, or None when the file cannot be read (it is then rewritten)."""
    try:
        with np.load(path) as data:
            input_ids = _split(data["input_ids"], data["input_lengths"])
            labels = _split(data["labels"], data["label_lengths"])
            truncated = data["truncated"].tolist()
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    return [EncodedExample(ids, label, flag) for ids, label, flag in zip(input_ids, labels, truncated)]


def _split(flat: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
    ends = np.cumsum(lengths).tolist()
    values = flat.tolist()
    return [values[end - length : end] for end, length in zip(ends, lengths.tolist())]
