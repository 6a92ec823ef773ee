"""Training hyper-parameters; defaults follow SuperNI's Tk-Instruct recipe."""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

# Settings that change how a run is executed or watched, never its weights: a study's run
# id and a training checkpoint's fingerprint both leave them out (`result_fields`), so a
# killed run may be resumed with them changed (gradient checkpointing recomputes the same
# activations instead of storing them).
OBSERVATION_ONLY_FIELDS = frozenset(
    {"checkpoint_every_steps", "log_every_steps", "tensorboard", "progress_bar", "gradient_checkpointing"}
)


class NoBoolsAsNumbers(BaseModel):
    """A YAML `true` is never taken as 1: a boolean is refused by every field that is not a bool."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_bools_as_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        annotation = cls.model_fields[info.field_name].annotation if info.field_name else bool
        if isinstance(value, bool) and annotation is not bool and bool not in get_args(annotation):
            raise ValueError("a boolean (true/false) is not a valid value here")
        return value


class TrainConfig(NoBoolsAsNumbers):
    """Hyper-parameters of one training run (reference: lr 5e-5 constant, 2 epochs,
    max source 1024 tokens, max target 128, bf16 on GPU)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    learning_rate: float = Field(5e-5, gt=0)
    lr_scheduler: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    num_epochs: float = Field(2.0, gt=0)
    max_steps: int | None = Field(None, gt=0, description="overrides num_epochs when set")
    max_source_length: int = Field(1024, gt=0)
    max_target_length: int = Field(128, gt=0)
    batch_size: int = Field(8, gt=0, description="examples per device per micro-batch")
    gradient_accumulation_steps: int = Field(1, gt=0)
    optimizer: Literal["adamw", "adafactor"] = "adamw"
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    seed: int = 42
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    gradient_checkpointing: bool = False
    checkpoint_every_steps: int | None = Field(500, gt=0, description="None: no step checkpoints")
    log_every_steps: int = Field(10, gt=0)
    tensorboard: bool = False
    progress_bar: bool = True
    # DeepSpeed ZeRO stage 2 (configs/deepspeed_zero2.json, the thesis's setting) for runs
    # launched as several processes on GPUs; None: plain data parallelism (DDP).
    deepspeed: Literal["zero2"] | None = None

    def mixed_precision(self) -> Literal["bf16", "no"]:
        """accelerate's mixed-precision mode: bf16 on a GPU for `auto`, never fp16
        (T5 overflows in fp16), full fp32 on CPU."""
        if self.precision == "auto":
            return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
        return "bf16" if self.precision == "bf16" else "no"

    def effective_batch(self, processes: int = 1) -> int:
        """Examples per optimizer step: micro-batch x accumulation x data-parallel processes."""
        return self.batch_size * self.gradient_accumulation_steps * processes

    def result_fields(self, processes: int = 1) -> dict[str, Any]:
        """The settings that determine the trained weights: what run ids and checkpoint fingerprints hash.

        With `processes` data-parallel processes, accumulation is counted as one process would
        need it for the same effective batch (accumulation x processes): the world size enters
        only through the effective batch, so 2 processes accumulating 1 micro-batch each train
        the same steps on the same examples as 1 process accumulating 2, and hash the same.
        `deepspeed` is left out when unset, so runs without it keep their ids."""
        fields = self.model_dump(mode="json", exclude=set(OBSERVATION_ONLY_FIELDS))
        fields["gradient_accumulation_steps"] = self.gradient_accumulation_steps * processes
        if self.deepspeed is None:
            del fields["deepspeed"]
        return fields
