"""What model to train or evaluate, as validated config."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class LoraSpec(BaseModel):
    """LoRA adapter settings; `target_modules=None` picks the architecture's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    r: int = Field(8, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] | None = None


class ModelSpec(BaseModel):
    """A model to load: a hub id, a local checkpoint folder, or a tiny factory name.

    `tokenizer` None means the model's own; for tiny models it may be `byte`
    (ByT5's byte tokenizer, the default) or the folder of a saved tokenizer.
    `init_seed` seeds a tiny model's weights (built from `tiny_config` instead of
    loaded) and fresh LoRA adapters. `chat_template`: whether
    prompts go through the tokenizer's chat template (prompts.chat); `auto` turns
    it on for a decoder-only model whose tokenizer has one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name_or_path: str = Field(min_length=1)
    architecture: Literal["auto", "seq2seq", "causal"] = "auto"
    tokenizer: str | None = None
    trust_remote_code: bool = False
    lora: LoraSpec | None = None
    chat_template: Literal["auto"] | bool = "auto"
    init_seed: int = 0
    tiny_config: dict[str, Any] = Field(default_factory=dict)

    def base(self) -> ModelSpec:
        """The same model without a LoRA adapter: what the load cache keys on."""
        return self.model_copy(update={"lora": None})


def model_spec_from_text(text: str, where: str) -> ModelSpec:
    """A spec from the command line: a name or path, or a YAML mapping of spec fields."""
    import yaml
    from pydantic import ValidationError

    from quickstudy.errors import ConfigError

    try:
        raw = yaml.safe_load(text) if text.lstrip().startswith("{") else text
    except yaml.YAMLError:
        raise ConfigError(f"{where}: {text!r} is not a valid YAML mapping") from None
    try:
        return ModelSpec.model_validate(raw if isinstance(raw, dict) else {"name_or_path": text})
    except ValidationError as error:
        problem = error.errors()[0]
        key = ".".join(str(part) for part in problem["loc"])
        message = "unknown key" if problem["type"] == "extra_forbidden" else problem["msg"]
        raise ConfigError(f"{where}: {key}: {message}") from None
