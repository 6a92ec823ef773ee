"""Load and save models: hub ids, local checkpoints, tiny factories, LoRA adapters.

A checkpoint folder is a plain Hugging Face folder (config, safetensors,
tokenizer) plus `quickstudy_model.json`; a LoRA checkpoint holds only the
adapter and names its base model there, so it never duplicates the base weights.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from quickstudy.errors import ModelError, first_line
from quickstudy.files import remove_stale_temps, replace_directory
from quickstudy.models.lora import with_lora
from quickstudy.models.spec import ModelSpec
from quickstudy.models.tiny import is_tiny_name, tiny_model
from quickstudy.prompts.chat import uses_chat_template
from quickstudy.prompts.tokenizers import BYT5, tokenizer_by_name

MODEL_INFO = "quickstudy_model.json"


@dataclass
class LoadedModel:
    """A model ready to train or generate with, its tokenizer, and how it was specified."""

    model: PreTrainedModel | PeftModel
    tokenizer: PreTrainedTokenizerBase
    is_seq2seq: bool
    spec: ModelSpec | None = None
    chat_template: bool = False  # prompts go through the tokenizer's chat template (prompts.chat)


@dataclass
class _Base:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    is_seq2seq: bool
    chat_template: bool | None = None  # as a saved checkpoint recorded it; None: decide from the spec


class BaseModelCache:
    """Keeps the last few base models in memory (on CPU) so consecutive runs from
    the same start skip the disk; each load gets its own deep copy of the weights."""

    def __init__(self, max_entries: int = 1):
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Base] = OrderedDict()

    def get_or_load(self, spec: ModelSpec) -> _Base:
        key = _cache_key(spec)
        if key not in self._entries:
            if self.max_entries <= 0:
                return _load_base(spec)
            self._entries[key] = _load_base(spec)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        self._entries.move_to_end(key)
        cached = self._entries[key]
        return _Base(
            copy.deepcopy(cached.model), copy.deepcopy(cached.tokenizer), cached.is_seq2seq, cached.chat_template
        )

    def clear(self) -> None:
        self._entries.clear()


DEFAULT_CACHE = BaseModelCache()


class ResidentModelCache(BaseModelCache):
    """Keeps one start model resident and hands out one working copy of it, reset in place
    before each load: every parameter and buffer `copy_`-ed from the resident weights, so
    the working copy keeps its storage (on the device it was moved to: no re-allocation)
    instead of being deep-copied per run. LoRA layers a previous run injected are taken out
    first (their base layers put back), so a LoRA run starts from the same base and only
    its adapters are new. The working copy is valid until the next `get_or_load`."""

    def __init__(self) -> None:
        super().__init__(max_entries=1)
        self._key: str | None = None
        self._working: _Base | None = None

    def get_or_load(self, spec: ModelSpec) -> _Base:
        key = _cache_key(spec)
        if key != self._key or self._working is None:
            self._working = None  # the old copy goes before the new one is built
            self._entries.clear()
            self._working = super().get_or_load(spec)  # a deep copy of the resident weights
            self._key = key
            return self._working
        resident = self._entries[key]
        reset_in_place(self._working.model, resident.model)
        return _Base(self._working.model, self._working.tokenizer, resident.is_seq2seq, resident.chat_template)

    def clear(self) -> None:
        super().clear()
        self._key, self._working = None, None


def reset_in_place(working: torch.nn.Module, resident: torch.nn.Module) -> None:
    """Make `working` (a copy of `resident`, trained, LoRA-wrapped or moved since) equal to
    `resident` again without allocating: LoRA layers removed, weights copied, all trainable,
    training-time switches off."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in list(working.named_modules()):
        if isinstance(module, BaseTunerLayer) and name:
            parent_name, _, child = name.rpartition(".")
            setattr(working.get_submodule(parent_name), child, module.get_base_layer())
    for attribute in ("peft_config", "_hf_peft_config_loaded"):
        if attribute in working.__dict__:
            delattr(working, attribute)
    if hasattr(working, "activation_checkpointing_disable"):  # transformers >= 5 renamed it
        if working.is_activation_checkpointing:
            working.activation_checkpointing_disable()
    elif working.is_gradient_checkpointing:
        working.gradient_checkpointing_disable()
    working.config.use_cache = resident.config.use_cache
    with torch.no_grad():
        for mine, theirs in zip(working.parameters(), resident.parameters(), strict=True):
            mine.copy_(theirs)
            mine.requires_grad_(theirs.requires_grad)
        for mine, theirs in zip(working.buffers(), resident.buffers(), strict=True):
            mine.copy_(theirs)
    working.train(resident.training)


