"""Seeded, nested per-task samples and the pre-finetuning set.

Every draw comes from one permutation per task, seeded statelessly from
(purpose, seed, task name) through SHA-256, so the same seed gives the same
instances in any process, on any machine, in any task order. A size takes a
prefix of that permutation, so the 100-sample set is inside the 200-sample set
and so on: a learning curve then measures data, not the luck of the draw.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from quickstudy.data.records import Instance, Task
from quickstudy.data.splits import TaskSplit
from quickstudy.errors import ConfigError, DataError
from quickstudy.files import write_json_atomic

SizeKind = Literal["count", "percent", "all"]
AUTO_SIZES = "auto"  # `sizes: [auto]`: a geometric ladder up to the train pool (auto_sizes)
AUTO_SMALLEST = 16
FORECAST_POINTS = 4  # sizes a learning-curve forecast needs to be backtested (report/forecast)


@dataclass(frozen=True)
class SampleSize:
    """A per-task sample size: a count, a percentage of the task's train pool, or all of it."""

    kind: SizeKind
    count: int = 0
    percent: Fraction = Fraction(0)

    @property
    def label(self) -> str:
        """The size as written: "100", "6%", "2.5%", "all"."""
        if self.kind == "all":
            return "all"
        if self.kind == "percent":
            return f"{float(self.percent):g}%"
        return str(self.count)

    def asked_for(self, pool: int) -> int:
        """How many instances this size asks for from a train pool of `pool`.
        A percentage is rounded half up and is at least 1."""
        if self.kind == "all":
            return pool
        if self.kind == "percent":
            return max(1, math.floor(pool * self.percent / 100 + Fraction(1, 2)))
        return self.count

    def count_for(self, pool: int) -> int:
        """How many instances are drawn: what is asked for, capped at the pool."""
        return min(self.asked_for(pool), pool)


def parse_size(text: str) -> SampleSize:
    """ "100" -> 100 per task, "6%" -> 6% of each task's train pool, "all" -> every train instance."""
    value = text.strip().lower()
    if value == "all":
        return SampleSize(kind="all")
    if value.endswith("%"):
        try:
            percent = Fraction(value[:-1].strip())
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"sample size {text!r}: not a percentage such as '6%'") from None
        if not 0 < percent <= 100:
            raise ConfigError(f"sample size {text!r}: a percentage must be above 0 and at most 100")
        return SampleSize(kind="percent", percent=percent)
    if not (value.isascii() and value.isdigit()):  # '²'.isdigit() is True, yet int('²') fails
        raise ConfigError(f"sample size {text!r}: expected a whole number, a percentage such as '6%', or 'all'")
    if int(value) == 0:
        raise ConfigError(f"sample size {text!r}: must be above 0 (zero-shot arms take no sizes)")
    return SampleSize(kind="count", count=int(value))


def auto_sizes(pool: int, points: int = FORECAST_POINTS, smallest: int = AUTO_SMALLEST) -> list[SampleSize]:
    """`sizes: [auto]` for a train pool of `pool`: smallest, 2x, 4x, ... below the pool, then all of it;
    a pool too small for `points` sizes that way gets pool / 2^k (k = points - 1 ... 1), then all."""
    counts = []
    count = smallest
    while count < pool:
        counts.append(count)
        count *= 2
    if len(counts) + 1 < points:
        counts = sorted({pool >> k for k in range(points - 1, 0, -1)} - {0})
    return [SampleSize(kind="count", count=n) for n in counts] + [SampleSize(kind="all")]


def parse_sizes(text: str | Sequence[str | int]) -> list[SampleSize]:
    """A comma-separated list ("100,200,all") or a list of sizes; duplicates are an error."""
    parts = text.split(",") if isinstance(text, str) else [str(part) for part in text]
    sizes = [parse_size(part) for part in parts if part.strip()]
    if not sizes:
        raise ConfigError(f"sample sizes {text!r}: no size given")
    labels = [size.label for size in sizes]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(f"sample sizes {text!r}: {', '.join(repeated)} given more than once")
    return sizes


