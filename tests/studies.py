"""Builders of study directories with known scores, written to the run-directory contract
(quickstudy.study.layout), for the report's tests: every number is computable by hand. Scores per instance of task t in a cell with
overall ROUGE-L v:  v + offset(t) + spread * s_j, with s_j half +1 and half -1 in a
seeded order per cell (0 for the odd one out),
where offset(t) is +e for proposed arms, -e for baselines and 0 for zero-shot, and
the task effects e are centred, so with equal test counts per task the overall mean
is exactly v. Exact match is 100 for the first round(n_test * v / 100) instances.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from quickstudy.evaluate.predictions import METRICS_FILE, PREDICTIONS_FILE
from quickstudy.files import write_text_atomic
from quickstudy.study.layout import CONFIG_FILE, PLAN_FILE, RUNS_DIR, SETTINGS, SPEC_FILE, STATUS_FILE, RunState


@dataclass(frozen=True)
class SyntheticTask:
    name: str
    category: str
    train_pool: int
    effect: float = 0.0  # instructions help (+) or hurt (-) this task, before centring


@dataclass(frozen=True)
class SyntheticArm:
    name: str
    setting: str  # stl | mtl | zero_shot
    start: str
    encoding: str
    scores: dict[str, float]  # size label -> overall ROUGE-L

    @property
    def role(self) -> str:
        if not SETTINGS[self.setting].trains:
            return "zero_shot"
        return "baseline" if self.encoding == "input_only" else "proposed"

    def meaning(self) -> dict:
        """The spec fields a plan writes about what the arm's runs mean."""
        return {
            "start_role": self.start,
            "start_is_prefinetuned": self.start == "base_prefinetuned",
            "instructions": self.encoding != "input_only",
            "encoding": self.encoding,
        }


@dataclass
class SyntheticStudy:
    tasks: list[SyntheticTask]
    arms: list[SyntheticArm]
    seeds: tuple[int, ...] = (1,)
    n_test: int = 10
    spread: float = 5.0
    seed_shift: float = 0.5  # seed s scores (s - mean seed) * seed_shift higher; cancels in the mean
    truncated_tasks: frozenset[str] = frozenset()  # instruction prompts of these tasks are truncated
    pending: set[tuple[str, str, str]] = field(default_factory=set)  # (setting, arm, size) not yet run
    failed: set[tuple[str, str, str]] = field(default_factory=set)
    train_counts: dict[str, dict[str, int]] | None = None  # size -> task -> instances; None: min(size, pool)

    def offsets(self) -> dict[str, float]:
        """Centred per-task instruction effects."""
        mean = sum(t.effect for t in self.tasks) / len(self.tasks)
        return {t.name: t.effect - mean for t in self.tasks}

    def train_instances(self, size: str) -> dict[str, int]:
        if self.train_counts is not None and size in self.train_counts:
            return dict(self.train_counts[size])
        if size == "all":
            return {t.name: t.train_pool for t in self.tasks}
        return {t.name: min(int(size), t.train_pool) for t in self.tasks}


THESIS_TASKS = [
    SyntheticTask("task1344_glue_entailment_classification", "Textual Entailment", 5200, effect=8.0),
    SyntheticTask("task219_rocstories_title_answer_generation", "Title Generation", 1600, effect=-6.0),
    SyntheticTask("task1390_wscfixed_coreference", "Coreference Resolution", 450, effect=4.0),
    SyntheticTask("task1439_doqa_cooking_isanswerable", "Answerability Classification", 2800, effect=-1.0),
    SyntheticTask("task1622_disfl_qa_text_modication", "Question Rewriting", 6100, effect=-5.0),
    SyntheticTask("task957_e2e_nlg_text_generation_generate", "Data to Text", 3900, effect=3.0),
]

# The thesis's headline numbers (STUDY.md), overall ROUGE-L.
THESIS_ARMS = [
    SyntheticArm(
        "proposed", "stl", "instruction_tuned", "def_pos2", {"100": 65.93, "200": 68.34, "1000": 71.71, "all": 72.04}
    ),
    SyntheticArm("baseline_1", "stl", "base_prefinetuned", "input_only", {"200": 64.29}),
    SyntheticArm("baseline_2", "stl", "base", "input_only", {"1000": 68.91}),
    SyntheticArm("baseline_3", "stl", "base", "input_only", {"all": 70.99}),
    SyntheticArm(
        "proposed", "mtl", "instruction_tuned", "def_pos2", {"100": 66.78, "200": 70.40, "1000": 73.14, "all": 74.68}
    ),
    SyntheticArm("baseline_1", "mtl", "base_prefinetuned", "input_only", {"200": 65.63}),
    SyntheticArm("baseline_2", "mtl", "base", "input_only", {"1000": 68.10}),
    SyntheticArm("zero_shot", "zero_shot", "instruction_tuned", "def_pos2", {"0": 54.30}),
]


def thesis_like_study() -> SyntheticStudy:
    """Six tasks, the thesis's arms and overall numbers, one seed."""
    return SyntheticStudy(
        tasks=list(THESIS_TASKS), arms=list(THESIS_ARMS), truncated_tasks=frozenset({THESIS_TASKS[1].name})
    )