def load_model(
    spec: ModelSpec, device: str | torch.device | None = None, cache: BaseModelCache = DEFAULT_CACHE
) -> LoadedModel:
    """The model `spec` names, in fp32, with fresh LoRA adapters if the spec asks for them; a
    checkpoint saved with a chat-template decision keeps it unless the spec says otherwise."""
    base = cache.get_or_load(spec.base())
    chat = uses_chat_template(spec.chat_template, base.tokenizer, base.is_seq2seq, f"model {spec.name_or_path!r}")
    if spec.chat_template == "auto" and base.chat_template is not None:
        chat = base.chat_template
    model: PreTrainedModel | PeftModel = base.model
    if spec.lora is not None:
        with torch.random.fork_rng(devices=[]):  # fresh adapters from the spec's seed: the same spec, the same start
            torch.manual_seed(spec.init_seed)
            model = with_lora(model, spec.lora, base.is_seq2seq)
    if device is not None:
        model = model.to(device)
    return LoadedModel(model=model, tokenizer=base.tokenizer, is_seq2seq=base.is_seq2seq, spec=spec, chat_template=chat)


def weights_problem(directory: str | Path) -> str | None:
    """Why the saved model in `directory` cannot be loaded (no weights, a torn or truncated
    safetensors file), or None. Reads the files' headers only."""
    from safetensors import SafetensorError, safe_open

    files = sorted(Path(directory).glob("*.safetensors"))
    if not files:
        return "no model weights (*.safetensors)"
    for path in files:
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except (OSError, SafetensorError) as error:
            return f"{path.name} is torn or truncated ({error})"
    return None


