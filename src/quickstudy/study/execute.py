"""What one run of a study does: pre-finetune, fine-tune or evaluate.

`execute_run(spec, study_dir)` needs nothing but the run's spec (spec.json) and
the study directory, so it runs the same in-process, in a worker process or as
a Ray task. It always ends by writing `status.json` (done or failed) last; every
other file is written atomically before it, so a kill at any moment leaves a
finished run or an unfinished one, never a half-written result.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from quickstudy.data.collection import Collection
from quickstudy.errors import QuickstudyError, StudyError, one_line_error
from quickstudy.files import write_json_atomic
from quickstudy.study.layout import (
    LEASE_FILE,
    LOG_FILE,
    MERGED_MODEL_DIR,
    SPEC_FILE,
    STATUS_FILE,
    TOKEN_CACHE_DIR,
    TRAIN_DIR,
    RunKind,
    RunSpec,
    RunState,
    run_dir,
)
from quickstudy.study.plan import file_fingerprint


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    state: RunState
    error: str | None = None
    wall_seconds: float = 0.0


def checkpoint_dir(study_dir: Path, run_id: str) -> Path:
    """Where a training run's final model is (deleted once every run using it is done)."""
    from quickstudy.train.loop import MODEL_DIR

    return run_dir(study_dir, run_id) / TRAIN_DIR / MODEL_DIR


@dataclass(frozen=True)
class RunGroup:
    """What one worker executes in a row: a run, then (fused: `executor.fuse`) the evaluate
    runs of the model it trains, on that model in memory. Each run keeps its own lease,
    folder and status. `save_model`: the training run writes its model (off only when every
    run that reads it follows here and `keep_checkpoints` is off). `resident`: start models
    come from the worker's resident copy, reset in place (`executor.resident`)."""

    run: RunSpec
    followers: tuple[RunSpec, ...] = ()
    save_model: bool = True
    resident: bool = False


@cache
def resident_models() -> Any:
    """The worker's resident start model (executor.resident): one per process, reused across runs."""
    from quickstudy.models.loading import ResidentModelCache

    return ResidentModelCache()


def execute_group(group: RunGroup, study_dir: Path, reraise_unexpected: bool = False) -> list[RunOutcome]:
    """Run a group's run, then its followers on its in-memory model if it is done."""
    memory: dict[str, Any] = {}
    outcomes = [execute_run(group.run, study_dir, reraise_unexpected, group, memory)]
    if outcomes[0].state != RunState.DONE:
        return outcomes  # the followers stay pending, blocked by the failure
    trained = memory.get("loaded")
    for follower in group.followers:
        outcomes.append(execute_run(follower, study_dir, reraise_unexpected, RunGroup(follower), {"loaded": trained}))
    return outcomes


def execute_run(
    spec: RunSpec,
    study_dir: Path,
    reraise_unexpected: bool = False,
    group: RunGroup | None = None,
    memory: dict[str, Any] | None = None,
) -> RunOutcome:
    """Run one planned run under its lease (study.lease): a run another live process holds
    is left alone, reported as not run and not recorded."""
    from quickstudy.study.lease import describe, lease_holder, take_lease

    folder = run_dir(study_dir, spec.id)
    folder.mkdir(parents=True, exist_ok=True)
    lease = take_lease(folder)
    if lease is None:
        holder = describe(lease_holder(folder / LEASE_FILE))
        message = f"{folder / LEASE_FILE}: {holder} is running this run; not run twice (run the study again later)"
        return RunOutcome(spec.id, RunState.FAILED, message)
    with lease:
        return leased_execute_run(spec, study_dir, reraise_unexpected, group, memory)


