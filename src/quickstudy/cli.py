"""The `quickstudy` command line.

Commands are thin: they parse arguments, call one stage's functions and
print. Any QuickstudyError becomes one line on stderr and a non-zero exit,
here and nowhere else.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from quickstudy.data.splits import DEFAULT_N_TEST, DEFAULT_N_VALIDATION
from quickstudy.errors import Interrupted, QuickstudyError, output_error
from quickstudy.shipped import DEMO_PRESETS
from quickstudy.study.devices import DEVICE_CHOICES
from quickstudy.study.executor_kinds import EXECUTOR_KINDS

app = typer.Typer(
    help="Measure how quickly instruction-tuned language models learn new tasks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # subcommands inherit them
    rich_markup_mode=None,  # plain help: "[default: ...]" in a help text stays as written
)
console = Console()
err_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"quickstudy {version('quickstudy')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    pass


data_app = typer.Typer(help="Task collections: validate, statistics, synthetic tasks.", no_args_is_help=True)
study_app = typer.Typer(help="Whole studies: plan, run, resume, status.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(study_app, name="study")


# --- data commands (issue: foundation) --------------------------------------


def _task_progress(verb: str):
    """A transient progress line on stderr for commands that walk a whole collection."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn(f"{verb} {{task.completed}} tasks"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


@data_app.command("validate")
def data_validate(
    collection: Path = typer.Argument(..., help="Collection folder (tasks/ and splits/, or bare task files)."),
) -> None:
    """Check every task file, instance and split file; print every problem, one per line."""
    from quickstudy.data.validate import validate_collection
    from quickstudy.errors import DataError

    with _task_progress("validating") as bar:
        counter = bar.add_task("validate", total=None)
        report = validate_collection(collection, on_task=lambda _name: bar.advance(counter))
    for problem in report.problems:
        err_console.print(str(problem), markup=False, highlight=False, soft_wrap=True)
    summary = f"{collection}: {report.tasks_checked} task files, splits {list(report.splits_checked)}"
    if report.problems:
        raise DataError(f"{summary}: {len(report.problems)} problem(s)")
    console.print(f"{summary}: no problems", markup=False, highlight=False)


