"""LoRA adapters through peft, with per-architecture default target modules."""

from __future__ import annotations

import warnings

from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import PreTrainedModel

from quickstudy.errors import ModelError
from quickstudy.models.spec import LoraSpec

# peft (get_peft_model, PeftModel.from_pretrained) reads transformers' deprecated `is_gradient_checkpointing`
# alias: a FutureWarning users cannot act on. Only that message is silenced.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

# The attention projections the LoRA paper adapts (query and value), by config.model_type.
DEFAULT_TARGET_MODULES: dict[str, tuple[str, ...]] = {
    "t5": ("q", "v"),
    "mt5": ("q", "v"),
    "umt5": ("q", "v"),
    "llama": ("q_proj", "v_proj"),
    "mistral": ("q_proj", "v_proj"),
    "qwen2": ("q_proj", "v_proj"),
    "gemma": ("q_proj", "v_proj"),
    "bart": ("q_proj", "v_proj"),
    "gpt2": ("c_attn",),
    "gpt_neox": ("query_key_value",),
}


def lora_target_modules(model: PreTrainedModel, spec: LoraSpec) -> list[str]:
    """The spec's target modules, or the architecture's default."""
    if spec.target_modules:
        return list(spec.target_modules)
    model_type = getattr(model.config, "model_type", "?")
    if model_type not in DEFAULT_TARGET_MODULES:
        raise ModelError(f"lora.target_modules: no default for model type {model_type!r}; list the modules to adapt")
    return list(DEFAULT_TARGET_MODULES[model_type])


def with_lora(model: PreTrainedModel, spec: LoraSpec, is_seq2seq: bool) -> PeftModel:
    """`model` wrapped with fresh LoRA adapters; only adapter weights stay trainable."""
    config = LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=lora_target_modules(model, spec),
        task_type=TaskType.SEQ_2_SEQ_LM if is_seq2seq else TaskType.CAUSAL_LM,
    )
    try:
        return get_peft_model(model, config)
    except ValueError as error:
        raise ModelError(f"lora.target_modules: {str(error).splitlines()[0]}") from None