def write_synthetic_study(root: Path, study: SyntheticStudy) -> Path:
    """Write `study` as a study directory under `root`; returns `root`."""
    root = Path(root)
    (root / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    write_text_atomic(root / CONFIG_FILE, yaml.safe_dump(_config(study), sort_keys=False))
    prefinetune = _write_run(
        root,
        {"kind": "prefinetune", "arm": None, "setting": None, "seed": study.seeds[0], "instructions": False},
        RunState.DONE,
    )
    for arm in study.arms:
        for size, value in arm.scores.items():
            for seed in study.seeds:
                shift = (seed - sum(study.seeds) / len(study.seeds)) * study.seed_shift
                groups = [[t] for t in study.tasks] if SETTINGS[arm.setting].names_task else [study.tasks]
                for tasks in groups:
                    _write_cell_runs(root, study, arm, size, seed, tasks, value + shift, prefinetune)
    fields = ("id", "kind", "arm", "setting", "task", "size", "seed", "depends_on")
    specs = [json.loads(path.read_text()) for path in sorted((root / RUNS_DIR).glob(f"*/{SPEC_FILE}"))]
    write_text_atomic(
        root / PLAN_FILE, json.dumps({"runs": [{k: spec.get(k) for k in fields} for spec in specs]}, indent=1)
    )
    return root


def _config(study: SyntheticStudy) -> dict:
    return {
        "name": "synthetic",
        "collection": {"path": "synthetic-collection", "split": "default"},
        "models": {
            "instruction_tuned": "tiny-t5-instruct",
            "base": "tiny-t5",
            "base_prefinetuned": "prefinetune of base",
        },
        "seeds": list(study.seeds),
        "arms": [
            {"name": a.name, "setting": a.setting, "start": a.start, "encoding": a.encoding, "sizes": list(a.scores)}
            for a in study.arms
        ],
    }


def _write_cell_runs(root, study, arm, size, seed, tasks, value, prefinetune) -> None:
    task = tasks[0].name if SETTINGS[arm.setting].names_task else None
    common = {
        "arm": arm.name,
        "setting": arm.setting,
        "task": task,
        "size": None if arm.role == "zero_shot" else size,
        "seed": seed,
    }
    state = RunState.FAILED if (arm.setting, arm.name, size) in study.failed else RunState.DONE
    if (arm.setting, arm.name, size) in study.pending:
        state = RunState.PENDING
    depends = [prefinetune] if arm.start == "base_prefinetuned" else []
    if arm.role != "zero_shot":
        counts, pool = study.train_instances(size), {t.name: t.train_pool for t in study.tasks}
        names = [t.name for t in tasks]
        train = {
            "train_instances": counts[task] if task else {n: counts[n] for n in names},
            "train_pool": pool[task] if task else {n: pool[n] for n in names},
        }
        spec = {"kind": "finetune", **common, **arm.meaning(), **train, "depends_on": depends}
        depends = [_write_run(root, spec, state)]
    spec = {"kind": "evaluate", **common, **arm.meaning(), "depends_on": depends}
    run_id = _write_run(root, spec, state, write_status=False)
    if state != RunState.DONE:
        _write_status(root / "runs" / run_id, state)
        return
    offsets = study.offsets()
    sign = {"proposed": 1.0, "baseline": -1.0, "zero_shot": 0.0}[arm.role]
    lines = []
    # Each cell draws its own arrangement of +/- spread, so paired differences vary under the bootstrap.
    cell_rng = random.Random(f"{arm.setting}/{arm.name}/{size}/{seed}")
    for t in tasks:
        base = value + sign * offsets[t.name]
        hits = round(study.n_test * value / 100)
        signs = [1, -1] * (study.n_test // 2) + [0] * (study.n_test % 2)
        cell_rng.shuffle(signs)
        for j in range(study.n_test):
            score = base + study.spread * signs[j]
            scores = {"exact_match": 100.0 if j < hits else 0.0, "rouge1": score, "rougeL": score}
            truncated = arm.role != "baseline" and t.name in study.truncated_tasks and j % 2 == 0
            lines.append(_prediction_line(t, j, scores, truncated))
    run_dir = root / RUNS_DIR / run_id
    write_text_atomic(run_dir / PREDICTIONS_FILE, "".join(json.dumps(line) + "\n" for line in lines))
    write_text_atomic(run_dir / METRICS_FILE, json.dumps({"overall": {"rougeL": value}}))
    _write_status(run_dir, RunState.DONE)


def _prediction_line(task: SyntheticTask, j: int, scores: dict, truncated: bool) -> dict:
    instance_id = f"{task.name.split('_')[0]}-{j:04d}"
    return {
        "id": instance_id,
        "Task": task.name,
        "Categories": [task.category],
        "Instance": {"id": instance_id, "input": f"input {j}", "output": [f"output {j}"]},
        "prediction": f"prediction {j}",
        "scores": scores,
        "prompt_truncated": truncated,
    }


def _write_run(root: Path, spec: dict, state: str, write_status: bool = True) -> str:
    run_id = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    run_dir = root / RUNS_DIR / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / SPEC_FILE, json.dumps({"id": run_id, **spec}, indent=1))
    if write_status and state != RunState.PENDING:
        _write_status(run_dir, state)
    return run_id


def _write_status(run_dir: Path, state: str) -> None:
    if state == RunState.PENDING:
        return
    status = {
        "state": str(state),
        "error": "CUDA out of memory (synthetic)" if state == RunState.FAILED else None,
        "started": "2026-01-01T00:00:00Z",
        "finished": "2026-01-01T00:10:00Z",
        "wall_seconds": 600.0,
        "device": "synthetic GPU",
        "gpu_hours": 600.0 / 3600,
    }
    write_text_atomic(run_dir / STATUS_FILE, json.dumps(status))