def leased_execute_run(
    spec: RunSpec,
    study_dir: Path,
    reraise_unexpected: bool = False,
    group: RunGroup | None = None,
    memory: dict[str, Any] | None = None,
) -> RunOutcome:
    """Run one planned run and record how it ended in its status.json.

    A QuickstudyError (bad data, bad config) is recorded as the failure; any other
    error is recorded too and, with `reraise_unexpected`, raised again so that an
    executor can retry it (out of memory, a lost device). `memory["loaded"]`: an evaluate
    run's model already in memory (fused); a training run leaves its trained model there."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar over the study's runs; a run's own bars are noise under it
    folder = run_dir(study_dir, spec.id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STATUS_FILE).unlink(missing_ok=True)
    write_json_atomic(folder / SPEC_FILE, spec.to_json())
    started = time.time()
    log_line(folder, f"start {spec.kind} on {socket.gethostname()} pid {os.getpid()}")
    try:
        extra = run_function(spec)(spec, study_dir, group or RunGroup(spec), {} if memory is None else memory)
    except Exception as error:  # recorded, then re-raised only for the executor to retry
        message = one_line_error(error)
        log_line(folder, f"failed: {message}\n{traceback.format_exc()}")
        write_status(folder, RunState.FAILED, started, error=message, processes=spec.processes)
        if reraise_unexpected and not isinstance(error, QuickstudyError):
            raise
        return RunOutcome(spec.id, RunState.FAILED, message, time.time() - started)
    if extra:
        write_json_atomic(folder / SPEC_FILE, RunSpec.model_validate({**spec.to_json(), **extra}).to_json())
    write_status(folder, RunState.DONE, started, processes=spec.processes)
    log_line(folder, "done")
    return RunOutcome(spec.id, RunState.DONE, None, time.time() - started)


def run_function(spec: RunSpec) -> Any:
    """What executes the run: train in this process, train as several launched processes
    (study.launch), or evaluate."""
    if not spec.kind.trains:
        return evaluate_run
    if spec.processes > 1:
        from quickstudy.study.launch import launched_train_run

        return launched_train_run
    return train_run


def log_line(folder: Path, text: str) -> None:
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with open(folder / LOG_FILE, "a", encoding="utf-8") as log:
        log.write(f"{stamp} {text}\n")


def write_status(folder: Path, state: RunState, started: float, error: str | None = None, processes: int = 1) -> None:
    """The run's status.json; a run of several processes used a GPU per process, if any."""
    finished = time.time()
    device, gpus = device_in_use()
    gpus *= processes
    write_json_atomic(
        folder / STATUS_FILE,
        {
            "state": state.value,
            "error": error,
            "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
            "finished": datetime.fromtimestamp(finished, UTC).isoformat(timespec="seconds"),
            "wall_seconds": round(finished - started, 3),
            "device": device,
            "gpu_hours": round(gpus * (finished - started) / 3600, 6),
        },
    )


def device_in_use() -> tuple[str, int]:
    """The device name and the number of GPUs a run used (0 on CPU)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0), 1
    return "cpu", 0


# --- the three kinds of run ---------------------------------------------------------


def train_run(
    spec: RunSpec, study_dir: Path, group: RunGroup | None = None, memory: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Pre-finetune or fine-tune (train.stages.train_stage); returns the training-data counts the report reads.
    The trained model is left in `memory["loaded"]` for the group's followers."""
    group = group or RunGroup(spec)
    from quickstudy.data.splits import SplitConfig
    from quickstudy.prompts.lengths import prompt_lengths
    from quickstudy.study.progress import RunProgressFile
    from quickstudy.train.config import TrainConfig
    from quickstudy.train.stages import downstream_selection, prefinetune_selection, train_stage

    progress = RunProgressFile(study_dir, spec)  # read by the study's progress view
    loaded = load_start_model(spec, study_dir, resident=group.resident)
    # No per-step bar under the study's bar: a run's steps are in runs/<id>/train/train_log.jsonl.
    training = TrainConfig.model_validate({**spec.training, "progress_bar": False})
    encoding = run_encoding(spec)
    if spec.kind == RunKind.PREFINETUNE:
        selections = [prefinetune_selection(task, spec.per_task, spec.seed) for task in checked_tasks(spec)]
    else:
        split = SplitConfig(**spec.splits)
        selections = [downstream_selection(task, spec.size, spec.seed, split) for task in checked_tasks(spec)]
    # Token ids are cached per (task, instances, encoding, tokenizer, lengths): the nested
    # sizes and repeated arms of a study re-read them instead of tokenizing again.
    result = train_stage(
        loaded,
        selections,
        encoding,
        training,
        run_dir(study_dir, spec.id) / TRAIN_DIR,
        seed=spec.seed,
        cache_dir=study_dir / TOKEN_CACHE_DIR,
        on_step=progress.training,
        save=group.save_model,
    )
    if memory is not None:
        memory["loaded"] = loaded
    counts = {
        "train_instances": {s.task.name: len(s.instances) for s in selections},
        "train_steps": result.steps,
        "final_loss": result.final_loss,
    }
    if spec.kind == RunKind.PREFINETUNE:
        return counts
    prompt_tokens = {
        s.task.name: prompt_lengths(
            s.task, s.instances, encoding, loaded.tokenizer, training.max_source_length
        ).to_json()
        for s in selections
    }
    return counts | {"train_pool": {s.task.name: s.pool for s in selections}, "prompt_tokens": prompt_tokens}


def run_encoding(spec: RunSpec) -> Any:
    from quickstudy.prompts.encoding import resolve_encoding

    return resolve_encoding(spec.encoding_options | {"name": spec.encoding})


