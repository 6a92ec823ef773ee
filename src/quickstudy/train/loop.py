"""The training loop: one plain function over accelerate.

accelerate places the model, runs bf16 mixed precision on GPUs and, under
`accelerate launch` (optionally with a DeepSpeed config), data-parallel training
on several GPUs, with no change here. Step checkpoints hold model, optimizer,
scheduler and RNG states plus the position in the data; a killed run re-run with
the same arguments resumes from the last one and ends with the same weights.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import math
import os
import shutil
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from accelerate import Accelerator
from accelerate.utils import is_tensorboard_available, set_seed
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from transformers import get_scheduler
from transformers.optimization import Adafactor

from quickstudy.errors import ConfigError, ModelError
from quickstudy.files import replace_directory, write_json_atomic, write_text_atomic
from quickstudy.models.loading import LoadedModel, save_model, weights_problem
from quickstudy.models.spec import ModelSpec
from quickstudy.train.batching import collate, example_length, length_grouped_batches, real_token_count, shard_batches
from quickstudy.train.config import TrainConfig
from quickstudy.train.memory import keep_freed_memory

if TYPE_CHECKING:
    from quickstudy.prompts.features import EncodedExample

MODEL_DIR = "model"
CHECKPOINTS_DIR = "checkpoints"
LOG_FILE = "train_log.jsonl"
RESULT_FILE = "train_result.json"
CONFIG_FILE = "train_config.json"
STATE_FILE = "quickstudy_state.json"
DEEPSPEED_CONFIGS = {"zero2": "deepspeed_zero2.json"}  # training.deepspeed -> shipped DeepSpeed config

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced; also written to `<out_dir>/train_result.json`."""

    model_dir: str
    log_path: str
    steps: int
    examples: int
    final_loss: float | None
    train_tokens: int
    tokens_per_second: float
    wall_seconds: float
    resumed_from_step: int | None
    fingerprint: str
    world_size: int = 1  # data-parallel processes
    micro_batch: int | None = None  # examples per process per micro-batch
    effective_batch: int | None = None  # examples per optimizer step: micro-batch x accumulation x processes


