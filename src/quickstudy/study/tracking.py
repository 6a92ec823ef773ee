"""Optional experiment tracking: each finished run's spec, per-step training curve and final
metrics in MLflow, Weights & Biases or TensorBoard (`tracking:` in the study config).

One tracker run per study run, named by its id and grouped by the study's name: its spec
as parameters (config), the loss and learning rate of every logged training step (read
from the run's `train_log.jsonl`, so a resumed run logs each step once), and its overall
scores (evaluate) or final loss (training) as final metrics. Logging happens in the
runner's process only, after each run is done, so every store has a single writer.

- `mlflow`: an experiment named after the study; default store `sqlite:///<study>/mlflow.db`
  (`tracking_uri` for another); spec.json, status.json and metrics.json as artifacts, and
  report figures found in the study directory when the study ends.
- `wandb`: project and group = the study's name, runs under `<study>/wandb`; offline when
  `WANDB_MODE=offline` (then `wandb sync` uploads them later).
- `tensorboard`: one event folder per run under `<study>/tensorboard` (or `tracking_uri`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quickstudy.errors import ConfigError, StudyError
from quickstudy.evaluate.predictions import METRICS_FILE
from quickstudy.study.config import StudyConfig
from quickstudy.study.layout import RUNS_DIR, SPEC_FILE, STATUS_FILE, TRAIN_DIR, RunSpec, read_run_spec, run_dir

_PARAM_KEYS = ("kind", "arm", "setting", "task", "size", "seed", "start_role", "encoding", "instructions", "lora")
_FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"


@dataclass(frozen=True)
class TrackedRun:
    """What a tracker receives for one finished run."""

    spec: RunSpec
    params: dict[str, str]
    steps: list[dict[str, float]]  # {"step", "loss", "lr"} per logged training step
    metrics: dict[str, float]


def tracked_run(run: RunSpec, study_dir: Path) -> TrackedRun:
    """The run's spec (as written once done), parameters, per-step curve and final metrics."""
    from quickstudy.train.loop import LOG_FILE, logged_steps

    folder = run_dir(study_dir, run.id)
    spec = read_run_spec(folder / SPEC_FILE) if (folder / SPEC_FILE).is_file() else run
    params = {key: str(getattr(spec, key)) for key in _PARAM_KEYS}
    params.update({f"training.{key}": str(value) for key, value in sorted(spec.training.items())})
    params.update({f"lora.{key}": str(value) for key, value in sorted((spec.adapter or {}).items())})
    log = folder / TRAIN_DIR / LOG_FILE
    steps = [
        {"step": record["step"], "loss": float(record["loss"]), "lr": float(record["lr"])}
        for _, record in (logged_steps(log) if log.is_file() else [])
        if isinstance(record.get("loss"), (int, float)) and isinstance(record.get("lr"), (int, float))
    ]
    return TrackedRun(spec, params, steps, run_metrics(folder, spec))


class Tracker:
    """Tracks nothing (`tracking: none`)."""

    def log_run(self, run: RunSpec, study_dir: Path) -> None: ...

    def close(self) -> None: ...


