"""Where runs execute: in this process, in worker processes, or as Ray tasks.

An executor takes runs whose dependencies are done (`submit`) and hands back
outcomes as runs finish (`wait_any`); the runner decides what is ready. Every
executor calls the same `execute_run`, so results do not depend on where a run
ran.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

from quickstudy.errors import ConfigError, one_line_error
from quickstudy.study.config import ExecutorConfig
from quickstudy.study.execute import RunGroup, RunOutcome, execute_group, write_status
from quickstudy.study.launch import run_resources
from quickstudy.study.layout import RunState, run_dir
from quickstudy.study.lease import die_with_parent
from quickstudy.study.status import run_state


class Executor(Protocol):
    capacity: int

    def submit(self, group: RunGroup) -> None: ...

    def running(self) -> int: ...

    def wait_any(self) -> list[RunOutcome]: ...

    def close(self) -> None: ...


def make_executor(config: ExecutorConfig, study_dir: Path) -> Executor:
    if config.kind == "ray":
        return RayExecutor(config, study_dir)
    if config.workers > 1:
        return ProcessExecutor(config, study_dir)
    return InProcessExecutor(study_dir)


class InProcessExecutor:
    """One run at a time in this process, so a loaded base model stays cached between runs."""

    capacity = 1

    def __init__(self, study_dir: Path):
        self.study_dir = study_dir
        self._queue: deque[RunGroup] = deque()

    def submit(self, group: RunGroup) -> None:
        self._queue.append(group)

    def running(self) -> int:
        return len(self._queue)

    def wait_any(self) -> list[RunOutcome]:
        return execute_group(self._queue.popleft(), self.study_dir) if self._queue else []

    def close(self) -> None:
        self._queue.clear()


class ProcessExecutor:
    """`workers` runs at once, each in a worker process (spawned: no forked CUDA or threads)."""

    def __init__(self, config: ExecutorConfig, study_dir: Path):
        self.study_dir = study_dir
        self.capacity = config.workers
        self._pool = ProcessPoolExecutor(
            max_workers=config.workers,
            mp_context=get_context("spawn"),
            initializer=_start_worker,
            initargs=(max(1, int(config.num_cpus)), os.getpid()),
        )
        self._futures: dict[Future[list[RunOutcome]], RunGroup] = {}

    def submit(self, group: RunGroup) -> None:
        self._futures[self._pool.submit(execute_group, group, self.study_dir)] = group

    def running(self) -> int:
        return len(self._futures)

    def wait_any(self) -> list[RunOutcome]:
        finished, _ = wait(list(self._futures), return_when=FIRST_COMPLETED)
        outcomes = []
        for future in finished:
            group = self._futures.pop(future)
            error = future.exception()
            outcomes += future.result() if error is None else lost_group(self.study_dir, group, error)
        return outcomes

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _start_worker(num_cpus: int, runner: int) -> None:
    """A worker dies with its runner (no orphan keeps training after a `kill -9`), and gets
    its share of the CPUs (`executor.num_cpus`), so N workers do not each start one thread
    per core and slow each other down."""
    import torch

    die_with_parent(runner)
    torch.set_num_threads(num_cpus)


class RayExecutor:
    """Each run a Ray task with the config's resources and retries.

    Connects to `ray_address` when given (a cluster; every node must see the study
    directory on a shared file system), else starts a local Ray on this machine
    with `ray_num_cpus` CPUs (None: all of them).
    Ray queues tasks until a node has their resources, so every ready run is
    submitted at once."""

    capacity = 1_000_000

    def __init__(self, config: ExecutorConfig, study_dir: Path):
        try:
            import ray
        except ImportError:
            raise ConfigError("executor.kind: ray is not installed (pip install 'quickstudy[ray]')") from None
        self._ray = ray
        self.study_dir = study_dir
        if not ray.is_initialized():
            try:
                if config.ray_address:
                    ray.init(address=config.ray_address, log_to_driver=False)
                else:
                    ray.init(num_cpus=config.ray_num_cpus, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise ConfigError(
                    f"executor.ray_address: cannot connect to Ray at {config.ray_address!r} ({one_line_error(error)})"
                ) from None
        self.config = config
        self._task = ray.remote(_ray_execute_run)
        self._refs: dict[Any, RunGroup] = {}

    def submit(self, group: RunGroup) -> None:
        # A run of N processes is one task holding N processes' resources, so on one node (study.launch)
        num_cpus, num_gpus = run_resources(group.run, self.config)
        task = self._task.options(
            num_cpus=num_cpus, num_gpus=num_gpus, max_retries=self.config.max_retries, retry_exceptions=True
        )
        self._refs[task.remote(group, str(self.study_dir))] = group

    def running(self) -> int:
        return len(self._refs)

    def wait_any(self) -> list[RunOutcome]:
        finished, _ = self._ray.wait(list(self._refs), num_returns=1)
        outcomes = []
        for ref in finished:
            group = self._refs.pop(ref)
            try:
                outcomes += self._ray.get(ref)
            except Exception as error:  # the task failed on every retry, or its worker died
                outcomes += lost_group(self.study_dir, group, getattr(error, "cause", None) or error)
        return outcomes

    def close(self) -> None:
        for ref in self._refs:
            self._ray.cancel(ref, force=True)
        self._refs.clear()


def _ray_execute_run(group: RunGroup, study_dir: str) -> list[RunOutcome]:
    """The Ray task: unexpected errors are raised again so that Ray retries them."""
    return execute_group(group, Path(study_dir), reraise_unexpected=True)


def lost_group(study_dir: Path, group: RunGroup, error: BaseException) -> list[RunOutcome]:
    """The outcomes of a group whose worker raised or died: runs it finished are done, the
    run it was in is failed (recorded unless it recorded it), runs after that never started."""
    outcomes = []
    for spec in (group.run, *group.followers):
        state = run_state(study_dir, spec.id)[0]
        if state == RunState.DONE:
            outcomes.append(RunOutcome(spec.id, RunState.DONE))
        elif spec.id == group.run.id or not outcomes or outcomes[-1].state == RunState.DONE:
            outcomes.append(lost_run(study_dir, spec.id, error))
    return outcomes


def lost_run(study_dir: Path, run_id: str, error: BaseException) -> RunOutcome:
    """The outcome of a run whose worker raised or died; recorded unless the run recorded it itself."""
    message = one_line_error(error)
    if run_state(study_dir, run_id)[0] == RunState.PENDING:
        import time

        folder = run_dir(study_dir, run_id)
        folder.mkdir(parents=True, exist_ok=True)
        write_status(folder, RunState.FAILED, time.time(), error=message)
    return RunOutcome(run_id, RunState.FAILED, message)
