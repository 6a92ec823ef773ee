"""A resident start model and fused fine-tune + evaluate (executor.resident, executor.fuse) give
the study the same results as fresh copies and separate runs; a crash between a fused pair resumes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from quickstudy.models.loading import BaseModelCache, ResidentModelCache, load_model
from quickstudy.models.spec import ModelSpec
from quickstudy.report.render import build_report
from quickstudy.study.config import load_study_config
from quickstudy.study.execute import checkpoint_dir
from quickstudy.study.layout import RunKind
from quickstudy.study.plan import plan_study
from quickstudy.study.runner import run_study

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    left, right = a.state_dict(), b.state_dict()
    return list(left) == list(right) and all(torch.equal(left[k], right[k]) for k in left)


def test_resident_model_is_reset_in_place_and_sheds_lora_layers() -> None:
    cache = ResidentModelCache()
    spec = ModelSpec(name_or_path="tiny-t5", init_seed=1)
    fresh = load_model(spec, cache=BaseModelCache(max_entries=0)).model
    first = load_model(spec, cache=cache)
    storage = [p.data_ptr() for p in first.model.parameters()]
    with torch.no_grad():
        for parameter in first.model.parameters():
            parameter.add_(1.0)  # as training would
    again = load_model(spec, cache=cache)
    assert again.model is first.model and [p.data_ptr() for p in again.model.parameters()] == storage
    assert same_weights(again.model, fresh)

    lora = ModelSpec(name_or_path="tiny-t5", init_seed=1, lora={"r": 4})
    trained = load_model(lora, cache=cache)
    with torch.no_grad():
        for parameter in trained.model.parameters():
            parameter.add_(0.5)  # adapters and (frozen) base alike
    assert same_weights(load_model(lora, cache=cache).model, load_model(lora, cache=BaseModelCache(0)).model)
    plain = load_model(spec, cache=cache)
    assert type(plain.model) is type(fresh) and same_weights(plain.model, fresh)
    assert all(p.requires_grad for p in plain.model.parameters())


def report_csv(study_dir: Path) -> str:
    return build_report(study_dir, n_boot=10).csv.read_text()


def predictions(study_dir: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in sorted((study_dir / "runs").glob("*/predictions.jsonl"))}


def test_fused_resident_study_equals_the_separate_path_and_resumes(smoke_config: Path, tmp_path: Path) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    old = ["executor.fuse=false", "executor.resident=false"]
    assert run_study(load_study_config(smoke_config, old), before).complete
    assert run_study(load_study_config(smoke_config), after).complete
    assert predictions(after) == predictions(before) and len(predictions(after)) > 5
    assert report_csv(after) == report_csv(before)

    plan = plan_study(load_study_config(smoke_config))
    finetunes = [run for run in plan.runs if run.kind == RunKind.FINETUNE]
    log = (after / "runs" / finetunes[0].id / "log.txt").read_text()
    assert "start finetune" in log
    # fused without keep_checkpoints: no fine-tuned model was ever written
    assert not any((after / "runs" / run.id / "train" / "model").exists() for run in finetunes)

    # a crash between a fused pair: the fine-tune is done, its evaluation not; the model is gone
    evaluation = next(run for run in plan.runs if run.depends_on == (finetunes[0].id,))
    shutil.rmtree(after / "runs" / evaluation.id)
    resumed = run_study(load_study_config(smoke_config), after)
    assert resumed.complete and sorted(resumed.done) == sorted([finetunes[0].id, evaluation.id])
    assert predictions(after) == predictions(before)
    assert not checkpoint_dir(after, finetunes[0].id).exists()

    # keep_checkpoints still writes every fine-tuned model when fused
    kept = tmp_path / "kept"
    shutil.copytree(before, kept)
    for run in finetunes[:1]:
        shutil.rmtree(kept / "runs" / run.id)
        for child in (r for r in plan.runs if run.id in r.depends_on):
            shutil.rmtree(kept / "runs" / child.id)
    assert run_study(load_study_config(smoke_config, ["keep_checkpoints=true"]), kept).complete
    assert checkpoint_dir(kept, finetunes[0].id).is_dir()
    assert json.loads((kept / "runs" / evaluation.id / "metrics.json").read_text()) == json.loads(
        (before / "runs" / evaluation.id / "metrics.json").read_text()
    )


def test_fused_lora_runs_evaluate_the_merged_adapter_as_a_reload_does(smoke_config: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load(smoke_config.read_text())
    raw["models"] = {"instruction_tuned": raw["models"]["instruction_tuned"]}
    raw["tasks"] = {"unseen": {"names": ["task066_coref_referent"]}}
    lora = {"r": 4, "alpha": 8, "dropout": 0.0}
    raw["arms"] = [{"name": "lora", "start": "instruction_tuned", "encoding": "def_pos2", "setting": "stl",
                    "sizes": [4, 8], "lora": lora}]  # fmt: skip
    config = tmp_path / "lora.yaml"
    config.write_text(yaml.safe_dump(raw))
    old = ["executor.fuse=false", "executor.resident=false"]
    assert run_study(load_study_config(config, old), tmp_path / "before").complete
    assert run_study(load_study_config(config), tmp_path / "after").complete
    assert len(predictions(tmp_path / "after")) == 2
    assert predictions(tmp_path / "after") == predictions(tmp_path / "before")