def make_tracker(config: StudyConfig, study_dir: Path) -> Tracker:
    if config.tracking == "mlflow":
        return MlflowTracker(config.tracking_uri or default_tracking_uri(study_dir), config.name, study_dir)
    if config.tracking == "wandb":
        return WandbTracker(config.name, study_dir)
    if config.tracking == "tensorboard":
        return TensorboardTracker(Path(config.tracking_uri) if config.tracking_uri else study_dir / TENSORBOARD_DIR)
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

        tracked = tracked_run(run, study_dir)
        folder = run_dir(study_dir, run.id)
        created = self.client.create_run(self.experiment_id, run_name=run.id, tags={"quickstudy.run_id": run.id})
        run_id = created.info.run_id
        last_step = tracked.steps[-1]["step"] if tracked.steps else 0
        metrics = [Metric(key, point[key], 0, int(point["step"])) for point in tracked.steps for key in ("loss", "lr")]
        metrics += [Metric(key, value, 0, int(last_step)) for key, value in tracked.metrics.items()]
        params = [Param(key, value) for key, value in tracked.params.items()]
        for start in range(0, max(len(metrics), 1), 1000):  # MLflow takes at most 1000 metrics per batch
            self.client.log_batch(run_id, params=params if start == 0 else [], metrics=metrics[start : start + 1000])
        for name in (SPEC_FILE, STATUS_FILE, METRICS_FILE):
            if (folder / name).is_file():
                self.client.log_artifact(run_id, str(folder / name))
        self.client.set_terminated(run_id)

    def close(self) -> None:
        figures = sorted(
            p for p in self.study_dir.rglob("*") if p.suffix in _FIGURE_SUFFIXES and RUNS_DIR not in p.parts
        )
        if not figures:
            return
        tracked = self.client.create_run(self.experiment_id, run_name="report", tags={"quickstudy.run_id": "report"})
        for figure in figures:
            self.client.log_artifact(tracked.info.run_id, str(figure), artifact_path="figures")
        self.client.set_terminated(tracked.info.run_id)


class WandbTracker(Tracker):
    """Weights & Biases: one W&B run per study run, project and group named after the study."""

    def __init__(self, study_name: str, study_dir: Path):
        try:
            import wandb
        except ImportError:
            raise ConfigError("tracking: wandb is not installed (pip install 'quickstudy[wandb]')") from None
        self.wandb = wandb
        self.study_name = study_name
        self.folder = study_dir / WANDB_DIR

    def log_run(self, run: RunSpec, study_dir: Path) -> None:
        tracked = tracked_run(run, study_dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            logged = self.wandb.init(
                project=self.study_name,
                group=self.study_name,
                name=run.id,
                job_type=str(run.kind),
                config=tracked.params,
                dir=str(self.folder),
            )
        except Exception as error:  # not logged in, no network: one line, the study's runs are kept
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise StudyError(f"tracking: wandb: {first} (`wandb login`, or WANDB_MODE=offline)") from None
        try:
            for point in tracked.steps:
                logged.log({"loss": point["loss"], "lr": point["lr"]}, step=int(point["step"]))
            logged.summary.update(tracked.metrics)
        finally:
            logged.finish()


class TensorboardTracker(Tracker):
    """TensorBoard: the curve as scalars, final metrics under `final/`, the parameters as text."""

    def __init__(self, folder: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "tracking: tensorboard is not installed (pip install 'quickstudy[tensorboard]')"
            ) from None
        self.writer_class = SummaryWriter
        self.folder = folder

    def log_run(self, run: RunSpec, study_dir: Path) -> None:
        tracked = tracked_run(run, study_dir)
        writer = self.writer_class(log_dir=str(self.folder / run.id))
        try:
            for point in tracked.steps:
                writer.add_scalar("loss", point["loss"], int(point["step"]))
                writer.add_scalar("lr", point["lr"], int(point["step"]))
            last_step = int(tracked.steps[-1]["step"]) if tracked.steps else 0
            for key, value in tracked.metrics.items():
                writer.add_scalar(f"final/{key}", value, last_step)
            writer.add_text("spec", "\n".join(f"    {key}: {value}" for key, value in tracked.params.items()))
        finally:
            writer.close()


def run_metrics(folder: Path, spec: RunSpec) -> dict[str, float]:
    """Overall scores of an evaluate run, or the final loss of a training run."""
    metrics = read_json(folder / METRICS_FILE)
    if metrics and isinstance(metrics.get("overall"), dict):
        return {k: float(v) for k, v in metrics["overall"].items() if isinstance(v, (int, float))}
    return {"final_loss": spec.final_loss} if spec.final_loss is not None else {}


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
