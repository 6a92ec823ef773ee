"""One runner, one run (issue 17): workers die with their runner, and a run another live
process holds is never executed a second time; a stale lease is taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml

from quickstudy.study.config import load_study_config
from quickstudy.study.layout import LEASE_FILE, RunKind
from quickstudy.study.plan import plan_study
from quickstudy.study.runner import run_study
from test_study_run import smoke_variant

QUICKSTUDY = str(Path(sys.executable).with_name("quickstudy"))


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_kill_9_of_a_two_worker_runner_leaves_no_process_behind(smoke_config: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load(smoke_config.read_text())
    training = {**raw["training"], "max_steps": 100_000}  # the runs are still training when the runner dies
    config = smoke_variant(smoke_config, tmp_path, training=training, executor={**raw["executor"], "workers": 2})
    study_dir = tmp_path / "study"
    runner = subprocess.Popen(
        [QUICKSTUDY, "study", "run", str(config), "--out", str(study_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while len(list(study_dir.glob(f"runs/*/{LEASE_FILE}"))) < 2:  # two runs started, one per worker
        assert runner.poll() is None and time.monotonic() < deadline, "the workers never started two runs"
        time.sleep(0.2)
    workers = psutil.Process(runner.pid).children(recursive=True)
    holders = {json.loads(path.read_text())["pid"] for path in study_dir.glob(f"runs/*/{LEASE_FILE}")}
    assert holders <= {worker.pid for worker in workers} and len(holders) == 2
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 5
    while not all(gone(worker) for worker in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [worker.pid for worker in workers if not gone(worker)] == []


def test_a_run_held_by_a_live_process_is_not_run_and_a_stale_lease_is_taken_over(smoke_config, tmp_path) -> None:
    torch.set_num_threads(1)
    raw = yaml.safe_load(smoke_config.read_text())
    arms = [arm for arm in raw["arms"] if arm["name"] == "zero_shot"]
    arms.append({"name": "stl", "start": "instruction_tuned", "encoding": "def_pos2", "setting": "stl", "sizes": [4]})
    config = load_study_config(smoke_variant(smoke_config, tmp_path, arms=arms))
    study_dir = tmp_path / "study"
    plan = plan_study(config)
    held = next(run for run in plan.runs if run.kind == RunKind.EVALUATE and not run.depends_on)
    stale = next(run for run in plan.runs if run.kind == RunKind.FINETUNE)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        for run, pid in ((held, holder.pid), (stale, dead.pid)):
            (study_dir / "runs" / run.id).mkdir(parents=True)
            lease = {"pid": pid, "host": socket.gethostname(), "heartbeat": time.time(), "token": f"t{pid}"}
            (study_dir / "runs" / run.id / LEASE_FILE).write_text(json.dumps(lease))
        result = run_study(config, study_dir)
        assert stale.id in result.done  # the dead holder's lease was taken over
        assert f"pid {holder.pid} on {socket.gethostname()} is running this run" in result.failed[held.id]
        assert not (study_dir / "runs" / held.id / "log.txt").exists()  # never started here
        assert not (study_dir / "runs" / held.id / "status.json").exists()  # nor recorded as failed
        assert not list(study_dir.glob(f"runs/*/{LEASE_FILE}"))[1:]  # only the live holder's lease is left
    finally:
        holder.kill()
        holder.wait()
    again = run_study(config, study_dir)  # its holder gone, the run is run
    assert again.complete and held.id in again.done


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_die_with_parent_kills_a_child_whose_parent_dies(tmp_path: Path) -> None:
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import os, time; "
        "from quickstudy.study.lease import die_with_parent; die_with_parent(os.getppid()); time.sleep(600)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = psutil.Process(int(parent.stdout.readline()))
    time.sleep(1.0)  # the child has asked for the signal
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(child)
