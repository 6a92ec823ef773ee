"""`study plan --estimate`: the arithmetic of tokens, FLOPs and GPU-hours on a small plan."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from quickstudy.data.collection import Collection
from quickstudy.data.splits import SplitConfig, task_split
from quickstudy.models.loading import load_model
from quickstudy.models.spec import ModelSpec
from quickstudy.prompts.encoding import PromptBuilder, encoding_from_options
from quickstudy.study.config import load_study_config
from quickstudy.study.estimate import (
    DEVICE_PROFILES,
    SAMPLE_PER_TASK,
    DeviceProfile,
    estimate_study,
    parameters_from_name,
    recorded_estimate,
)
from quickstudy.study.layout import ESTIMATE_FILE, RunKind, default_study_dir
from quickstudy.study.plan import plan_study

QUICKSTUDY = Path(sys.executable).with_name("quickstudy")


@pytest.fixture(scope="module")
def small(smoke_config):
    config = load_study_config(smoke_config)
    plan = plan_study(config)
    return config, plan, estimate_study(config, plan, "a100-40gb")


def test_flops_and_hours_follow_from_tokens_parameters_and_the_device(small):
    config, plan, estimate = small
    device = DEVICE_PROFILES["a100-40gb"]
    assert device.train_flops == 312e12 * 0.40 and device.generate_flops == 312e12 * 0.10
    parameters = sum(p.numel() for p in load_model(ModelSpec(name_or_path="tiny-t5", init_seed=1)).model.parameters())
    assert {size.parameters for size in estimate.sizes.values()} == {parameters}
    assert len(estimate.runs) == len(plan.runs)
    for run, spec in zip(estimate.runs, plan.runs):
        assert run.run_id == spec.id and run.parameters == parameters
        assert run.train_flops == pytest.approx(6 * parameters * run.train_tokens * run.epochs)
        assert run.generate_flops == pytest.approx(2 * parameters * (run.prompt_tokens + run.generated_tokens))
        assert run.seconds == pytest.approx(
            run.train_flops / device.train_flops + run.generate_flops / device.generate_flops
        )
        if spec.kind == RunKind.EVALUATE:
            assert run.train_tokens == 0 and run.prompt_tokens > 0 and run.generated_tokens > 0
        else:
            assert run.train_tokens > 0 and run.generate_flops == 0
    hours = estimate.arm_hours()
    assert sum(hours.values()) == pytest.approx(estimate.total_hours())
    assert estimate.total_hours() == pytest.approx(sum(run.seconds for run in estimate.runs) / 3600)
    assert estimate.wall_hours(1) == pytest.approx(estimate.total_hours())
    # with many GPUs the wall time is the longest chain: pre-finetune -> finetune -> evaluate
    by_id = {run.run_id: run for run in estimate.runs}
    chains = [
        run.seconds
        + by_id[run.depends_on[0]].seconds
        + sum(by_id[d].seconds for d in by_id[run.depends_on[0]].depends_on)
        for run in estimate.runs
        if run.depends_on
    ]
    assert estimate.wall_hours(10_000) == pytest.approx(max(chains) / 3600)


def test_tokens_are_the_runs_actual_prompts(small):
    """An STL fine-tune's tokens: its task's train pool prompts and targets, counted with the
    model's tokenizer (ByT5 bytes: UTF-8 length + eos, capped at the budgets): the mean over
    the pool's first SAMPLE_PER_TASK instances, times the sample size."""
    config, plan, estimate = small
    run = next(r for r in plan.runs if r.kind == RunKind.FINETUNE and r.setting == "stl" and r.size == "4")
    got = next(e for e in estimate.runs if e.run_id == run.id)
    task = Collection(config.collection).task(run.task)
    pool = task_split(task, SplitConfig(**config.splits.model_dump())).train[:SAMPLE_PER_TASK]
    builder = PromptBuilder(task, encoding_from_options(run.encoding_options))
    source = [min(len(builder.prompt(i.input).encode()) + 1, 64) for i in pool]
    target = [min(len(i.references[0].encode()) + 1, 16) for i in pool]
    assert got.train_tokens == pytest.approx(4 * (sum(source) + sum(target)) / len(pool))
    assert got.epochs == pytest.approx(2 * 2 / 4)  # max_steps 2 x batch 2 over 4 examples


def test_device_profiles_scale_hours(small):
    config, plan, estimate = small
    slower = DeviceProfile(
        "half", DEVICE_PROFILES["a100-40gb"].train_flops / 2, DEVICE_PROFILES["a100-40gb"].generate_flops / 2, ""
    )
    assert sum(slower.seconds(r.train_flops, r.generate_flops) for r in estimate.runs) / 3600 == pytest.approx(
        2 * estimate.total_hours()
    )
    faster = estimate_study(config, plan, "h100")
    assert faster.total_hours() == pytest.approx(estimate.total_hours() * 312 / 989)


def test_parameters_from_hub_names():
    assert parameters_from_name("allenai/tk-instruct-3b-def-pos") == 3_000_000_000
    assert parameters_from_name("google/t5-xl-lm-adapt") == 2_849_757_184
    assert parameters_from_name("meta-llama/Llama-3.1-8B") == 8_000_000_000
    assert parameters_from_name("google/flan-t5-large") == 737_668_096
    assert parameters_from_name("some/model") is None


def test_cli_estimate_prints_hours_per_arm_records_them_and_rejects_an_unknown_device(smoke_config, tmp_path):
    done = subprocess.run(
        [str(QUICKSTUDY), "study", "plan", str(smoke_config), "--estimate", "--device", "h100", "--gpus", "4", "--json"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    estimate = json.loads(done.stdout)["estimate"]
    assert estimate["device"]["name"] == "h100" and estimate["gpus"] == 4
    assert sum(estimate["gpu_hours_by_arm"].values()) == pytest.approx(estimate["gpu_hours_total"])
    default_dir = tmp_path / default_study_dir(load_study_config(smoke_config).name)
    recorded = json.loads((default_dir / ESTIMATE_FILE).read_text())  # where `study run` will put the study
    assert recorded.pop("recorded_at") and recorded == estimate
    recorded = recorded_estimate(default_dir)
    assert recorded.device == "h100" and set(recorded.run_seconds) == {run["run_id"] for run in estimate["runs"]}
    bad = subprocess.run(
        [str(QUICKSTUDY), "study", "plan", str(smoke_config), "--estimate", "--device", "tpu", "--out", "elsewhere"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert "Invalid value for '--device'" in bad.stderr and "'tpu' is not one of 'a100-40gb'," in bad.stderr
    assert not (tmp_path / "elsewhere").exists()
    alone = subprocess.run(
        [str(QUICKSTUDY), "study", "plan", str(smoke_config), "--out", "elsewhere"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert alone.returncode == 2 and "'--out': records an estimate: give --estimate too" in alone.stderr
    assert not (tmp_path / "elsewhere").exists()