def train_model(
    loaded: LoadedModel,
    encoded: Sequence[EncodedExample],
    config: TrainConfig,
    out_dir: str | Path,
    on_step: Callable[[int, int, float | None], None] | None = None,
    save: bool = True,
) -> TrainResult:
    """Train `loaded.model` in place on `encoded`, save it to `<out_dir>/model` (unless not
    `save`: the caller uses the model in memory) and return the run's summary. Resumes from `<out_dir>/checkpoints` when a checkpoint
    of the same run (same model, data and hyper-parameters) is there. `on_step(step,
    total, last logged loss)` is called on the main process after every optimizer step."""
    out_dir = Path(out_dir)
    if not encoded:
        raise ConfigError(f"{out_dir}: no training examples were selected")
    if config.tensorboard and not is_tensorboard_available():
        raise ConfigError("train.tensorboard: TensorBoard is not installed (pip install 'quickstudy[tensorboard]')")
    out_dir.mkdir(parents=True, exist_ok=True)
    if not torch.cuda.is_available():
        keep_freed_memory()  # CPU steps reuse their tensors' memory instead of faulting in fresh pages
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),  # also lets `torchrun` run data-parallel CPU processes
        mixed_precision=config.mixed_precision(),
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with="tensorboard" if config.tensorboard else None,
        project_dir=str(out_dir),
        deepspeed_plugin=deepspeed_plugin(config),
    )
    fingerprint = run_fingerprint(loaded.spec, encoded, config, accelerator.num_processes)
    set_seed(config.seed)
    if accelerator.is_main_process:
        write_json_atomic(
            out_dir / CONFIG_FILE,
            {"train": config.model_dump(mode="json"), "model": _spec_json(loaded), "fingerprint": fingerprint},
            indent=2,
        )

    model = loaded.model
    if config.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5 renamed it
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    lengths = [example_length(e) for e in encoded]
    real_tokens = [real_token_count(e) for e in encoded]  # counted once, not from the tensors at every step
    world, rank = accelerator.num_processes, accelerator.process_index
    micro_per_epoch = len(
        shard_batches(length_grouped_batches(lengths, config.batch_size, config.seed, 0), rank, world)
    )
    total_steps = config.max_steps or max(
        1, math.ceil(config.num_epochs * micro_per_epoch / config.gradient_accumulation_steps)
    )
    optimizer = build_optimizer(model, config)
    # accelerate steps a prepared scheduler once per process, hence the factor `world`.
    scheduler_name = (
        "constant_with_warmup" if config.lr_scheduler == "constant" and config.warmup_steps else config.lr_scheduler
    )
    scheduler = get_scheduler(
        scheduler_name, optimizer, num_warmup_steps=config.warmup_steps * world, num_training_steps=total_steps * world
    )
    _fill_deepspeed_config(accelerator, config)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    log_path = out_dir / LOG_FILE
    checkpoint, start_step, micro_done = resume_from_latest(accelerator, out_dir, fingerprint)
    if accelerator.is_main_process:
        _truncate_log(log_path, start_step)
    if config.tensorboard:
        accelerator.init_trackers("tensorboard")

    model.train()
    pad_id = loaded.tokenizer.pad_token_id
    step, micro, epoch = start_step, 0, 0
    run_tokens, window_tokens, window_losses = 0, 0, []
    last_loss: float | None = None
    started = window_started = time.perf_counter()
    progress = _progress_bar(disable=not (config.progress_bar and accelerator.is_main_process))
    with progress:
        bar = progress.add_task("training", total=total_steps, completed=start_step, loss="-", speed="-")
        while step < total_steps:
            for indices in shard_batches(
                length_grouped_batches(lengths, config.batch_size, config.seed, epoch), rank, world
            ):
                if micro < micro_done:  # done before the checkpoint we resumed from
                    micro += 1
                    continue
                batch = collate([encoded[i] for i in indices], pad_id, loaded.is_seq2seq)
                tokens = sum(real_tokens[i] for i in indices)
                with accelerator.accumulate(model):
                    loss = model(**{k: v.to(accelerator.device) for k, v in batch.items()}).loss
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and config.max_grad_norm:
                        accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                micro += 1
                run_tokens += tokens
                window_tokens += tokens
                window_losses.append(loss.detach())
                if not accelerator.sync_gradients:
                    continue
                step += 1
                if step % config.log_every_steps == 0 or step == total_steps:
                    now = time.perf_counter()
                    # every process reaches this step, so the collective mean cannot hang
                    last_loss = float(accelerator.reduce(torch.stack(window_losses).float().mean(), reduction="mean"))
                    speed = window_tokens * world / max(now - window_started, 1e-9)
                    record = {"step": step, "epoch": round(micro / micro_per_epoch, 4), "loss": round(last_loss, 6),
                              "lr": scheduler.get_last_lr()[0], "tokens_per_second": round(speed, 1),
                              "elapsed_seconds": round(now - started, 3)}  # fmt: skip
                    if accelerator.is_main_process:
                        _append_jsonl(log_path, record)
                    if config.tensorboard:
                        accelerator.log({"loss": last_loss, "lr": record["lr"], "tokens_per_second": speed}, step=step)
                    progress.update(bar, loss=f"{last_loss:.4f}", speed=f"{speed:,.0f}")
                    window_tokens, window_losses, window_started = 0, [], now
                progress.update(bar, completed=step)
                if on_step is not None and accelerator.is_main_process:
                    on_step(step, total_steps, last_loss)
                if config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0 and step < total_steps:
                    save_checkpoint(accelerator, out_dir, step, micro, fingerprint)
                if step >= total_steps:
                    break
            epoch += 1

    wall = time.perf_counter() - started
    accelerator.wait_for_everyone()
    total_tokens = int(accelerator.reduce(torch.tensor(run_tokens, device=accelerator.device), reduction="sum"))
    result = TrainResult(
        model_dir=str(out_dir / MODEL_DIR), log_path=str(log_path), steps=step, examples=len(encoded),
        final_loss=last_loss, train_tokens=total_tokens, tokens_per_second=total_tokens / max(wall, 1e-9),
        wall_seconds=wall, resumed_from_step=start_step if checkpoint is not None else None, fingerprint=fingerprint,
        world_size=world, micro_batch=config.batch_size, effective_batch=config.effective_batch(world),
    )  # fmt: skip
    trained = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        if save:
            save_model(replace(loaded, model=trained), out_dir / MODEL_DIR)
        write_json_atomic(out_dir / RESULT_FILE, asdict(result), indent=2)
        shutil.rmtree(out_dir / CHECKPOINTS_DIR, ignore_errors=True)
    if config.tensorboard:
        accelerator.end_training()
    accelerator.wait_for_everyone()
    loaded.model = trained
    return result


