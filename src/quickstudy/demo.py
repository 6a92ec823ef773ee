"""The built-in demo: a synthetic collection, a tokenizer trained on it, the whole
study on the CPU and its report.

Like cli.py this sits on top of the pipeline: it only calls the stages in order.
Every step is skipped when its output already exists, so `quickstudy demo` run
again resumes (the study itself resumes run by run).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from quickstudy.data.collection import Collection
from quickstudy.data.synth import write_synth_collection
from quickstudy.errors import ConfigError
from quickstudy.files import replace_directory
from quickstudy.models.tiny import word_level_tokenizer
from quickstudy.prompts.encoding import PromptBuilder, encoding_by_name
from quickstudy.shipped import DEMO_PRESETS, shipped_config

if TYPE_CHECKING:
    from quickstudy.study.config import StudyConfig
    from quickstudy.study.estimate import StudyEstimate

# Every piece of prompt scaffolding the encodings can write (task name, definition,
# examples with explanations), so the word-level vocabulary covers any encoding.
_SCAFFOLD_ENCODING = "def_pos2_neg2_expl"


@dataclass(frozen=True)
class DemoPaths:
    out: Path
    collection: Path
    tokenizer: Path
    report: Path


def demo_paths(out: Path) -> DemoPaths:
    out = out.resolve()
    return DemoPaths(out=out, collection=out / "collection", tokenizer=out / "tokenizer", report=out / "report")


def demo_config_path(preset: str) -> Path:
    """The preset's study config, shipped with the package."""
    if preset not in DEMO_PRESETS:
        raise ConfigError(f"--preset: unknown demo preset {preset!r} (known: {', '.join(DEMO_PRESETS)})")
    return shipped_config(DEMO_PRESETS[preset])


def prepared_demo_data(paths: DemoPaths, seed: int = 0) -> None:
    """Write the synthetic collection and its tokenizer unless they already exist."""
    if not (paths.collection / "tasks").is_dir():
        write_synth_collection(paths.collection, seed=seed)
    if not (paths.tokenizer / "tokenizer.json").is_file():
        tokenizer = word_level_tokenizer(tokenizer_texts(Collection(paths.collection)))
        tmp = paths.tokenizer.with_name(paths.tokenizer.name + ".tmp")
        tokenizer.save_pretrained(tmp)
        replace_directory(tmp, paths.tokenizer)


def tokenizer_texts(collection: Collection) -> Iterator[str]:
    """Every instance's input and references, and one full prompt per task."""
    scaffold = encoding_by_name(_SCAFFOLD_ENCODING)
    for task in collection.tasks():
        yield PromptBuilder(task, scaffold).prompt(task.instances[0].input)
        yield task.name + " ."
        for instance in task.instances:
            yield instance.input
            yield from instance.references


def demo_overrides(paths: DemoPaths, seeds: int) -> list[str]:
    """`--set` overrides that point the preset's config at this demo folder."""
    overrides = [f"collection={paths.collection}", f"models.base.tokenizer={paths.tokenizer}"]
    if seeds != 1:
        overrides.append(f"seeds=[{', '.join(str(seed) for seed in range(1, seeds + 1))}]")
    return overrides


def recorded_demo_estimate(study: StudyConfig, out: Path) -> StudyEstimate | None:
    """Before the first launch, the study's cost calibrated on this machine and recorded for
    the report (`study plan --estimate --device calibrate`); None when one is already recorded,
    so a resumed demo keeps the estimate made before any run."""
    from quickstudy.study.estimate import CALIBRATE, estimate_study, record_estimate
    from quickstudy.study.layout import ESTIMATE_FILE
    from quickstudy.study.plan import plan_study

    if (out / ESTIMATE_FILE).is_file():
        return None
    estimate = estimate_study(study, plan_study(study), CALIBRATE)
    record_estimate(out, estimate, gpus=1)
    return estimate
