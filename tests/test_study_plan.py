"""Study configs and plans: validation, overrides, run counts and content-hash ids."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from quickstudy.errors import ConfigError
from quickstudy.study.config import load_study_config
from quickstudy.study.layout import RunKind
from quickstudy.study.plan import StudyPlan, plan_study

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def official(sample_dir: Path, tmp_path_factory) -> Path:
    """The official split's 876 tasks: the sample's task files, and a small valid file for each
    task the sample lacks (a plan checks every task file it reads, as `data validate` does)."""
    root = tmp_path_factory.mktemp("official")
    shutil.copytree(sample_dir / "tasks", root / "tasks")
    shutil.copytree(sample_dir / "official-splits" / "default", root / "splits" / "default")
    for part, n in (("train", 1), ("test", 111)):  # an unseen task keeps one train instance after 100 + 10
        for name in (root / "splits" / "default" / f"{part}_tasks.txt").read_text().split():
            if not (root / "tasks" / f"{name}.json").exists():
                instances = [{"id": f"i{i}", "input": f"{name} {i}", "output": [f"output {i}"]} for i in range(n)]
                stub = {"Definition": ["Answer."], "Categories": ["Stub"], "Instances": instances}
                (root / "tasks" / f"{name}.json").write_text(json.dumps(stub))
    return root


def thesis_on_official_split(official: Path, *extra: str):
    # The sample's task files are truncated (INDEX.tsv), so some unseen tasks have no train pool here;
    # `short_tasks=keep` plans them anyway, so the counts are the thesis's full 119 tasks.
    overrides = [f"collection={official}", f"split_dir={official / 'splits' / 'default'}", "short_tasks=keep", *extra]
    return load_study_config(CONFIGS / "thesis.yaml", overrides)


@pytest.fixture(scope="module")
def thesis_plan(official: Path) -> StudyPlan:
    return plan_study(thesis_on_official_split(official))


@pytest.mark.superni
def test_thesis_plan_skips_exactly_the_tasks_with_no_train_pool(official: Path, thesis_plan: StudyPlan) -> None:
    default = plan_study(thesis_on_official_split(official, "short_tasks=skip"))  # the default
    held_out = 100 + 10
    short = {
        name
        for name in thesis_plan.unseen_tasks
        if len(json.loads((official / "tasks" / f"{name}.json").read_text())["Instances"]) <= held_out
    }
    assert short and set(default.skipped_tasks) == short == set(default.no_train_pool)
    assert set(default.unseen_tasks) == set(thesis_plan.unseen_tasks) - short
    assert not any(run.task in short for run in default.runs)


@pytest.mark.superni
def test_thesis_plan_counts_on_the_official_split(sample_dir: Path, thesis_plan: StudyPlan) -> None:
    plan = thesis_plan
    unseen = len((sample_dir / "official-splits/default/test_tasks.txt").read_text().split())
    assert unseen == 119 and len(plan.unseen_tasks) == 119
    finetunes = [run for run in plan.runs if run.kind == RunKind.FINETUNE]
    assert sum(run.setting == "stl" for run in finetunes) == 119 * 7
    assert sum(run.setting == "mtl" for run in finetunes) == 6
    assert sum(run.kind == RunKind.PREFINETUNE for run in plan.runs) == 1
    evaluates = [run for run in plan.runs if run.kind == RunKind.EVALUATE]
    assert len(evaluates) == 119 * 7 + 6 + 1
    assert plan.counts() == {
        "total": 1 + 2 * (119 * 7 + 6) + 1,
        "by_kind": {RunKind.PREFINETUNE: 1, RunKind.FINETUNE: 839, RunKind.EVALUATE: 840},
        "by_arm": {
            "base_prefinetuned": 1,
            "stl_proposed": 119 * 4 * 2,
            "mtl_proposed": 4 * 2,
            "stl_baseline1": 119 * 2,
            "stl_baseline2": 119 * 2,
            "stl_baseline3": 119 * 2,
            "mtl_baseline1": 2,
            "mtl_baseline2": 2,
            "zero_shot": 1,
        },
    }


@pytest.mark.superni
def test_thesis_plan_encodes_the_study(thesis_plan: StudyPlan) -> None:
    plan = thesis_plan
    by_id = plan.by_id()
    (prefinetune,) = [run for run in plan.runs if run.kind == RunKind.PREFINETUNE]
    assert prefinetune.model["spec"]["name_or_path"] == "google/t5-xl-lm-adapt"
    assert prefinetune.encoding == "input_only" and prefinetune.per_task == 100
    assert len(prefinetune.tasks) == 756  # the sample's readable train list (the official one has 757)
    for run in plan.runs:
        for upstream in run.depends_on:
            assert plan.runs.index(by_id[upstream]) < plan.runs.index(run)
    baseline1 = [
        run for run in plan.runs if run.arm in ("stl_baseline1", "mtl_baseline1") and run.kind == RunKind.FINETUNE
    ]
    assert baseline1 and all(run.depends_on == (prefinetune.id,) and run.size == "200" for run in baseline1)
    proposed = [run for run in plan.runs if run.arm == "stl_proposed" and run.kind == RunKind.FINETUNE]
    assert {run.size for run in proposed} == {"100", "200", "1000", "all"}
    assert all(run.model["spec"]["name_or_path"] == "allenai/tk-instruct-3b-def-pos" for run in proposed)
    assert all(run.encoding == "def_pos2" and run.seed == 1 for run in proposed)
    # the meaning the report reads is written by the plan, not guessed from names
    assert all(
        run.instructions and not run.start_is_prefinetuned and run.start_role == "instruction_tuned" for run in proposed
    )
    assert all(run.start_is_prefinetuned and run.instructions is False for run in baseline1)
    assert prefinetune.role == "base_prefinetuned" and prefinetune.start_role == "base" and not prefinetune.instructions
    training = proposed[0].training
    assert (training["learning_rate"], training["lr_scheduler"], training["num_epochs"]) == (5e-5, "constant", 2.0)
    # the thesis ran with a 512-token source budget (its section 5.2.5), not Tk-Instruct's 1,024
    assert (training["max_source_length"], training["max_target_length"], training["precision"]) == (512, 128, "bf16")
    (zero_shot,) = [run for run in plan.runs if run.setting == "zero_shot"]
    assert zero_shot.kind == RunKind.EVALUATE and zero_shot.depends_on == () and len(zero_shot.tasks) == 119
    assert zero_shot.generation == {"batch_size": 16, "max_new_tokens": 128, "num_beams": 1}
    evaluated = {run.depends_on[0] for run in plan.runs if run.kind == RunKind.EVALUATE and run.depends_on}
    assert evaluated == {run.id for run in plan.runs if run.kind == RunKind.FINETUNE}


@pytest.mark.superni
def test_ids_change_only_for_the_runs_a_setting_affects(official: Path, thesis_plan: StudyPlan) -> None:
    before = thesis_plan
    again = plan_study(thesis_on_official_split(official))
    assert [run.id for run in before.runs] == [run.id for run in again.runs]
    assert len({run.id for run in before.runs}) == len(before.runs)
    after = plan_study(thesis_on_official_split(official, "arms.zero_shot.generation.num_beams=4"))
    changed = {run.id for run in before.runs} - {run.id for run in after.runs}
    assert [run.arm for run in before.runs if run.id in changed] == ["zero_shot"]
    after = plan_study(thesis_on_official_split(official, "models.base_prefinetuned.prefinetune.per_task=50"))
    changed = [run for run in before.runs if run.id not in {r.id for r in after.runs}]
    # the pre-finetune, and every baseline-1 run downstream of it (fine-tunes and their evaluations)
    assert {run.arm for run in changed} == {None, "stl_baseline1", "mtl_baseline1"}
    assert len(changed) == 1 + 2 * (119 + 1)


def test_a_task_file_edit_changes_its_runs_only(synth_collection: Path, smoke_config: Path, tmp_path: Path) -> None:
    collection = tmp_path / "collection"
    (collection / "tasks").mkdir(parents=True)
    shutil.copytree(synth_collection / "splits", collection / "splits")  # a link out of it would be refused
    for task in (synth_collection / "tasks").glob("*.json"):
        (collection / "tasks" / task.name).write_bytes(task.read_bytes())
    smoke = load_study_config(smoke_config, [f"collection={collection}"])
    before = plan_study(smoke)
    edited = collection / "tasks" / "task066_coref_referent.json"
    edited.write_text(edited.read_text().replace("}", " }", 1))
    after = plan_study(smoke)
    changed = [run for run in before.runs if run.id not in {r.id for r in after.runs}]
    assert changed and all(
        run.task == "task066_coref_referent" or run.setting in ("mtl", "zero_shot") for run in changed
    )
    assert any(run.task is None for run in changed)  # the MTL and zero-shot runs read every unseen task


def test_smoke_config_resolves_the_collection_next_to_the_config(synth_collection: Path) -> None:
    smoke = load_study_config(CONFIGS / "smoke.yaml")
    assert Path(smoke.collection) == (CONFIGS.parent / "demo-study" / "collection").resolve()
    plan = plan_study(load_study_config(CONFIGS / "smoke.yaml", [f"collection={synth_collection}"]))
    assert len(plan.unseen_tasks) == 2 and len(plan.seen_tasks) == 2
    assert sum(run.kind == RunKind.PREFINETUNE for run in plan.runs) == 1


def test_a_role_no_arm_starts_from_is_not_built(smoke_config: Path) -> None:
    plan = plan_study(load_study_config(smoke_config, ["arms.stl_baseline1.start=base"]))
    assert not any(run.kind == RunKind.PREFINETUNE for run in plan.runs)
    assert all(not run.depends_on for run in plan.runs if run.kind == RunKind.FINETUNE)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("arms.0.setting=both", "arms.0.setting"),
        ("seeds=[]", "seeds"),
        ("arms.zero_shot.sizes=[4]", "takes no sizes"),
        ("arms.stl_proposed.start=f_x", "start 'f_x' is not a role"),
        ("arms.stl_proposed.sizes=[4,lots]", "arms.stl_proposed.sizes: sample size 'lots'"),
        ("arms.stl_proposed.encoding=def_pos9", "arms.stl_proposed.encoding: unknown encoding 'def_pos9'"),
        ("training.learning_rat=0.1", "training.learning_rat: unknown key"),
        ("training.num_epochs=-1", "training.num_epochs"),
        ("models.base.name_or_pat=x", "models.base.name_or_pat: unknown key"),
        ("models.base_prefinetuned.prefinetune.from=base_prefinetuned", "must name a model role given by a model spec"),
        (
            "models.base_prefinetuned.prefinetune.per_task=0",
            "models.base_prefinetuned.prefinetune.per_task: Input should be greater",
        ),
        ("tasks.unseen.names=[task_nope]", "tasks.unseen.names: task_nope not in the split's list"),
        ("executor.kind=slurm", "executor.kind"),
        ("tracking=neptune", "tracking"),
        ("nonsense", "expected dotted.key=value"),
    ],
)
def test_bad_configs_fail_with_the_key_named(smoke_config: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as raised:
        plan_study(load_study_config(smoke_config, [override]))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_overrides_are_yaml_scalars_and_paths_are_relative_to_the_cwd(synth_collection: Path, monkeypatch) -> None:
    monkeypatch.chdir(synth_collection.parent)
    config = load_study_config(
        CONFIGS / "smoke.yaml",
        [
            f"collection={synth_collection.name}",
            "seeds=[1, 2]",
            "keep_checkpoints=true",
            "arms.stl_proposed.sizes=4",
            "splits.n_test=5",
        ],
    )
    assert Path(config.collection) == synth_collection.resolve()
    assert config.seeds == [1, 2] and config.keep_checkpoints is True and config.splits.n_test == 5
    assert config.arms[0].sizes == ["4"]
    plan = plan_study(config)
    assert {run.seed for run in plan.runs if run.kind == RunKind.FINETUNE} == {1, 2}


def test_plan_command_prints_the_issue_json_layout(smoke_config: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "quickstudy.cli", "study", "plan", str(smoke_config), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    plan = json.loads(done.stdout)
    assert {"runs", "counts", "leakage", "no_train_pool"} <= set(plan) and plan["no_train_pool"] == []
    assert set(plan["runs"][0]) == {"id", "kind", "arm", "setting", "task", "size", "seed", "depends_on"}
    assert plan["counts"]["total"] == len(plan["runs"]) == 20
    # the thesis config's collection is a placeholder: one line, and no study directory left behind
    out = tmp_path / "thesis"
    failed = subprocess.run(
        [*command[:4], "run", str(CONFIGS / "thesis.yaml"), "--out", str(out)], capture_output=True, text=True
    )
    assert failed.returncode != 0 and failed.stderr.count("\n") == 1 and "--set collection=PATH" in failed.stderr
    assert not out.exists()


def test_an_instruction_tuned_model_can_be_built_by_prefinetuning_with_instructions(smoke_config: Path) -> None:
    built = "models.instruction_tuned={prefinetune: {from: base, encoding: def_pos2, per_task: 4}}"
    plan = plan_study(load_study_config(smoke_config, [built]))
    prefinetunes = {run.role: run for run in plan.runs if run.kind == RunKind.PREFINETUNE}
    assert set(prefinetunes) == {"instruction_tuned", "base_prefinetuned"}
    assert prefinetunes["instruction_tuned"].encoding == "def_pos2"
    assert prefinetunes["instruction_tuned"].id != prefinetunes["base_prefinetuned"].id
    proposed = [run for run in plan.runs if run.arm == "stl_proposed" and run.kind == RunKind.FINETUNE]
    assert proposed and all(run.depends_on == (prefinetunes["instruction_tuned"].id,) for run in proposed)
    (zero_shot,) = [run for run in plan.runs if run.setting == "zero_shot"]
    assert zero_shot.depends_on == (prefinetunes["instruction_tuned"].id,)


def test_unseen_tasks_narrowed_by_category_and_count(smoke_config: Path) -> None:
    by_category = ["tasks.unseen.names=null", "tasks.unseen.categories=[Coreference Resolution, Title Generation]"]
    plan = plan_study(load_study_config(smoke_config, by_category))
    assert plan.unseen_tasks == ("task037_story_title", "task066_coref_referent", "task067_coref_other")
    plan = plan_study(load_study_config(smoke_config, [*by_category, "tasks.unseen.max_tasks=1"]))
    assert plan.unseen_tasks == ("task037_story_title",)


@pytest.mark.superni
def test_the_thesis_on_six_processes_with_zero2_plans_the_same_runs_with_new_ids(
    official: Path, thesis_plan: StudyPlan
) -> None:
    launch = ["executor.processes_per_run=6", "training.deepspeed=zero2"]
    six = plan_study(thesis_on_official_split(official, *launch))

    def shape(plan: StudyPlan) -> list[tuple]:
        return [(run.kind, run.arm, run.task, run.size, run.seed) for run in plan.runs]

    assert shape(six) == shape(thesis_plan)
    for before, after in zip(thesis_plan.runs, six.runs):
        assert (after.id == before.id) == (after.setting == "zero_shot")  # only the zero-shot run trains nothing
        if after.kind.trains:
            assert (before.processes, before.effective_batch) == (1, 2 * 8)
            assert (after.processes, after.effective_batch, after.training["deepspeed"]) == (6, 2 * 8 * 6, "zero2")
    overrides = [f"collection={official}", f"split_dir={official / 'splits' / 'default'}", *launch]
    command = [sys.executable, "-m", "quickstudy.cli", "study", "plan", str(CONFIGS / "thesis.yaml")]
    done = subprocess.run([*command, *(f"--set={o}" for o in overrides)], capture_output=True, text=True, check=True)
    assert (
        "each training run: 6 data-parallel processes (torchrun) with DeepSpeed zero2, 6 GPUs; "
        "each evaluation run: one process, 1 GPU (ray executor)" in " ".join(done.stdout.split())
    )
