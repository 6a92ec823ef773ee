"""Reliability: a training process killed after a checkpoint resumes to the same final weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from quickstudy.train.stages import load_train_run_config, run_train_config

pytestmark = pytest.mark.superni

TASK = "task1152_bard_analogical_reasoning_causation"


def _config(tmp_path: Path, sample_dir: Path) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(
        f"""
stage: finetune
model: {{name_or_path: tiny-t5, init_seed: 2}}
data: {{collection: {sample_dir}, tasks: [{TASK}], size: all}}
encoding: def_pos2
training: {{learning_rate: 1.0e-3, max_steps: 30, batch_size: 4, max_source_length: 128, max_target_length: 16,
        checkpoint_every_steps: 5, log_every_steps: 5, seed: 11, progress_bar: false}}
cache_dir: {tmp_path / "token-cache"}
output_dir: {tmp_path / "unused"}
"""
    )
    return path


def _log(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "train_log.jsonl").read_text().splitlines()]


def test_killed_run_resumes_from_its_checkpoint_to_identical_weights(tmp_path, sample_dir):
    torch.set_num_threads(1)
    config = _config(tmp_path, sample_dir)
    whole, killed = tmp_path / "whole", tmp_path / "killed"

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", "import torch; torch.set_num_threads(1); from quickstudy.cli import main; main()",
         "train", str(config), "--set", f"output_dir={killed}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not list((killed / "checkpoints").glob("step-*")):
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "model").exists()  # it really died mid-run

    resumed = run_train_config(load_train_run_config(config, [f"output_dir={killed}"]))
    assert resumed.resumed_from_step is not None and 5 <= resumed.resumed_from_step < 30
    uninterrupted = run_train_config(load_train_run_config(config, [f"output_dir={whole}"]))
    assert uninterrupted.resumed_from_step is None and resumed.steps == uninterrupted.steps == 30

    a = load_file(whole / "model" / "model.safetensors")
    b = load_file(killed / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the log has each step once, with the uninterrupted run's losses
    assert [r["step"] for r in _log(killed)] == [5, 10, 15, 20, 25, 30]
    assert [r["loss"] for r in _log(killed)] == [r["loss"] for r in _log(whole)]
    assert not (killed / "checkpoints").exists()  # step checkpoints are dropped once the model is saved

    again = run_train_config(load_train_run_config(config, [f"output_dir={whole}"]))
    assert again == uninterrupted  # a finished run is not trained again