def completed_result(out_dir: str | Path) -> TrainResult | None:
    """The summary of a run that already finished in `out_dir`, else None."""
    path = Path(out_dir) / RESULT_FILE
    if not path.is_file() or not (Path(out_dir) / MODEL_DIR).is_dir():
        return None
    return TrainResult(**json.loads(path.read_text(encoding="utf-8")))


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or Adafactor over the trainable parameters; biases and norms get no weight decay."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "adafactor":
        return Adafactor(groups, lr=config.learning_rate, scale_parameter=False, relative_step=False, warmup_init=False)
    # foreach: one multi-tensor kernel per update instead of a Python loop over parameters;
    # on CPU torch defaults to the loop, and the two give bitwise equal updates (tested).
    return torch.optim.AdamW(groups, lr=config.learning_rate, foreach=True)


def launched_processes() -> int:
    """The data-parallel processes this one belongs to: WORLD_SIZE, as torchrun, `accelerate
    launch` and the deepspeed launcher set it (1 when started plainly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def deepspeed_plugin(config: TrainConfig) -> Any:
    """accelerate's DeepSpeed plugin for `training.deepspeed` (the shipped ZeRO config), or None
    (unset, or `accelerate launch` already brings a DeepSpeed config of its own)."""
    if config.deepspeed is None or os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        return None
    if not torch.cuda.is_available():
        raise ConfigError(
            f"training.deepspeed: {config.deepspeed} runs on GPUs and this machine has none; set it to null"
        )
    if importlib.util.find_spec("deepspeed") is None:
        raise ConfigError("training.deepspeed: DeepSpeed is not installed (pip install 'quickstudy[deepspeed]')")
    from accelerate.utils import DeepSpeedPlugin

    from quickstudy.shipped import shipped_config

    return DeepSpeedPlugin(hf_ds_config=str(shipped_config(DEEPSPEED_CONFIGS[config.deepspeed])))


def _fill_deepspeed_config(accelerator: Accelerator, config: TrainConfig) -> None:
    """Under `accelerate launch` with a DeepSpeed config, fill its "auto" batch size and
    clipping from our config (accelerate takes them from a prepared DataLoader otherwise,
    and this loop batches by length itself)."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        return
    plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = config.batch_size
    if plugin.deepspeed_config.get("gradient_clipping", "auto") == "auto":
        plugin.deepspeed_config["gradient_clipping"] = config.max_grad_norm or 0.0