def save_model(loaded: LoadedModel, directory: str | Path) -> Path:
    """Write the model (safetensors) and tokenizer to `directory`, atomically.
    A LoRA model writes only its adapter plus the spec of its base."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(directory.parent, f".{directory.name}.tmp-")  # left by a save killed mid-write
    tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    is_adapter = isinstance(loaded.model, PeftModel)
    loaded.model.save_pretrained(tmp, safe_serialization=True)
    loaded.tokenizer.save_pretrained(tmp)
    info: dict[str, Any] = {
        "is_seq2seq": loaded.is_seq2seq,
        "lora_adapter": is_adapter,
        "chat_template": loaded.chat_template,
    }
    if is_adapter:
        if loaded.spec is None:
            raise ModelError(f"{directory}: cannot save a LoRA adapter without the spec of its base model")
        info["base"] = loaded.spec.base().model_dump(mode="json")
    (tmp / MODEL_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    replace_directory(tmp, directory)
    return directory


def _cache_key(spec: ModelSpec) -> str:
    """The spec plus, for a local folder, its files' modification times (a re-written
    checkpoint must not be served from the cache)."""
    stamp: list[tuple[str, int]] = []
    for name in (spec.name_or_path, spec.tokenizer):
        if name and Path(name).is_dir():
            stamp += [(str(p), p.stat().st_mtime_ns) for p in sorted(Path(name).iterdir()) if p.is_file()]
    return json.dumps([spec.model_dump(mode="json"), stamp])


def _load_base(spec: ModelSpec) -> _Base:
    name = spec.name_or_path
    if is_tiny_name(name):
        tokenizer = _load_tokenizer(spec.tokenizer or "byte", spec)
        model = tiny_model(name, tokenizer, seed=spec.init_seed, overrides=spec.tiny_config)
        return _Base(model, tokenizer, model.config.is_encoder_decoder)
    info_path = Path(name) / MODEL_INFO
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    if info.get("lora_adapter"):
        return _merged_adapter(spec, info)
    chat = info.get("chat_template") if isinstance(info.get("chat_template"), bool) else None
    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=spec.trust_remote_code)
    except (OSError, ValueError) as error:
        raise ModelError(f"model {name!r}: cannot load its config ({first_line(error)})") from None
    is_seq2seq = _is_seq2seq(spec, config)
    auto_class = AutoModelForSeq2SeqLM if is_seq2seq else AutoModelForCausalLM
    try:
        model = auto_class.from_pretrained(
            name, config=config, dtype=torch.float32, trust_remote_code=spec.trust_remote_code
        )
    except (OSError, ValueError) as error:
        raise ModelError(f"model {name!r}: cannot load its weights ({first_line(error)})") from None
    tokenizer = _load_tokenizer(spec.tokenizer or name, spec)
    return _Base(model, tokenizer, is_seq2seq, chat)


def _merged_adapter(spec: ModelSpec, info: dict[str, Any]) -> _Base:
    """A saved LoRA adapter loaded onto its base and merged into it, giving a plain model."""
    try:
        base_spec = ModelSpec.model_validate(info["base"])
    except (KeyError, ValueError) as error:
        raise ModelError(
            f"{Path(spec.name_or_path) / MODEL_INFO}: field 'base' is missing or invalid ({first_line(error)})"
        ) from None
    base = _load_base(base_spec)
    try:
        merged = PeftModel.from_pretrained(base.model, spec.name_or_path).merge_and_unload()
    except (OSError, ValueError) as error:
        raise ModelError(f"model {spec.name_or_path!r}: cannot load its LoRA adapter ({first_line(error)})") from None
    merged.requires_grad_(True)  # peft froze the base's weights; merged, they are a plain model's to train
    tokenizer = _load_tokenizer(spec.tokenizer or spec.name_or_path, spec)
    chat = info.get("chat_template") if isinstance(info.get("chat_template"), bool) else None
    return _Base(merged, tokenizer, base.is_seq2seq, chat)


def _is_seq2seq(spec: ModelSpec, config: Any) -> bool:
    if spec.architecture != "auto":
        return spec.architecture == "seq2seq"
    return bool(getattr(config, "is_encoder_decoder", False))


def load_tokenizer(spec: ModelSpec) -> PreTrainedTokenizerBase:
    """The tokenizer `spec` trains and generates with, without loading any weights."""
    default = "byte" if is_tiny_name(spec.name_or_path) else spec.name_or_path
    return _load_tokenizer(spec.tokenizer or default, spec)


def prompt_tokenizer(spec: ModelSpec) -> tuple[PreTrainedTokenizerBase, bool]:
    """The tokenizer `spec` prompts with and whether its chat template is used (as `load_model`
    decides it), reading configs only: no weights of a hub or local model are loaded."""
    if is_tiny_name(spec.name_or_path):  # built in a moment
        loaded = load_model(spec, cache=BaseModelCache(max_entries=0))
        return loaded.tokenizer, loaded.chat_template
    info_path = Path(spec.name_or_path) / MODEL_INFO
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    tokenizer = load_tokenizer(spec)
    if spec.chat_template == "auto" and isinstance(info.get("chat_template"), bool):
        return tokenizer, info["chat_template"]
    if "is_seq2seq" in info and spec.architecture == "auto":
        is_seq2seq = bool(info["is_seq2seq"])
    else:
        try:
            config = AutoConfig.from_pretrained(spec.name_or_path, trust_remote_code=spec.trust_remote_code)
        except (OSError, ValueError) as error:
            raise ModelError(f"model {spec.name_or_path!r}: cannot load its config ({first_line(error)})") from None
        is_seq2seq = _is_seq2seq(spec, config)
    where = f"model {spec.name_or_path!r}"
    return tokenizer, uses_chat_template(spec.chat_template, tokenizer, is_seq2seq, where)


def _load_tokenizer(name: str, spec: ModelSpec) -> PreTrainedTokenizerBase:
    return tokenizer_by_name(BYT5 if name == "byte" else name, trust_remote_code=spec.trust_remote_code)