@data_app.command("stats")
def data_stats(
    collection: Path = typer.Argument(..., help="Collection folder (tasks/ and splits/, or bare task files)."),
    split: str = typer.Option("default", help="Split folder under splits/."),
    sizes: str = typer.Option("100,200,1000,all", help="Per-task sample sizes: counts, percentages (6%) or 'all'."),
    n_test: int = typer.Option(DEFAULT_N_TEST, help="Test instances per unseen task (its first ones)."),
    n_validation: int = typer.Option(
        DEFAULT_N_VALIDATION, help="Validation instances per unseen task (the next ones)."
    ),
    prefinetune_per_task: int = typer.Option(100, help="Pre-finetuning instances per seen task."),
    seed: int = typer.Option(1, help="Sampling seed."),
    manifest: Path | None = typer.Option(None, help="Also write the selected train instance ids here (JSON)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Tasks per category, instance totals and per-size sample totals of the unseen tasks."""
    import json

    from quickstudy.data.collection import Collection
    from quickstudy.data.sampling import parse_sizes, sample_manifest, write_manifest
    from quickstudy.data.splits import SplitConfig, unseen_task_splits
    from quickstudy.data.stats import collection_stats, stats_tables

    tasks = Collection(collection)
    config = SplitConfig(n_test=n_test, n_validation=n_validation)
    size_list = parse_sizes(sizes)
    with _task_progress("counting") as bar:
        counter = bar.add_task("stats", total=None)
        result = collection_stats(
            tasks, split, size_list, config, prefinetune_per_task, seed, on_task=lambda _name: bar.advance(counter)
        )
    if manifest is not None:
        chosen = sample_manifest(unseen_task_splits(tasks, tasks.split(split), config), size_list, seed)
        write_manifest(manifest, chosen)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    for table in stats_tables(result, config, prefinetune_per_task):
        console.print(table)
    for label, totals in result.sizes.items():
        if totals.capped_tasks:
            console.print(
                f"size {label}: {len(totals.capped_tasks)} task(s) have fewer train instances and use all they have: {', '.join(totals.capped_tasks)}",
                markup=False,
                highlight=False,
            )
    if manifest is not None:
        console.print(f"manifest written to {manifest}", markup=False, highlight=False)


@data_app.command("synth")
def data_synth(
    out: Path = typer.Argument(..., help="Folder to write the collection to (tasks/ and splits/default/)."),
    seed: int = typer.Option(0, help="Generation seed; the same seed writes byte-identical files."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it already exists."),
) -> None:
    """Write the synthetic task collection used by the built-in demo."""
    from quickstudy.data.synth import write_synth_collection

    written = write_synth_collection(out, seed=seed, overwrite=force)
    n_categories = len({task["Categories"][0] for task in written.tasks.values()})
    console.print(
        f"{out}: {len(written.tasks)} tasks ({len(written.seen)} seen, {len(written.unseen)} unseen) in {n_categories} categories",
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip


@data_app.command("import")
def data_import(
    sources: list[str] = typer.Argument(
        ...,
        help="Files (.jsonl .json .csv .tsv .parquet), save_to_disk folders (FOLDER[:SPLIT]), hf:NAME[:CONFIG][:SPLIT], "
        "or task config files (.yaml: a list of tasks with the fields below).",
    ),
    out: Path = typer.Option(..., "--out", help="Collection folder to add the tasks to (created if needed)."),
    name: str | None = typer.Option(None, "--name", help="Task name [default: the source's file name]."),
    definition: str | None = typer.Option(None, "--definition", help="The instruction paragraph, or @FILE."),
    input_field: str = typer.Option("input", "--input-field", help="Column holding the input text."),
    output_field: str = typer.Option(
        "output", "--output-field", help="Column holding the output: a string or a list of references."
    ),
    category: str | None = typer.Option(None, "--category", help="The task's category (per-category tables)."),
    examples: int = typer.Option(
        0, "--examples", min=0, help="Take the first N rows as positive examples (removed from the instances)."
    ),
    seen: bool = typer.Option(
        False, "--seen", help="A pre-finetuning (seen) task: listed in train_tasks.txt, not test_tasks.txt."
    ),
    split: str = typer.Option("default", "--split", help="Split folder under splits/ to list the tasks in."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite tasks that already exist."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Drop bad rows (counted) instead of refusing the source."),
) -> None:
    """Turn input/output rows plus an instruction paragraph into SuperNI task files and split lists."""
    from quickstudy.data.importing import imported_tasks, task_imports, write_imported

    fields = {"input_field": input_field, "output_field": output_field, "category": category, "examples": examples}
    specs = task_imports(sources, name, definition=definition, seen=seen, **fields)
    tasks = imported_tasks(specs, skip_bad=skip_bad)
    write_imported(out, tasks, split=split, replace=replace)
    for task in tasks:
        skipped = f", {len(task.bad_rows)} bad rows skipped" if task.bad_rows else ""
        role = "seen (pre-finetuning)" if task.seen else "unseen"
        console.print(
            f"{out}: task {task.name} ({role}): {task.n_instances} instances, {task.n_examples} examples{skipped}",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip


@data_app.command("leaks")
def data_leaks(
    collection: Path = typer.Argument(..., help="Collection folder (tasks/ and splits/, or bare task files)."),
    split: str = typer.Option("default", help="Split folder under splits/."),
    n_test: int = typer.Option(DEFAULT_N_TEST, help="Test instances per unseen task (its first ones)."),
    n_validation: int = typer.Option(
        DEFAULT_N_VALIDATION, help="Validation instances per unseen task (the next ones)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print every leaked input and the counts as JSON."),
) -> None:
    """Test and validation inputs of unseen tasks that also occur in another task's training data."""
    import json

    from rich.table import Table

    from quickstudy.data.collection import Collection
    from quickstudy.data.leaks import leak_audit
    from quickstudy.data.splits import SplitConfig

    tasks = Collection(collection)
    lists = tasks.split(split)
    audit = leak_audit(tasks, lists.train, lists.test, SplitConfig(n_test=n_test, n_validation=n_validation))
    if as_json:
        print(json.dumps(audit.to_json(), indent=1, ensure_ascii=False))
        return
    own = sum(audit.own_train_removed.values())
    console.print(
        f"{collection}: {len(lists.test)} unseen, {len(lists.train)} seen tasks; {own} train instance(s) repeating "
        f"their own task's test/validation inputs (already removed by the split)",
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip
    pairs = audit.pairs()
    if not pairs:
        console.print("no test or validation input of an unseen task occurs in another task's training data")
        return
    table = Table(title="held-out inputs of an unseen task found in another task's training data")
    for column in ("unseen task", "found in", "as", "test", "validation", "its instances"):
        numeric = column in ("test", "validation", "its instances")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=not numeric)
    for pair in pairs:
        row = (pair.unseen_task, pair.other_task, pair.other_role, pair.test, pair.validation, pair.other_instances)
        table.add_row(*map(str, row))
    console.print(table)


# --- prompts command (issue: encodings) --------------------------------------


@app.command("prompts")
def prompts_command(
    collection: Path = typer.Argument(..., help="Collection folder (tasks/ and splits/, or bare task files)."),
    task: list[str] = typer.Option(..., "--task", help="Task name; repeat for several, or 'all' for every task."),
    encoding: str = typer.Option(
        ..., "--encoding", help="Encoding preset: def, def_pos2, def_pos2_neg2, ..., none, input_only."
    ),
    tokenizer: str | None = typer.Option(
        None, "--tokenizer", help="Tokenizer for the budget: byt5, a Hugging Face hub id or a local path."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Model whose tokenizer and chat template the prompts go through: a hub id, a local path, a tiny "
        "model, or a model spec as YAML ('{name_or_path: tiny-llama, tokenizer: byt5-chatml}').",
    ),
    max_source_length: int | None = typer.Option(
        None, "--max-source-length", min=1, help="Token budget (needs --tokenizer or --model)."
    ),
    limit: int | None = typer.Option(None, "--limit", min=0, help="Only the first N instances of each task."),
) -> None:
    """Print each instance's prompt as JSON lines: {"task", "instance_id", "prompt"}; with --model, the
    exact text the model is given (its chat template's generation prompt when it uses one)."""
    import json

    from quickstudy.data.collection import Collection
    from quickstudy.errors import PromptError
    from quickstudy.prompts.encoding import encoding_by_name
    from quickstudy.prompts.listing import prompt_records, selected_task_names
    from quickstudy.prompts.tokenizers import tokenizer_by_name

    chosen = encoding_by_name(encoding)
    if max_source_length is not None and tokenizer is None and model is None:
        raise PromptError("--max-source-length needs --tokenizer or --model to count tokens")
    if tokenizer is not None and model is not None:
        raise PromptError("--tokenizer and --model: give one (a model brings its own tokenizer)")
    tasks = Collection(collection)
    names = selected_task_names(tasks, task)
    loaded, chat = (tokenizer_by_name(tokenizer) if tokenizer is not None else None), False
    if model is not None:
        from quickstudy.models.loading import prompt_tokenizer
        from quickstudy.models.spec import model_spec_from_text

        loaded, chat = prompt_tokenizer(model_spec_from_text(model, "--model"))
    for record in prompt_records(tasks, names, chosen, loaded, max_source_length, limit, chat):
        sys.stdout.write(json.dumps(record) + "\n")


# --- evaluate command (issue: evaluation) ------------------------------------


@app.command("evaluate")
def evaluate_command(
    predictions: str = typer.Argument(
        ...,
        help="Predictions file (JSON lines): SuperNI's reference layout, or plain lines with 'prediction' and "
        "'references' (a list) or 'output', optional 'task', 'id', 'category', 'input'.",
    ),
    collection: str = typer.Option(
        None, "--collection", help="Task collection to take categories from when lines lack them."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON instead of a table."),
    out: str = typer.Option(None, "--out", help="Also write the full scores (with per-instance) to this JSON file."),
) -> None:
    """Score predictions with SuperNI's official metrics (exact match, ROUGE-1, ROUGE-L)."""
    import json

    from quickstudy.data.collection import Collection
    from quickstudy.evaluate.metrics import score_records
    from quickstudy.evaluate.predictions import read_predictions, with_task_categories
    from quickstudy.files import write_text_atomic

    records = read_predictions(predictions)
    records = with_task_categories(records, Collection(collection) if collection else None)
    report = score_records(records)
    if out:
        write_text_atomic(out, json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
    if as_json:
        print(json.dumps(report.to_json(per_instance=False), indent=2, ensure_ascii=False))
        return
    print_scores(f"{predictions}: {report.n} predictions, {len(report.per_task)} tasks", report)


def print_scores(title: str, report: Any) -> None:
    """The metrics table of a ScoreReport: per category (with SuperNI's view), then overall."""
    from rich.table import Table

    table = Table(title=escape(title))  # category names and paths come from data: no rich markup
    for column in ("category", "n", "exact match", "ROUGE-1", "ROUGE-L", "SuperNI view"):
        table.add_column(column, justify="left" if column == "category" else "right", no_wrap=column == "category")
    for name, scores in sorted(report.per_category.items()):
        view = report.superni_category_view[name]
        label = "EM" if view.metric == "exact_match" else "RL"
        table.add_row(
            escape(name),
            str(scores.n),
            f"{scores.exact_match:.2f}",
            f"{scores.rouge1:.2f}",
            f"{scores.rougeL:.2f}",
            f"{label} {view.value:.2f}",
        )
    overall = report.overall
    table.add_section()
    table.add_row(
        "overall",
        str(overall.n),
        f"{overall.exact_match:.2f}",
        f"{overall.rouge1:.2f}",
        f"{overall.rougeL:.2f}",
        "",
        style="bold",
    )
    console.print(table)


@app.command("predict")
def predict_command(
    model: str = typer.Argument(..., help="Hub id, model folder, or a `quickstudy train` output (LoRA adapters too)."),
    collection: Path = typer.Argument(..., help="Collection folder (tasks/ and splits/, or bare task files)."),
    encoding: str = typer.Option(..., "--encoding", help="Encoding preset: def, def_pos2, ..., none, input_only."),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Predictions file (reference layout, per-line scores); the metrics go to OUT's name with .metrics.json.",
    ),
    task: list[str] = typer.Option(
        [], "--task", help="Task to predict (repeatable; 'all' for every task) [default: the split's unseen tasks]."
    ),
    split: str = typer.Option(
        "default", "--split", help="Split folder whose unseen tasks are predicted without --task."
    ),
    size: int = typer.Option(
        100, "--size", min=1, help="Test instances per task: its first N (a study's splits.n_test)."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N test instances of each task."),
    tokenizer: str | None = typer.Option(None, "--tokenizer", help="Tokenizer [default: the model's own]."),
    max_source_length: int | None = typer.Option(
        None, "--max-source-length", min=1, help="Prompt token budget [default: a study's training.max_source_length]."
    ),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", min=1, help="[default: a study's generation]"),
    num_beams: int | None = typer.Option(None, "--num-beams", min=1, help="[default: a study's generation]"),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="[default: a study's generation]"),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON instead of a table."),
) -> None:
    """Predict the test instances of a collection's tasks with any model, score them and print the metrics.

    Prompts, source budget and decoding are a study's defaults (training.max_source_length, generation.*)."""
    import json

    from quickstudy.data.collection import Collection
    from quickstudy.data.splits import SplitConfig, task_split
    from quickstudy.errors import DataError
    from quickstudy.prompts.encoding import encoding_by_name
    from quickstudy.prompts.listing import selected_task_names
    from quickstudy.study.config import GenerationConfig
    from quickstudy.train.config import TrainConfig

    chosen = encoding_by_name(encoding)
    tasks = Collection(collection)
    names = selected_task_names(tasks, task) if task else list(tasks.split(split).test)
    if not names:
        raise DataError(f"{collection}: split {split!r} lists no unseen tasks; name them with --task")
    test_part = SplitConfig(n_test=size, n_validation=0)
    # Checked before torch and the model load, so a typo fails in a second.
    import torch

    from quickstudy.evaluate.evaluation import TaskInstances, evaluate_model, model_spec_for, write_scored_predictions
    from quickstudy.models.loading import load_model

    selections = [TaskInstances(t, task_split(t, test_part).test[:limit]) for t in tasks.tasks(names)]
    loaded = load_model(model_spec_for(model, tokenizer), device="cuda" if torch.cuda.is_available() else None)
    given = {"batch_size": batch_size, "max_new_tokens": max_new_tokens, "num_beams": num_beams}
    generation = GenerationConfig(**{key: value for key, value in given.items() if value is not None})
    budget = max_source_length or TrainConfig().max_source_length
    records = evaluate_model(
        loaded, selections, chosen, max_source_length=budget, **generation.model_dump(), progress=True
    )
    report = write_scored_predictions(out, records)
    if as_json:
        print(json.dumps(report.to_json(per_instance=False), indent=2, ensure_ascii=False))
        return
    print_scores(f"{model}: {report.n} predictions, {len(report.per_task)} tasks (written to {out})", report)


# --- train command (issue: fine-tuning engine) -------------------------------


@app.command("train")
def train_command(
    config: Path = typer.Argument(
        ..., help="YAML: stage, model, data, encoding, training, output_dir (paths relative to the file)."
    ),
    set_values: list[str] = typer.Option(
        [], "--set", help="Override a config key: --set training.learning_rate=1e-4 (repeatable)."
    ),
) -> None:
    """Run one training stage (prefinetune or finetune) from a small YAML config; resumes if interrupted."""
    import os

    from transformers.utils import logging as hf_logging

    from quickstudy.train.stages import load_train_run_config, run_train_config

    hf_logging.disable_progress_bar()  # the training bar is ours; transformers' save bars are noise
    run = load_train_run_config(config, set_values)
    result = run_train_config(run)
    if os.environ.get("RANK", "0") != "0":  # one summary line under a multi-process launch
        return
    loss = "-" if result.final_loss is None else f"{result.final_loss:.4f}"
    console.print(
        f"{run.stage}: {result.steps} steps on {result.examples} examples, final loss {loss}, "
        f"{result.tokens_per_second:,.0f} tokens/s; model in {result.model_dir}"
    )


# --- study commands (issue: studies) -----------------------------------------

_LOG_EVERY_HELP = (
    "When stdout is not a terminal: print the study's state every N seconds (and each run's start and end)."
)
_SET_HELP = "Override a config key before validation: dotted.key=value (value parsed as YAML). Repeatable."


DeviceChoice = StrEnum("DeviceChoice", {device: device for device in DEVICE_CHOICES})


@study_app.command("plan")
def study_plan(
    config: Path = typer.Argument(
        ..., help="Study config (YAML), or the name of a shipped one (quickstudy ls configs)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print every run and the counts as JSON."),
    overrides: list[str] = typer.Option([], "--set", help=_SET_HELP),
    estimate: bool = typer.Option(
        False, "--estimate", help="Also estimate tokens, FLOPs and GPU-hours per arm from the actual prompts."
    ),
    device: DeviceChoice = typer.Option(
        "a100-40gb", "--device", help="For --estimate: a device profile, or calibrate (measure this machine)."
    ),
    gpus: int = typer.Option(1, "--gpus", min=1, help="For --estimate: GPUs the wall time is given for."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="For --estimate: the study directory to record it in, for the report [default: studies/<name>].",
    ),
) -> None:
    """Expand a study config into runs (ids, kinds, dependencies) without loading any model
    (with --estimate: only its tokenizer, and with --device calibrate the model itself).
    The estimate is recorded in the study directory, where the report shows it beside the
    hours the runs took."""
    import json

    from rich.table import Table

    from quickstudy.shipped import config_file
    from quickstudy.study.config import load_study_config
    from quickstudy.study.launch import resources_text
    from quickstudy.study.plan import arm_label, leakage_text, plan_study

    if out is not None and not estimate:
        raise typer.BadParameter("records an estimate: give --estimate too", param_hint="'--out'")
    study = load_study_config(config_file(config), overrides)
    plan = plan_study(study)
    cost = None
    if estimate:
        from quickstudy.study.estimate import estimate_study, record_estimate
        from quickstudy.study.layout import default_study_dir

        cost = estimate_study(study, plan, device.value)
        recorded = record_estimate(out or default_study_dir(study.name), cost, gpus)
    if as_json:
        print(json.dumps({**plan.to_json(), **({"estimate": cost.to_json(gpus)} if cost else {})}, indent=1))
        return
    table = Table(
        title=f"{len(plan.runs)} runs: {len(plan.unseen_tasks)} unseen tasks, {len(plan.seen_tasks)} seen tasks"
    )
    for column in ("arm", "setting", "prefinetune", "finetune", "evaluate", "total"):
        table.add_column(column, justify="left" if column in ("arm", "setting") else "right")
    rows: dict[str, dict[str, Any]] = {}
    for run in plan.runs:
        row = rows.setdefault(
            arm_label(run), {"setting": run.setting or "-", "prefinetune": 0, "finetune": 0, "evaluate": 0}
        )
        row[run.kind] += 1
    for arm, row in rows.items():
        counts = [row[kind] for kind in ("prefinetune", "finetune", "evaluate")]
        table.add_row(arm, row["setting"], *map(str, counts), str(sum(counts)))
    console.print(table)
    console.print(f"leakage across tasks: {leakage_text(plan.leakage)}", markup=False, highlight=False, soft_wrap=True)
    console.print(resources_text(study), markup=False, highlight=False, soft_wrap=True)
    if plan.no_train_pool:
        outcome = (
            "skipped from every arm (short_tasks: skip)"
            if plan.skipped_tasks
            else "planned anyway, their fine-tunes will fail (short_tasks: keep)"
        )
        console.print(
            f"{len(plan.no_train_pool)} unseen task(s) have no train instances left after the held-out ones, "
            f"{outcome}: {', '.join(plan.no_train_pool)}",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip
    if plan.below_smallest_size:
        short = ", ".join(f"{name} ({pool})" for name, pool in plan.below_smallest_size.items())
        console.print(
            f"{len(plan.below_smallest_size)} unseen task(s) have fewer train instances than the smallest size "
            f"and train on all they have: {short}",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip
    if cost is not None:
        _print_estimate(cost, gpus)
        console.print(f"estimate recorded in {recorded} (the report shows it beside the measured hours)", markup=False)


def _print_estimate(cost: Any, gpus: int) -> None:
    """The estimate as a table per arm, then its assumptions."""
    from rich.table import Table

    table = Table(title=f"estimate on {cost.device.name}: {cost.total_hours():.3g} GPU-hours in total")
    for column in ("arm", "runs", "train tokens", "train PFLOP", "generation PFLOP", "GPU-hours"):
        table.add_column(column, justify="left" if column == "arm" else "right", no_wrap=column == "arm")
    hours = cost.arm_hours()
    for arm in hours:
        runs = [run for run in cost.runs if run.arm == arm]
        table.add_row(
            arm,
            str(len(runs)),
            f"{sum(run.train_tokens * run.epochs for run in runs):,.0f}",
            f"{sum(run.train_flops for run in runs) / 1e15:.3g}",
            f"{sum(run.generate_flops for run in runs) / 1e15:.3g}",
            f"{hours[arm]:.3g}",
        )
    table.add_section()
    table.add_row("total", str(len(cost.runs)), "", "", "", f"{cost.total_hours():.3g}", style="bold")
    console.print(table)
    lines = [
        f"wall time on {gpus} GPU(s): {cost.wall_hours(gpus):.3g} h (total / GPUs, at least the longest chain of "
        f"dependent runs: {cost.critical_path_hours():.3g} h); compute only, no loading or saving",
        f"device: {cost.device.assumption}",
        "FLOPs: training 6 x parameters x (source + target tokens) x epochs (4 x with LoRA; an upper bound for "
        "encoder-decoder models), generation 2 x parameters x (prompt + generated tokens)",
        *(f"parameters of {role}: {size.parameters:,} ({size.source})" for role, size in cost.sizes.items()),
        *cost.token_notes,
    ]
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


ExecutorKind = StrEnum("ExecutorKind", {kind: kind for kind in EXECUTOR_KINDS})


@study_app.command("run")
def study_run(
    config: Path = typer.Argument(
        ..., help="Study config (YAML), or the name of a shipped one (quickstudy ls configs)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Study directory [default: studies/<name>]."),
    executor: ExecutorKind | None = typer.Option(
        None, "--executor", help="Where the runs execute [default: the config's executor.kind]."
    ),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run failed runs again."),
    repair: bool = typer.Option(
        True, "--repair/--no-repair", help="Re-run done runs whose files do not check out (study verify)."
    ),
    overrides: list[str] = typer.Option([], "--set", help=_SET_HELP),
    log_every: float = typer.Option(60, "--log-every", min=1, help=_LOG_EVERY_HELP),
) -> None:
    """Run what is not done yet; re-run the same command to resume after a crash."""
    from quickstudy.shipped import config_file
    from quickstudy.study.config import load_study_config
    from quickstudy.study.layout import default_study_dir
    from quickstudy.study.progress import study_progress
    from quickstudy.study.runner import run_study

    if executor is not None:
        overrides = [*overrides, f"executor.kind={executor.value}"]
    study = load_study_config(config_file(config), overrides)
    study_dir = out or default_study_dir(study.name)
    with _resumable(study_dir), study_progress(console, study_dir, log_every) as progress:
        result = run_study(study, study_dir, retry_failed=retry_failed, progress=progress, repair=repair)
    for damage in result.repaired:
        console.print(f"repaired (run again): {damage}", markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"{study_dir}: {result.already_done + len(result.done)}/{result.planned} runs done "
        f"({len(result.done)} now), {len(result.failed)} failed, {len(result.blocked)} waiting on failed runs"
    )
    if not result.complete:
        from quickstudy.errors import StudyError

        for run_id, error in list(result.failed.items())[:10]:
            err_console.print(f"failed {run_id}: {escape(error)}", highlight=False, soft_wrap=True)
        raise StudyError(
            f"{study_dir}: {len(result.failed)} runs failed; see `quickstudy study status {study_dir}`, re-run with --retry-failed"
        )


@study_app.command("verify")
def study_verify_command(
    study_dir: Path = typer.Argument(..., help="Study directory (the --out of `study run`)."),
    repair: bool = typer.Option(False, "--repair", help="Reset damaged runs and their dependents to pending."),
) -> None:
    """Check every done run's files (spec, predictions, recomputed scores, metrics, model weights)."""
    from quickstudy.errors import StudyError
    from quickstudy.study.layout import PLAN_FILE
    from quickstudy.study.verify import damaged_runs, planned_runs, reset_runs

    plan = planned_runs(study_dir)
    if plan is None:
        raise StudyError(f"{study_dir}: not a study directory (no {PLAN_FILE}; `study run` writes it)")
    damaged = damaged_runs(study_dir)
    for damage in damaged:
        console.print(f"damaged {damage.run_id}: {damage}", markup=False, highlight=False, soft_wrap=True)
    if damaged and repair:
        reset = reset_runs(study_dir, damaged, {run.id: run.depends_on for run in plan})
        console.print(f"{study_dir}: {len(reset)} run(s) reset to pending; `study run` runs them again")
    elif damaged:
        raise StudyError(f"{study_dir}: {len(damaged)} damaged run(s); `quickstudy study verify --repair` resets them")
    else:
        console.print(f"{study_dir}: every done run checks out", markup=False, highlight=False)


@study_app.command("status")
def study_status_command(
    study_dir: Path = typer.Argument(..., help="Study directory (the --out of `study run`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """What is done, pending (and of those running) and failed, per arm; elapsed time and ETA."""
    import json
    import time
    from collections import Counter

    from rich.table import Table

    from quickstudy.study.progress import duration, study_snapshot, summary_line
    from quickstudy.study.status import study_status

    status = study_status(study_dir)
    snapshot = study_snapshot(study_dir)
    if as_json:
        print(json.dumps(status.to_json() | snapshot.to_json(), indent=1))
        return
    console.print(f"{study_dir}: {summary_line(snapshot)}", markup=False, highlight=False, soft_wrap=True)
    running_by_arm = Counter(run.arm for run in snapshot.running)
    table = Table()
    for column in ("arm", "done", "pending", "running", "failed"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for arm, counts in status.by_arm.items():
        row = [str(counts["done"]), str(counts["pending"]), str(running_by_arm[arm]), str(counts["failed"])]
        table.add_row(escape(arm), *row)
    console.print(table)
    for run in snapshot.running:
        elapsed = duration(time.time() - run.started)
        console.print(f"running {run.id}: {run.label()}, {run.how_far()}, {elapsed}", markup=False, highlight=False)
    for run_id, error in status.failed.items():
        console.print(f"failed {run_id}: {error}", highlight=False, soft_wrap=True, markup=False)


# --- report command (issue: report) ------------------------------------------


@app.command("report")
def report_command(
    study_dir: Path = typer.Argument(
        ..., help="Study directory (the --out of `study run`); may be only partly finished."
    ),
    out: Path | None = typer.Option(None, "--out", help="Folder for the report [default: STUDY_DIR/report]."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=50, help="Bootstrap replicates for the 95% intervals."),
    tolerance: float | None = typer.Option(
        None,
        "--tolerance",
        help="ROUGE-L points within which a score 'matches' in the thesis's reading "
        "[default: the study config's report.tolerance, else 1.0].",
    ),
) -> None:
    """Write report.md, a self-contained report.html, results.csv and summary.json for a study."""
    from quickstudy.report import build_report

    files = build_report(study_dir, out, n_boot=bootstrap, tolerance=tolerance)
    _print_answers(files.answers)
    console.print(f"report: {escape(str(files.html))}", highlight=False)
    for path in (files.markdown, files.csv, files.summary):
        console.print(f"        {escape(str(path))}", highlight=False)


def _print_answers(markdown: str) -> None:
    """The report's answers section, rendered for the terminal (plain text when piped)."""
    from rich.markdown import Markdown

    console.print(Markdown(markdown))


# --- forecast command (issue 15: labels needed) -------------------------------


@app.command("forecast")
def forecast_command(
    study_dir: Path = typer.Argument(..., help="Study directory (the --out of `study run`)."),
    arm: str | None = typer.Option(None, "--arm", help="Only this arm (by name)."),
    task: str | None = typer.Option(None, "--task", help="Only this task."),
    target: str = typer.Option(
        "sota", "--target", help="A ROUGE-L level (e.g. 70) or sota: each task's full-data no-instruction baseline."
    ),
    at: list[float] = typer.Option([], "--at", help="Also predict the score at this many instances per task."),
    out: Path | None = typer.Option(None, "--out", help="Folder for forecast.json [default: STUDY_DIR/report]."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=50, help="Bootstrap replicates for the 95% intervals."),
    as_json: bool = typer.Option(False, "--json", help="Print forecast.json instead of the table."),
) -> None:
    """How many labels each task needs: learning-curve forecasts with 95% intervals, backtested."""
    import json

    from rich.table import Table

    from quickstudy.files import write_json_atomic
    from quickstudy.report.analysis import analyse
    from quickstudy.report.forecast import FORECAST_FILE, forecast_study, parse_target
    from quickstudy.report.forecast.blocks import LABELS_COLUMNS, LABELS_NUMERIC, backtest_rows, labels_rows
    from quickstudy.report.results import collect_study

    level = parse_target(target)
    forecast = forecast_study(
        analyse(collect_study(study_dir), n_boot=bootstrap), level, arm=arm, task=task, at=tuple(at)
    )
    path = (out if out is not None else study_dir / "report") / FORECAST_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, forecast.to_json())
    if as_json:
        print(json.dumps(forecast.to_json(), indent=1))
        return
    table = Table(title=f"Labels needed to reach {escape(forecast.target_label)}", title_justify="left")
    for column, numeric in zip(LABELS_COLUMNS, LABELS_NUMERIC):
        table.add_column(column, justify="right" if numeric else "left", no_wrap=column in ("task", "arm"))
    for row in labels_rows(forecast, forecast.overall() + forecast.per_task()):
        table.add_row(*[escape(cell) for cell in row])
    console.print(table)
    for row in backtest_rows(forecast):
        console.print(escape(f"backtest {row[0]}: {row[1]} tasks, MAE {row[2]}, coverage {row[3]}: {row[5]}"))
    for line in forecast.skipped:
        console.print(escape(f"not forecast: {line}"))
    console.print(f"forecast: {escape(str(path))}", highlight=False)


# --- demo command (issue: built-in demo) -------------------------------------


DemoPreset = StrEnum("DemoPreset", {preset: preset for preset in DEMO_PRESETS})


@app.command("demo")
def demo_command(
    out: Path = typer.Option(
        Path("demo-study"), "--out", help="Folder for the collection, tokenizer, runs and report."
    ),
    seeds: int = typer.Option(1, "--seeds", min=1, help="Seeds per arm (1, 2, ... N)."),
    preset: DemoPreset = typer.Option(
        "demo", "--preset", help="demo (the full built-in study) or smoke (a one-minute version)."
    ),
    overrides: list[str] = typer.Option([], "--set", help="Override a key of the preset's config (dotted.key=value)."),
    log_every: float = typer.Option(60, "--log-every", min=1, help=_LOG_EVERY_HELP),
) -> None:
    """Run the built-in study on the CPU, offline: synthetic tasks, every arm, and the report."""
    import time

    from quickstudy.demo import (
        demo_config_path,
        demo_overrides,
        demo_paths,
        prepared_demo_data,
        recorded_demo_estimate,
    )
    from quickstudy.report.render import build_report
    from quickstudy.report.sections import time_text
    from quickstudy.study.config import load_study_config
    from quickstudy.study.progress import study_progress
    from quickstudy.study.runner import run_study

    started = time.monotonic()
    paths = demo_paths(out)
    config_path = demo_config_path(preset.value)
    study = load_study_config(config_path, [*demo_overrides(paths, seeds), *overrides])
    console.print(f"demo: synthetic collection and tokenizer in {paths.out}")
    prepared_demo_data(paths)
    try:
        estimate = recorded_demo_estimate(study, paths.out)
    except QuickstudyError as error:  # the estimate is a side dish: the study runs without it
        console.print(f"demo: no cost estimate ({error})", markup=False, highlight=False, soft_wrap=True)
    else:
        if estimate is not None:
            console.print(
                f"demo: {time_text(estimate.total_hours())} of compute estimated, calibrated on this machine "
                "(recorded: the report shows it beside the measured time)"
            )
    with _resumable(paths.out), study_progress(console, paths.out, log_every) as progress:
        result = run_study(study, paths.out, progress=progress)
    files = build_report(paths.out, paths.report)
    minutes = (time.monotonic() - started) / 60
    _print_answers(files.answers)
    console.print(f"demo: {result.already_done + len(result.done)}/{result.planned} runs done in {minutes:.1f} min")
    console.print(f"report: {files.html}\n        {files.markdown}")
    if not result.complete:
        from quickstudy.errors import StudyError

        raise StudyError(f"{paths.out}: {len(result.failed)} runs failed; see `quickstudy study status {paths.out}`")


# --- ls and init: what ships with quickstudy (issue: front door) -------------


class Listing(StrEnum):
    encodings = "encodings"
    configs = "configs"
    models = "models"


@app.command("ls")
def ls_command(what: Listing = typer.Argument(..., help="What to list.")) -> None:
    """List the encoding presets, the shipped configs or the tiny offline models, one line each."""
    from rich.table import Table

    from quickstudy.shipped import config_summary, shipped_config_dir, shipped_configs

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    if what is Listing.encodings:
        from quickstudy.prompts.encoding import PRESETS

        for name, encoding in PRESETS.items():
            table.add_row(name, encoding.description)
    elif what is Listing.models:
        from quickstudy.models.tiny import TINY_MODELS

        for name, description in TINY_MODELS.items():
            table.add_row(name, description)
        table.add_row("(any other)", "a Hugging Face hub id or a local checkpoint folder")
    else:
        for name, path in shipped_configs().items():
            table.add_row(name, escape(config_summary(path) or path.name))
        console.print(f"in {escape(str(shipped_config_dir()))}; copy one with `quickstudy init NAME --from CONFIG`")
    console.print(table)


@app.command("init")
def init_command(
    name: Path = typer.Argument(..., help="The config file to write (.yaml added when it has no suffix)."),
    source: str = typer.Option("thesis", "--from", help="Shipped config to copy (see `quickstudy ls configs`)."),
    force: bool = typer.Option(False, "--force", help="Replace NAME if it exists."),
) -> None:
    """Write a copy of a shipped config to edit."""
    import yaml

    from quickstudy.errors import ConfigError
    from quickstudy.files import write_text_atomic
    from quickstudy.shipped import shipped_config

    original = shipped_config(source)
    target = name if name.suffix else name.with_suffix(original.suffix)
    if target.exists() and not force:
        raise ConfigError(f"{target}: already exists (--force replaces it)")
    text = original.read_text(encoding="utf-8")
    write_text_atomic(target, text)
    console.print(f"wrote {escape(str(target))} (a copy of {original.stem})", highlight=False)
    collection = (yaml.safe_load(text) or {}).get("collection") if original.suffix == ".yaml" else None
    if collection is not None:
        console.print(
            f"collection: {escape(str(collection))} (relative to the file's folder): point it at your task "
            f"collection, or add --set collection=DIR; then `quickstudy study plan {escape(str(target))}`",
            highlight=False,
            soft_wrap=True,
        )


@contextmanager
def _resumable(folder: Path) -> Iterator[None]:
    """Ctrl-C inside: say where the finished work is kept and how to resume (exit 130)."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; finished work is kept in {folder}; re-run the same command to resume"
        ) from None


def _click_exceptions(name: str) -> tuple[type[BaseException], ...]:
    """Exception class `name` of typer's own click copy (typer >= 0.2x raises those) and of click."""
    import importlib

    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _usage_line(error: Any) -> str:
    """A usage error as one line, with the help command of the command it concerns."""
    message = " ".join(error.format_message().split()).rstrip(".")
    command = error.ctx.command_path if getattr(error, "ctx", None) is not None else "quickstudy"
    return f"error: {message} (try '{command} --help')"


def main() -> None:
    """Entry point: run the app; only here do errors become one line on stderr and an exit code."""
    try:
        # Without standalone mode click returns (not raises) the code of `typer.Exit(n)`.
        code = app(standalone_mode=False, prog_name="quickstudy")
        if isinstance(code, int) and code:
            sys.exit(code)
    except QuickstudyError as error:
        prefix = "" if isinstance(error, Interrupted) else "[bold red]error:[/] "
        err_console.print(f"{prefix}{escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except OSError as error:  # a write refused (read-only folder, full disk): one line naming the file
        err_console.print(f"[bold red]error:[/] {escape(str(output_error(error)))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted", highlight=False)
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exception as error:  # click's own exceptions come through here in non-standalone mode
        if isinstance(error, _click_exceptions("NoArgsIsHelpError")):  # bare `quickstudy`, `quickstudy study`
            help_text = error.ctx.get_help()  # type: ignore[attr-defined]  # typer's rich help prints itself
            if help_text:
                typer.echo(help_text)
            sys.exit(2)
        if isinstance(error, _click_exceptions("UsageError")):
            err_console.print(_usage_line(error), highlight=False, soft_wrap=True, markup=False)
            sys.exit(2)
        if isinstance(error, (typer.Abort, *_click_exceptions("Abort"))):  # click turns Ctrl-C into Abort
            err_console.print("interrupted", highlight=False)
            sys.exit(130)
        if isinstance(error, _click_exceptions("ClickException")):
            err_console.print(f"error: {' '.join(error.format_message().split())}", markup=False, soft_wrap=True)  # type: ignore[attr-defined]
            sys.exit(error.exit_code)  # type: ignore[attr-defined]
        raise


if __name__ == "__main__":
    main()