def evaluate_run(
    spec: RunSpec, study_dir: Path, group: RunGroup | None = None, memory: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Predict every test instance of the run's tasks (evaluate.evaluate_model, as `quickstudy
    predict` does); write predictions.jsonl and metrics.json. The model is `memory["loaded"]`
    when fused with its training run (a LoRA model merged, as loading its saved adapter does)."""
    import torch

    from quickstudy.data.splits import SplitConfig, task_split
    from quickstudy.evaluate.evaluation import TaskInstances, evaluate_model
    from quickstudy.evaluate.generate import write_evaluation
    from quickstudy.study.progress import RunProgressFile

    progress = RunProgressFile(study_dir, spec)  # read by the study's progress view
    device = "cuda" if torch.cuda.is_available() else None
    loaded = (memory or {}).get("loaded")
    if loaded is None:
        loaded = load_start_model(spec, study_dir, device=device, resident=(group or RunGroup(spec)).resident)
    else:
        loaded = in_memory_start(loaded, device)
    split = SplitConfig(**spec.splits)
    selections = [TaskInstances(task, task_split(task, split).test) for task in checked_tasks(spec)]
    generation = spec.generation
    records = evaluate_model(
        loaded,
        selections,
        run_encoding(spec),
        max_source_length=spec.max_source_length,
        batch_size=generation["batch_size"],
        max_new_tokens=generation["max_new_tokens"],
        num_beams=generation["num_beams"],
        on_batch=progress.evaluating,
    )
    write_evaluation(run_dir(study_dir, spec.id), records)
    return {"test_instances": {s.task.name: len(s.instances) for s in selections}}


def in_memory_start(loaded: Any, device: str | None) -> Any:
    """A trained model handed over in memory as an evaluate run's start: a LoRA model merged
    into its base (as loading its saved adapter does), on `device`."""
    from dataclasses import replace

    from peft import PeftModel

    model = loaded.model.merge_and_unload() if isinstance(loaded.model, PeftModel) else loaded.model
    return replace(loaded, model=model.to(device) if device is not None else model)


def load_start_model(spec: RunSpec, study_dir: Path, device: str | None = None, resident: bool = False) -> Any:
    """The run's start model: a model spec, or the model an upstream run trained (a LoRA
    adapter is loaded onto its base and merged); with fresh LoRA adapters when the run trains them.
    `resident`: a spec's or pre-finetuned model's weights come from the worker's resident copy."""
    from quickstudy.models.loading import DEFAULT_CACHE, BaseModelCache, load_model
    from quickstudy.models.spec import ModelSpec

    model = spec.model
    lora = {"lora": spec.adapter} if spec.adapter is not None else {}
    cache = resident_models() if resident else DEFAULT_CACHE
    if "spec" in model:
        return load_model(ModelSpec.model_validate({**model["spec"], **lora}), device=device, cache=cache)
    path = checkpoint_dir(study_dir, model["run"])
    if not path.is_dir():
        raise StudyError(f"{path}: the model of run {model['run']} is missing; re-run the study to rebuild it")
    if model["run"].startswith(
        RunKind.FINETUNE.id_prefix + "-"
    ):  # read once: keep it out of the cache, where the base model stays
        return load_model(
            ModelSpec.model_validate({"name_or_path": str(path), **lora}),
            device=device,
            cache=BaseModelCache(max_entries=0),
        )
    return load_model(ModelSpec.model_validate({"name_or_path": str(path), **lora}), device=device, cache=cache)


def checked_tasks(spec: RunSpec) -> list[Any]:
    """The run's tasks, each checked to be the file the run was planned with, without the
    instances the plan excluded for leakage (so every sample is drawn from what is left)."""
    from dataclasses import replace

    from quickstudy.data.leaks import without_excluded

    collection = Collection(spec.collection)
    tasks = []
    for name in spec.tasks:
        planned = spec.task_files.get(name)
        found = file_fingerprint(collection.task_path(name))
        if planned is not None and found != planned:
            raise StudyError(
                f"{collection.task_path(name)}: task file changed since the study was planned; run `study run` again"
            )
        task = collection.task(name)
        excluded = frozenset(spec.excluded_instances.get(name, ()))
        tasks.append(replace(task, instances=without_excluded(task.instances, excluded)) if excluded else task)
    return tasks


def write_merged_model(study_dir: Path, run_id: str) -> Path:
    """A LoRA run's adapter merged into its base and saved as a plain model beside it
    (`keep_checkpoints: merged`); nothing else in a study writes merged weights."""
    from quickstudy.models.loading import BaseModelCache, load_model, save_model
    from quickstudy.models.spec import ModelSpec

    target = run_dir(study_dir, run_id) / TRAIN_DIR / MERGED_MODEL_DIR
    if not target.is_dir():
        spec = ModelSpec(name_or_path=str(checkpoint_dir(study_dir, run_id)))
        save_model(load_model(spec, cache=BaseModelCache(max_entries=0)), target)
    return target


def remove_checkpoint(study_dir: Path, run_id: str) -> None:
    """Delete a training run's model and step checkpoints; its logs and spec stay."""
    from quickstudy.train.loop import CHECKPOINTS_DIR, MODEL_DIR

    train_dir = run_dir(study_dir, run_id) / TRAIN_DIR
    for name in (MODEL_DIR, CHECKPOINTS_DIR):
        shutil.rmtree(train_dir / name, ignore_errors=True)
