"""Optional experiment tracking: each finished run's spec, metrics and files in MLflow.

With `tracking: mlflow` every run that finishes is logged as an MLflow run named
by its id, in an experiment named after the study: its spec as parameters, its
overall scores (evaluate) or final loss (training) as metrics, and spec.json,
status.json and metrics.json as artifacts; report figures found in the study
directory are logged when the study ends. The tracking URI defaults to a SQLite
store in the study directory (`sqlite:///<study>/mlflow.db`). Logging happens
in the runner's process only, so the store has a single writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quickstudy.errors import ConfigError
from quickstudy.evaluate.predictions import METRICS_FILE
from quickstudy.study.config import StudyConfig
from quickstudy.study.layout import SPEC_FILE, STATUS_FILE, RunSpec, read_run_spec, run_dir

_PARAM_KEYS = ("kind", "arm", "setting", "task", "size", "seed", "start_role", "encoding", "instructions")
_FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


class Tracker:
    """Tracks nothing (`tracking: none`)."""

    def log_run(self, run: RunSpec, study_dir: Path) -> None: ...

    def close(self) -> None: ...


def make_tracker(config: StudyConfig, study_dir: Path) -> Tracker:
    if config.tracking == "mlflow":
        return MlflowTracker(config.tracking_uri or default_tracking_uri(study_dir), config.name, study_dir)
    return Tracker()


def default_tracking_uri(study_dir: Path) -> str:
    return f"sqlite:///{study_dir.resolve() / 'mlflow.db'}"


class MlflowTracker(Tracker):
    def __init__(self, uri: str, experiment: str, study_dir: Path):
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise ConfigError("tracking: mlflow is not installed (pip install 'quickstudy[mlflow]')") from None

        self.client = MlflowClient(tracking_uri=uri)
        self.study_dir = study_dir
        found = self.client.get_experiment_by_name(experiment)
        # A SQLite store's default artifact root is ./mlruns in the working directory;
        # keep a local store's artifacts inside the study instead.
        artifacts = (study_dir.resolve() / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None
        self.experiment_id = (
            found.experiment_id if found else self.client.create_experiment(experiment, artifact_location=artifacts)
        )

    def log_run(self, run: RunSpec, study_dir: Path) -> None:
        from mlflow.entities import Metric, Param

        folder = run_dir(study_dir, run.id)
        spec = read_run_spec(folder / SPEC_FILE) if (folder / SPEC_FILE).is_file() else run
        tracked = self.client.create_run(self.experiment_id, run_name=run.id, tags={"quickstudy.run_id": run.id})
        run_id = tracked.info.run_id
        params = [Param(key, str(getattr(spec, key))) for key in _PARAM_KEYS] + [
            Param(f"training.{key}", str(value)) for key, value in sorted(spec.training.items())
        ]
        self.client.log_batch(
            run_id, params=params, metrics=[Metric(k, v, 0, 0) for k, v in run_metrics(folder, spec).items()]
        )
        for name in (SPEC_FILE, STATUS_FILE, METRICS_FILE):
            if (folder / name).is_file():
                self.client.log_artifact(run_id, str(folder / name))
        self.client.set_terminated(run_id)

    def close(self) -> None:
        figures = sorted(p for p in self.study_dir.rglob("*") if p.suffix in _FIGURE_SUFFIXES and "runs" not in p.parts)
        if not figures:
            return
        tracked = self.client.create_run(self.experiment_id, run_name="report", tags={"quickstudy.run_id": "report"})
        for figure in figures:
            self.client.log_artifact(tracked.info.run_id, str(figure), artifact_path="figures")
        self.client.set_terminated(tracked.info.run_id)


def run_metrics(folder: Path, spec: RunSpec) -> dict[str, float]:
    """Overall scores of an evaluate run, or the final loss of a training run."""
    metrics = read_json(folder / METRICS_FILE)
    if metrics and isinstance(metrics.get("overall"), dict):
        return {k: float(v) for k, v in metrics["overall"].items() if isinstance(v, (int, float))}
    return {"final_loss": spec.final_loss} if spec.final_loss is not None else {}


def read_json(path: Path) -> dict[str, Any] | None:
    import json

    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