def seeded_rng(purpose: str, seed: int, task_name: str) -> random.Random:
    """A generator that depends only on its arguments (not on Python's salted hash)."""
    digest = hashlib.sha256(f"{purpose}\0{seed}\0{task_name}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def seeded_permutation(instances: Sequence[Instance], purpose: str, seed: int, task_name: str) -> list[Instance]:
    """The instances in an order fixed by (purpose, seed, task name)."""
    order = list(instances)
    seeded_rng(purpose, seed, task_name).shuffle(order)
    return order


def nested_samples(split: TaskSplit, sizes: Sequence[SampleSize], seed: int) -> dict[str, list[Instance]]:
    """Each size's sample of the task's train pool, all prefixes of one seeded permutation."""
    order = seeded_permutation(split.train, "train-sample", seed, split.task.name)
    return {size.label: order[: size.count_for(len(order))] for size in sizes}


@dataclass(frozen=True)
class Shortfall:
    """A task whose train pool is smaller than a size asks for: it uses all it has."""

    task: str
    size: str
    asked: int
    available: int


def sample_shortfalls(split: TaskSplit, sizes: Sequence[SampleSize]) -> list[Shortfall]:
    """The sizes this task cannot fill from its train pool."""
    pool = len(split.train)
    return [
        Shortfall(task=split.task.name, size=size.label, asked=size.asked_for(pool), available=pool)
        for size in sizes
        if size.asked_for(pool) > pool
    ]


def prefinetune_instances(task: Task, n: int = 100, seed: int = 1) -> list[Instance]:
    """n instances of a seen task for the pre-finetuning set (all of them if it has fewer)."""
    if n < 0:
        raise ConfigError(f"pre-finetuning: instances per task must be non-negative, got {n}")
    return seeded_permutation(task.instances, "prefinetune", seed, task.name)[:n]


def select_instances(instances: Iterable[Instance], ids: Sequence[str], where: str) -> list[Instance]:
    """The instances with these ids, in the order of `ids`; an unknown id is a DataError."""
    by_id = {instance.id: instance for instance in instances}
    missing = [instance_id for instance_id in ids if instance_id not in by_id]
    if missing:
        raise DataError(f"{where}: {len(missing)} instance id(s) not in the task's pool, first {missing[0]!r}")
    return [by_id[instance_id] for instance_id in ids]


# --- manifests: the selected instance ids, written once and re-read by later stages


@dataclass(frozen=True)
class SampleManifest:
    """Selected train instance ids per task and size label (smaller sizes nest in larger ones)."""

    seed: int
    sizes: tuple[str, ...]
    tasks: dict[str, dict[str, tuple[str, ...]]]

    def ids(self, task: str, size: str) -> tuple[str, ...]:
        try:
            return self.tasks[task][size]
        except KeyError:
            raise DataError(f"manifest: no sample of size {size!r} for task {task!r}") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "sizes": list(self.sizes),
            "tasks": {task: {size: list(ids) for size, ids in by_size.items()} for task, by_size in self.tasks.items()},
        }


def sample_manifest(splits: Iterable[TaskSplit], sizes: Sequence[SampleSize], seed: int) -> SampleManifest:
    """The manifest of nested samples for these task splits."""
    tasks = {
        split.task.name: {
            label: tuple(i.id for i in chosen) for label, chosen in nested_samples(split, sizes, seed).items()
        }
        for split in splits
    }
    return SampleManifest(seed=seed, sizes=tuple(size.label for size in sizes), tasks=tasks)


def write_manifest(path: str | Path, manifest: SampleManifest) -> None:
    """Write the manifest as JSON, atomically (a reader never sees half a file)."""
    write_json_atomic(Path(path), manifest.to_json())


def read_manifest(path: str | Path) -> SampleManifest:
    """Re-read a manifest written by write_manifest; DataError names the file and field."""
    path = Path(path)
    try:
        raw = json.loads(path.read_bytes())
    except OSError as error:
        raise DataError(f"{path}: manifest cannot be read ({error.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: invalid JSON ({error})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: top level must be a JSON object")
    seed, sizes, tasks = raw.get("seed"), raw.get("sizes"), raw.get("tasks")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DataError(f"{path}: field 'seed' must be an integer")
    if not isinstance(sizes, list) or not all(isinstance(s, str) for s in sizes):
        raise DataError(f"{path}: field 'sizes' must be a list of size labels")
    if not isinstance(tasks, dict):
        raise DataError(f"{path}: field 'tasks' must be an object")
    parsed: dict[str, dict[str, tuple[str, ...]]] = {}
    for task, by_size in tasks.items():
        if not isinstance(by_size, dict) or set(by_size) != set(sizes):
            raise DataError(f"{path}: tasks.{task} must map each of the sizes {sizes} to a list of ids")
        for size, ids in by_size.items():
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise DataError(f"{path}: tasks.{task}.{size} must be a list of instance ids")
        parsed[task] = {size: tuple(by_size[size]) for size in sizes}
    return SampleManifest(seed=seed, sizes=tuple(sizes), tasks=parsed)
