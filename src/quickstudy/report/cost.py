"""The cost estimate recorded before launch (study.estimate) against the device-hours its
runs took: compared are the done runs the estimate covers that ran on its kind of device
(an estimate for GPUs says nothing of runs on a CPU, and the other way round)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from quickstudy.report.results import RunRecord
from quickstudy.study.estimate import RecordedEstimate
from quickstudy.study.layout import RunState


@dataclass(frozen=True)
class CostComparison:
    estimated_hours: float  # the compute the estimate gives the compared runs
    measured_hours: float  # the device-hours they took (loading, saving and scoring included)
    compared: int  # done runs the estimate covers, run on its kind of device
    other_device: int  # done runs it covers that ran on the other kind of device
    not_covered: int  # done runs it does not cover (planned with another configuration)
    covered: int  # runs of the study it covers, whatever their state
    planned: int

    @property
    def ratio(self) -> float:
        """Measured over estimated hours (NaN when nothing estimated was compared)."""
        return self.measured_hours / self.estimated_hours if self.estimated_hours > 0 else math.nan


def cost_comparison(estimate: RecordedEstimate, runs: Sequence[RunRecord]) -> CostComparison:
    done = [run for run in runs if run.state == RunState.DONE]
    covered = [run for run in done if run.run_id in estimate.run_seconds]
    compared = [run for run in covered if run.device_kind == estimate.kind]
    return CostComparison(
        estimated_hours=sum(estimate.run_seconds[run.run_id] for run in compared) / 3600,
        measured_hours=sum(run.device_hours for run in compared),
        compared=len(compared),
        other_device=len(covered) - len(compared),
        not_covered=len(done) - len(covered),
        covered=sum(run.run_id in estimate.run_seconds for run in runs),
        planned=len(runs),
    )


def recorded_before_launch(estimate: RecordedEstimate, runs: Sequence[RunRecord]) -> bool | None:
    """Whether the estimate was recorded before the study's first run started (None: unknown)."""
    starts = [run.started for run in runs if run.started is not None]
    if estimate.recorded_at is None or not starts:
        return None
    return estimate.recorded_at <= min(starts)