def save_checkpoint(accelerator: Accelerator, out_dir: Path, step: int, micro_batches: int, fingerprint: str) -> Path:
    """Write `<out_dir>/checkpoints/step-N` atomically (temp folder, then rename) and
    drop older checkpoints; every process must call this."""
    folder = out_dir / CHECKPOINTS_DIR
    final, tmp = folder / f"step-{step:08d}", folder / f".step-{step:08d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    with _quiet_logger(
        "accelerate.utils.other"
    ):  # T5's tied embeddings: an expected 'Removed shared tensor' per checkpoint
        accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = {
            "step": step,
            "micro_batches": micro_batches,
            "fingerprint": fingerprint,
            "num_processes": accelerator.num_processes,
        }
        write_json_atomic(tmp / STATE_FILE, state, indent=2)
        replace_directory(tmp, final)
        for old in folder.glob("step-*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def resume_from_latest(accelerator: Accelerator, out_dir: Path, fingerprint: str) -> tuple[Path | None, int, int]:
    """Resume from the newest intact step checkpoint: (checkpoint, step, micro-batches done),
    or (None, 0, 0) to start afresh. A damaged checkpoint (a torn or truncated file) is
    skipped with a warning naming it, falling back to an older one or to step 0."""
    for checkpoint in reversed(step_checkpoints(out_dir)):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return (checkpoint, *resume_from(accelerator, checkpoint, fingerprint))
        _log.warning("%s: damaged step checkpoint (%s); falling back to an earlier one or step 0", checkpoint, problem)
    return None, 0, 0


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why `checkpoint` cannot be loaded (a file torn, truncated or missing), or None. Reads
    headers and zip directories only, so it is cheap next to loading the states."""
    import zipfile

    try:
        state = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
        if not isinstance(state, dict) or not all(key in state for key in ("step", "micro_batches", "fingerprint")):
            return f"{STATE_FILE} lacks step, micro_batches or fingerprint"
    except (OSError, ValueError) as error:
        return f"{STATE_FILE}: {error}"
    problem = weights_problem(checkpoint)
    if problem is not None:
        return problem
    for path in checkpoint.rglob("*"):
        if path.suffix in (".bin", ".pt", ".pkl") and path.is_file() and not zipfile.is_zipfile(path):
            return f"{path.name} is not a complete torch file"
    return None


def resume_from(accelerator: Accelerator, checkpoint: Path, fingerprint: str) -> tuple[int, int]:
    """Restore model, optimizer, scheduler and RNG states from `checkpoint`; return the
    optimizer step and the number of this process's micro-batches done by then."""
    state = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    if state["fingerprint"] != fingerprint:
        raise ConfigError(
            f"{checkpoint}: checkpoint of a different run (model, data or hyper-parameters changed); use another output dir or delete {checkpoint.parent.parent}"
        )
    if state.get("num_processes", 1) != accelerator.num_processes:  # the data position counts per-process batches
        raise ConfigError(
            f"{checkpoint}: written by {state.get('num_processes', 1)} process(es), resumed with "
            f"{accelerator.num_processes}; resume with the same number (a study's executor.processes_per_run) "
            f"or delete {checkpoint.parent} to start over"
        )
    try:
        accelerator.load_state(str(checkpoint))
    except Exception as error:  # damage the header checks cannot see; the states may be half loaded
        raise ModelError(
            f"{checkpoint}: step checkpoint cannot be loaded ({type(error).__name__}); delete it to start from step 0"
        ) from None
    return state["step"], state["micro_batches"]


def step_checkpoints(out_dir: Path) -> list[Path]:
    """The step checkpoints in `out_dir` (those whose state file was written), oldest first."""
    return sorted(p for p in (out_dir / CHECKPOINTS_DIR).glob("step-*") if (p / STATE_FILE).is_file())


def run_fingerprint(
    spec: ModelSpec | None, encoded: Sequence[EncodedExample], config: TrainConfig, processes: int = 1
) -> str:
    """A hash of what determines the trained weights: model spec, hyper-parameters (the
    effective batch over `processes`), token ids."""
    digest = hashlib.sha256()
    settings = config.result_fields(processes)
    spec_json = spec.model_dump(mode="json") if spec is not None else None
    digest.update(json.dumps([spec_json, settings], sort_keys=True).encode())
    for example in encoded:
        digest.update(array("q", [len(example.input_ids), len(example.labels)]).tobytes())
        digest.update(array("q", example.input_ids).tobytes())
        digest.update(array("q", example.labels).tobytes())
    return digest.hexdigest()[:16]


def _spec_json(loaded: LoadedModel) -> Any:
    return loaded.spec.model_dump(mode="json") if loaded.spec is not None else None


def _progress_bar(disable: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]} tok/s"), TimeRemainingColumn(),
        disable=disable,
    )  # fmt: skip


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def _truncate_log(path: Path, last_step: int) -> None:
    """Drop log lines written after the checkpoint a run resumes from (they will be redone);
    a fresh run (`last_step` 0) starts an empty log."""
    if not path.is_file():
        return
    if last_step == 0:
        path.unlink()
        return
    kept = [line for line, record in logged_steps(path) if record["step"] <= last_step]
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def logged_steps(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The training log's (line, record) pairs, read line by line. A line that does not
    parse (the last one torn by a kill, bytes lost on a full disk) is dropped with a
    warning naming the file and line: a log is never a reason to stop a run."""
    kept = []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if isinstance(record, dict) and isinstance(record.get("step"), int):
                    kept.append((line.rstrip("\n"), record))
                    continue
            except (ValueError, RecursionError):
                pass
            _log.warning("%s:%d: dropped a torn or malformed log line", path, number)
    return kept


@contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Silence one library logger's warnings for the duration of the block."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
