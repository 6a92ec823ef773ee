"""One training run as several data-parallel processes (`executor.processes_per_run`).

The executor's process starts `torchrun` (torch.distributed.run) on this machine with
`--nproc_per_node N`; each of its N processes runs this module's `main`, which executes
the run's training (`execute.train_run`, the same code as a one-process run) under
accelerate: one GPU per process on a GPU machine, N gloo processes on the CPU, DeepSpeed
when `training.deepspeed` says so. Rank 0 writes what the run counted (or any process its
error) to `runs/<id>/launched.json`, which the executor reads back; the processes' output
goes to the run's log.txt. Under Ray the same happens inside one task that holds the N
processes' GPUs and CPUs on one node.

No process outlives the executor: torchrun gets SIGKILL when the process that started it
dies (Linux's parent-death signal), and every training process exits when torchrun does;
an interrupted launch (Ctrl-C, a cancelled Ray task) kills torchrun's whole process group.

    python -m torch.distributed.run --standalone --nproc_per_node N -m quickstudy.study.launch STUDY_DIR RUN_ID
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from quickstudy.errors import QuickstudyError, StudyError
from quickstudy.files import write_json_atomic
from quickstudy.study.config import ExecutorConfig, StudyConfig
from quickstudy.study.layout import LAUNCHED_FILE, LOG_FILE, SPEC_FILE, RunSpec, read_run_spec, run_dir

PARENT_POLL_SECONDS = 0.5  # how often a training process checks that torchrun is still there
STOP_GRACE_SECONDS = 10.0  # after SIGTERM, how long an interrupted launch waits before SIGKILL
_PR_SET_PDEATHSIG = 1  # prctl(2) option: the signal this process gets when its parent dies


class LaunchFailed(RuntimeError):
    """A multi-process run's processes died without reporting a QuickstudyError (out of
    memory, a lost device, a crash): unexpected, so an executor may retry it."""


def processes_of(spec: RunSpec) -> int:
    """How many processes a run is launched as: a training run its planned count, any other one."""
    return spec.processes if spec.kind.trains else 1


def run_resources(spec: RunSpec, executor: ExecutorConfig) -> tuple[float, float]:
    """(CPUs, GPUs) a run holds: the executor's per-process resources times its processes."""
    processes = processes_of(spec)
    return executor.num_cpus * processes, executor.num_gpus * processes


def resources_text(study: StudyConfig) -> str:
    """What `study plan` says about the processes and GPUs each run takes."""
    executor = study.executor
    processes, gpus = executor.processes_per_run, executor.num_gpus
    launch = "one process" if processes == 1 else f"{processes} data-parallel processes (torchrun)"
    if study.training.get("deepspeed"):
        launch += f" with DeepSpeed {study.training['deepspeed']}"
    return (
        f"each training run: {launch}, {_gpus(gpus * processes)}; "
        f"each evaluation run: one process, {_gpus(gpus)} ({executor.kind} executor)"
    )


def _gpus(count: float) -> str:
    return f"{count:g} GPU{'' if count == 1 else 's'}" if count else "no GPU (CPU)"


# --- in the executor's process ------------------------------------------------------------


def launched_train_run(
    spec: RunSpec, study_dir: Path, group: Any = None, memory: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run a training run as `spec.processes` torchrun processes and return what its rank 0
    counted; a QuickstudyError in any process is raised here as a StudyError with its message.
    The call form of execute.train_run; `group` and `memory` are unused (launched runs are never fused)."""
    folder = run_dir(study_dir, spec.id)
    report = folder / LAUNCHED_FILE
    report.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={spec.processes}",
        "-m", __name__, str(study_dir), spec.id,
    ]  # fmt: skip
    libc = _libc()
    with open(folder / LOG_FILE, "a", encoding="utf-8") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one, out of reach of the terminal's Ctrl-C
            preexec_fn=(lambda: libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)) if libc is not None else None,
        )
        try:
            code = process.wait()
        finally:
            stop_group(process)
    return launched_result(report, code, folder / LOG_FILE)


def launched_result(report: Path, code: int, log: Path) -> dict[str, Any]:
    """What the processes reported in `report`, or the error they reported, raised."""
    import json

    try:
        reported = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        reported = {}
    if "error" in reported:
        raise (StudyError if reported.get("expected") else LaunchFailed)(reported["error"])
    if code != 0 or "counts" not in reported:
        raise LaunchFailed(f"torchrun exited with code {code} without a result; see {log}")
    return reported["counts"]


def stop_group(process: subprocess.Popen[Any]) -> None:
    """End `process` and its process group (torchrun and its training processes), politely first."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _libc() -> Any:
    """The C library, for prctl (Linux); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


# --- in each training process (started by torchrun) ---------------------------------------


def exit_with_parent() -> None:
    """End this process when its parent (torchrun) ends, however it ends: the kernel's
    parent-death signal where there is one, and a watcher thread everywhere."""
    parent = os.getppid()
    libc = _libc()
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    if parent == 1:  # already orphaned before we looked
        os._exit(1)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main(argv: list[str]) -> int:
    """One of a launched run's processes: train, then report (rank 0) or report the error."""
    from transformers.utils import logging as hf_logging

    from quickstudy.errors import one_line_error
    from quickstudy.study.execute import train_run

    exit_with_parent()
    hf_logging.disable_progress_bar()
    study_dir, run_id = Path(argv[0]), argv[1]
    folder = run_dir(study_dir, run_id)
    rank = int(os.environ.get("RANK", "0"))
    try:
        spec = read_run_spec(folder / SPEC_FILE)
        counts = train_run(spec, study_dir)
    except Exception as error:
        traceback.print_exc()
        expected = isinstance(error, QuickstudyError)
        write_json_atomic(folder / LAUNCHED_FILE, {"error": one_line_error(error), "expected": expected, "rank": rank})
        return 1
    if rank == 0:
        write_json_atomic(folder / LAUNCHED_FILE, {"counts": counts})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
