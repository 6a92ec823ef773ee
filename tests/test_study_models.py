"""Today's models in a study: a decoder-only model through its chat template beside one
without, LoRA on a pre-finetuned role and on an arm (own run ids, adapters saved and
loaded, merged weights only with `keep_checkpoints: merged`), resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from quickstudy.models.loading import MODEL_INFO
from quickstudy.models.spec import LoraSpec, ModelSpec
from quickstudy.study.config import load_study_config
from quickstudy.study.execute import checkpoint_dir
from quickstudy.study.layout import MERGED_MODEL_DIR, TRAIN_DIR, RunKind, run_dir
from quickstudy.study.plan import plan_study
from quickstudy.study.runner import run_study
from quickstudy.train.config import TrainConfig
from quickstudy.train.stages import TaskSelection, train_stage

LORA = {"r": 4, "alpha": 8, "dropout": 0.0}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def study_config(synth_collection: Path, tmp_path: Path, **changes) -> Path:
    raw = {
        "name": "models",
        "collection": str(synth_collection),
        "tasks": {"seen": {"max_tasks": 2}, "unseen": {"names": ["task066_coref_referent"]}},
        "splits": {"n_test": 4, "n_validation": 2},
        "models": {
            "chat": {"name_or_path": "tiny-llama", "tokenizer": "byt5-chatml", "init_seed": 1},
            "plain": {"name_or_path": "tiny-llama", "init_seed": 1},
            "chat_lora_pf": {"prefinetune": {"from": "chat", "encoding": "def_pos2", "per_task": 2, "lora": LORA}},
        },
        "arms": [
            {"name": "chat_full", "start": "chat", "encoding": "def_pos2", "setting": "stl", "sizes": [4]},
            {"name": "chat_lora", "start": "chat", "encoding": "def_pos2", "setting": "stl", "sizes": [4], "lora": LORA},
            {"name": "from_lora_pf", "start": "chat_lora_pf", "encoding": "def_pos2", "setting": "stl", "sizes": [4]},
            {"name": "plain_full", "start": "plain", "encoding": "input_only", "setting": "stl", "sizes": [4]},
        ],
        "training": {"learning_rate": 1e-3, "max_steps": 2, "batch_size": 2, "max_source_length": 160,
                     "max_target_length": 8, "precision": "fp32", "checkpoint_every_steps": None, "progress_bar": False},
        "generation": {"batch_size": 4, "max_new_tokens": 4},
        "keep_checkpoints": "merged",
    }  # fmt: skip
    raw.update(changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_lora_is_accepted_on_roles_prefinetune_blocks_and_arms_and_changes_run_ids(synth_collection, tmp_path):
    config = load_study_config(study_config(synth_collection, tmp_path))
    runs = plan_study(config).runs
    finetunes = {run.arm: run for run in runs if run.kind == RunKind.FINETUNE}
    evaluations = {run.arm: run for run in runs if run.kind == RunKind.EVALUATE}
    assert finetunes["chat_lora"].id != finetunes["chat_full"].id  # same start, data and recipe: only LoRA differs
    assert finetunes["chat_lora"].adapter == LoraSpec(**LORA).model_dump(mode="json")
    assert finetunes["chat_full"].adapter is None and finetunes["from_lora_pf"].adapter is None
    assert {arm: run.lora for arm, run in evaluations.items()} == {
        "chat_lora": True, "chat_full": False, "from_lora_pf": False, "plain_full": False,
    }  # fmt: skip
    (prefinetune,) = [run for run in runs if run.kind == RunKind.PREFINETUNE]
    assert prefinetune.adapter is not None and prefinetune.lora
    # the same switches from the command line: a role's lora (its fine-tunes train adapters), a pre-finetuned role's
    with_set = load_study_config(
        study_config(synth_collection, tmp_path),
        ["models.chat.lora={r: 4, alpha: 8, dropout: 0.0}", "models.chat_lora_pf.lora={r: 16, alpha: 32}"],
    )
    again = {run.arm: run for run in plan_study(with_set).runs if run.kind == RunKind.FINETUNE}
    assert again["chat_full"].adapter == finetunes["chat_lora"].adapter  # the role's lora, unless the arm says
    assert again["chat_full"].id != finetunes["chat_full"].id and again["chat_full"].lora
    assert again["from_lora_pf"].adapter == LoraSpec(r=16, alpha=32).model_dump(mode="json")
    assert again["plain_full"].id == finetunes["plain_full"].id  # untouched roles keep their ids


def test_chat_template_and_lora_runs_train_evaluate_save_adapters_and_resume(synth_collection, tmp_path):
    config = load_study_config(study_config(synth_collection, tmp_path))
    study = tmp_path / "study"
    result = run_study(config, study)
    assert result.complete and len(result.done) == result.planned == 9
    runs = plan_study(config).runs
    by_arm = {(run.arm, run.kind): run for run in runs}
    (prefinetune,) = [run for run in runs if run.kind == RunKind.PREFINETUNE]
    # the LoRA pre-finetuned model is an adapter (kept: pre-finetuned models are reused), merged beside it on request
    kept = checkpoint_dir(study, prefinetune.id)
    assert (kept / "adapter_model.safetensors").is_file() and not (kept / "model.safetensors").exists()
    merged = run_dir(study, prefinetune.id) / TRAIN_DIR / MERGED_MODEL_DIR
    assert not any("lora_" in key for key in load_file(merged / "model.safetensors"))
    assert json.loads((kept / MODEL_INFO).read_text())["chat_template"] is True  # trained through the template
    for arm in ("chat_lora",):  # the LoRA arm's model was merged before its checkpoint went
        assert (run_dir(study, by_arm[arm, RunKind.FINETUNE].id) / TRAIN_DIR / MERGED_MODEL_DIR).is_dir()
    for arm in ("chat_full", "plain_full", "from_lora_pf"):  # full fine-tunes: no merged copy, none needed
        assert not (run_dir(study, by_arm[arm, RunKind.FINETUNE].id) / TRAIN_DIR / MERGED_MODEL_DIR).exists()
    for arm in ("chat_full", "chat_lora", "from_lora_pf", "plain_full"):
        folder = run_dir(study, by_arm[arm, RunKind.EVALUATE].id)
        lines = (folder / "predictions.jsonl").read_text().splitlines()
        assert len(lines) == 4 and json.loads((folder / "metrics.json").read_text())["overall"]["n"] == 4
    again = run_study(config, study)  # resume: everything is done, nothing is trained again
    assert again.complete and again.already_done == 9 and again.done == []


def test_a_killed_lora_run_resumes_from_its_step_checkpoint_to_the_same_adapter(synth_collection, tmp_path):
    from quickstudy.data.collection import Collection
    from quickstudy.prompts.encoding import PRESETS

    task = Collection(synth_collection).task("task066_coref_referent")
    selections = [TaskSelection(task, task.instances[10:22])]
    spec = ModelSpec(name_or_path="tiny-t5", lora=LoraSpec(**LORA))
    config = TrainConfig(
        learning_rate=1e-2, max_steps=6, batch_size=2, max_source_length=96, max_target_length=8, precision="fp32",
        checkpoint_every_steps=2, log_every_steps=1, progress_bar=False,
    )  # fmt: skip

    def killed_at_step_3(step: int, total: int, loss: float | None) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_stage(spec, selections, PRESETS["def_pos2"], config, tmp_path / "killed", on_step=killed_at_step_3)
    resumed = train_stage(spec, selections, PRESETS["def_pos2"], config, tmp_path / "killed")
    whole = train_stage(spec, selections, PRESETS["def_pos2"], config, tmp_path / "whole")
    assert resumed.resumed_from_step == 2 and whole.resumed_from_step is None
    a = load_file(tmp_path / "whole" / "model" / "adapter_model.safetensors")
    b = load_file(tmp_path / "killed" / "model" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "killed" / "model" / "model.safetensors").exists()  # an adapter, never merged weights
    assert os.path.isfile(tmp_path / "killed" / "model" / MODEL_INFO)


def test_the_smoke_study_with_a_lora_arm_and_a_lora_prefinetuned_role_runs_and_resumes(smoke_config, tmp_path):
    raw = yaml.safe_load(smoke_config.read_text())
    raw["models"]["base_prefinetuned"]["prefinetune"]["lora"] = LORA
    raw["arms"] = [
        {**arm, "lora": LORA} if arm["name"] == "stl_proposed" else arm
        for arm in raw["arms"]
        if arm["name"] in ("stl_proposed", "stl_baseline1")
    ]
    raw["tasks"]["unseen"] = {"names": ["task066_coref_referent"]}
    path = tmp_path / "smoke-lora.yaml"
    path.write_text(yaml.safe_dump(raw))
    lora, full = plan_study(load_study_config(path)).runs, plan_study(load_study_config(smoke_config)).runs
    full_ids = {run.id for run in full}
    # the LoRA arm's fine-tunes, the LoRA pre-finetune and the fine-tunes from it: none is a full fine-tune's run
    assert all(run.id not in full_ids for run in lora if run.kind != RunKind.EVALUATE)
    assert [run.lora for run in lora if run.kind == RunKind.PREFINETUNE] == [True]
    study = tmp_path / "study"
    first = run_study(load_study_config(path), study)
    assert first.complete and len(first.done) == first.planned == 1 + 3 * 2  # LoRA pre-finetune; 3 fine-tunes, scored
    again = run_study(load_study_config(path), study)
    assert again.complete and again.done == [] and again.already_done == first.planned
