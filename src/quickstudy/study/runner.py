"""Run a study: what is not done yet, in dependency order, resumable at any point.

The study directory is the state. A run is done when its `status.json` says so;
nothing else is remembered between invocations, so re-running the same command
after a crash continues where it stopped, and a changed setting changes the ids
(and so re-runs) of exactly the runs it affects. A fine-tuned checkpoint is
deleted once every run that reads it is done; should a later config need it
again (say, new generation settings), the fine-tune is simply run again.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from quickstudy.files import write_json_atomic, write_text_atomic
from quickstudy.study.config import StudyConfig, resolved_config_yaml
from quickstudy.study.execute import RunGroup, RunOutcome, checkpoint_dir, remove_checkpoint, write_merged_model
from quickstudy.study.executors import Executor, make_executor
from quickstudy.study.layout import CONFIG_FILE, PLAN_FILE, RunKind, RunSpec, RunState
from quickstudy.study.lock import study_lock
from quickstudy.study.plan import StudyPlan, plan_study
from quickstudy.study.status import run_state
from quickstudy.study.tracking import Tracker, make_tracker
from quickstudy.study.verify import repair_study


@dataclass
class StudyResult:
    """What one `study run` did."""

    planned: int
    already_done: int
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # run id -> error
    blocked: list[str] = field(default_factory=list)  # not run: a run they depend on failed
    repaired: list[str] = field(default_factory=list)  # damaged done runs reset to pending: "<file>: <why>"

    @property
    def complete(self) -> bool:
        return not self.failed and not self.blocked


class Progress:
    """Receives the counts as runs start and finish (the CLI draws a bar from them)."""

    def started(self, total: int) -> None: ...

    def update(self, done: int, running: int, failed: int) -> None: ...


def run_study(
    config: StudyConfig,
    study_dir: Path,
    retry_failed: bool = False,
    progress: Progress | None = None,
    repair: bool = True,
) -> StudyResult:
    """Run every run of the study that is not done; refuse if another runner holds the study."""
    progress = progress or Progress()
    plan = plan_study(config)  # first: a config that cannot be planned leaves no study directory behind
    with study_lock(study_dir):
        write_text_atomic(study_dir / CONFIG_FILE, resolved_config_yaml(config))
        write_json_atomic(study_dir / PLAN_FILE, plan.to_json())
        repaired = repair_study(study_dir, plan.runs) if repair else []  # done runs whose files do not check out
        states = {run.id: run_state(study_dir, run.id)[0] for run in plan.runs}
        if not config.keep_checkpoints:
            remove_used_checkpoints(plan, study_dir, states)
        todo = runs_to_do(plan, study_dir, states, retry_failed)
        result = StudyResult(
            planned=len(plan.runs),
            already_done=sum(state == RunState.DONE for state in states.values()),
            repaired=[str(damage) for damage in repaired],
        )
        for run in plan.runs:
            if run.id not in todo and states[run.id] == RunState.FAILED:
                result.failed[run.id] = run_state(study_dir, run.id)[1] or "failed"
        tracker = make_tracker(config, study_dir)
        executor = make_executor(config.executor, study_dir)
        try:
            schedule(
                plan,
                todo,
                states,
                executor,
                result,
                progress,
                lambda outcome: finished(outcome, plan, study_dir, states, config, tracker),
                config,
            )
        finally:
            executor.close()
            tracker.close()
    return result


def runs_to_do(plan: StudyPlan, study_dir: Path, states: dict[str, RunState], retry_failed: bool) -> set[str]:
    """Ids of the runs to execute: not done (failed ones only when retrying), plus any done
    training run whose model was deleted while a run that needs it is still to do."""
    dependents = dependents_of(plan)
    todo: set[str] = set()
    for run in reversed(plan.runs):  # a run's dependents come after it in the plan
        state = states[run.id]
        if state == RunState.FAILED and not retry_failed:
            continue
        if state != RunState.DONE:
            todo.add(run.id)
        elif run.kind.trains and any(d in todo for d in dependents[run.id]):
            if not checkpoint_dir(study_dir, run.id).is_dir():
                todo.add(run.id)
    return todo


def dependents_of(plan: StudyPlan) -> dict[str, list[str]]:
    dependents: dict[str, list[str]] = defaultdict(list)
    for run in plan.runs:
        for upstream in run.depends_on:
            dependents[upstream].append(run.id)
    return dependents


def schedule(
    plan: StudyPlan,
    todo: set[str],
    states: dict[str, RunState],
    executor: Executor,
    result: StudyResult,
    progress: Progress,
    on_finished: Callable[[RunOutcome], None],
    config: StudyConfig | None = None,
) -> None:
    """Submit runs as their dependencies finish; a failed run blocks the runs after it. With
    `executor.fuse` a fine-tune is submitted with its ready evaluations (execute.RunGroup)."""
    by_id = plan.by_id()
    dependents = dependents_of(plan)
    waiting = {
        run_id: {d for d in by_id[run_id].depends_on if d in todo or states[d] != RunState.DONE} for run_id in todo
    }
    blocked: set[str] = set()
    for run in plan.runs:
        if run.id not in todo and states[run.id] == RunState.FAILED:
            blocked |= downstream_of(run.id, dependents) & todo
    ready = deque(run.id for run in plan.runs if run.id in todo and not waiting[run.id] and run.id not in blocked)
    failed_before = len(result.failed)
    progress.started(len(todo))
    followers: dict[str, list[str]] = {}  # a submitted run -> the runs fused after it
    while ready or executor.running():
        while ready and executor.running() < executor.capacity:
            group = run_group(by_id[ready.popleft()], by_id, dependents, waiting, blocked, states, config)
            for follower in group.followers:
                del waiting[follower.id]  # runs in the group; never submitted on its own
            followers[group.run.id] = [follower.id for follower in group.followers]
            executor.submit(group)
        progress.update(len(result.done), executor.running(), len(result.failed) - failed_before)
        outcomes = executor.wait_any()
        for outcome in outcomes:
            states[outcome.run_id] = outcome.state
            if outcome.state == RunState.DONE:
                result.done.append(outcome.run_id)
                on_finished(outcome)
                for child in dependents[outcome.run_id]:
                    if child in waiting and child not in blocked:
                        waiting[child].discard(outcome.run_id)
                        if not waiting[child]:
                            ready.append(child)
            else:
                result.failed[outcome.run_id] = outcome.error or "failed"
                blocked |= downstream_of(outcome.run_id, dependents)
        reported = {outcome.run_id for outcome in outcomes}
        for run_id in reported & set(followers):  # followers a lost worker never started: on their own
            ready.extend(f for f in followers.pop(run_id) if f not in reported and f not in blocked)
        progress.update(len(result.done), executor.running(), len(result.failed) - failed_before)
    result.blocked = [run.id for run in plan.runs if run.id in blocked and run.id in todo]


def run_group(
    run: RunSpec,
    by_id: dict[str, RunSpec],
    dependents: dict[str, list[str]],
    waiting: dict[str, set[str]],
    blocked: set[str],
    states: dict[str, RunState],
    config: StudyConfig | None,
) -> RunGroup:
    """What to submit for `run`: a one-process fine-tune with `executor.fuse` takes along the
    evaluations waiting on it alone, and writes its model only when kept or still needed."""
    if config is None:
        return RunGroup(run)
    executor = config.executor
    if not (executor.fuse and run.kind == RunKind.FINETUNE and run.processes == 1):
        return RunGroup(run, resident=executor.resident)
    children = dependents.get(run.id, [])
    fused = tuple(
        by_id[child]
        for child in children
        if waiting.get(child) == {run.id} and child not in blocked and by_id[child].kind == RunKind.EVALUATE
    )
    fused_ids = {spec.id for spec in fused}
    needed = any(child not in fused_ids and states.get(child) != RunState.DONE for child in children)
    save = bool(config.keep_checkpoints) or not fused or needed
    return RunGroup(run, fused, save_model=save, resident=executor.resident)


def downstream_of(run_id: str, dependents: dict[str, list[str]]) -> set[str]:
    found: set[str] = set()
    stack = list(dependents[run_id])
    while stack:
        child = stack.pop()
        if child not in found:
            found.add(child)
            stack.extend(dependents[child])
    return found


def finished(
    outcome: RunOutcome,
    plan: StudyPlan,
    study_dir: Path,
    states: dict[str, RunState],
    config: StudyConfig,
    tracker: Tracker,
) -> None:
    """After a run is done: log it, write a LoRA run's merged weights when asked
    (`keep_checkpoints: merged`), and delete fine-tuned models no run needs any more."""
    run = plan.by_id()[outcome.run_id]
    tracker.log_run(run, study_dir)
    if config.keep_checkpoints == "merged" and run.adapter is not None:
        write_merged_model(study_dir, run.id)
    if not config.keep_checkpoints:
        remove_used_checkpoints(plan, study_dir, states, only=set(run.depends_on))


def remove_used_checkpoints(
    plan: StudyPlan, study_dir: Path, states: dict[str, RunState], only: set[str] | None = None
) -> None:
    """Delete the model of every done fine-tune whose dependents are all done (pre-finetuned
    models are kept: they are costly, and a changed downstream setting reuses them)."""
    dependents = dependents_of(plan)
    for run in plan.runs:
        if run.kind != RunKind.FINETUNE or (only is not None and run.id not in only) or states[run.id] != RunState.DONE:
            continue
        if all(states[child] == RunState.DONE for child in dependents[run.id]):
            remove_checkpoint(study_dir, run.id)
