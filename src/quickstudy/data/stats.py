"""Statistics of a split's unseen tasks: the thesis's Tables 4.1-4.3.

Only counts are kept: each task is loaded, split and counted, then dropped,
so the statistics of a 3 GB collection need the memory of one task.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape
from rich.table import Table

from quickstudy.data.collection import Collection
from quickstudy.data.sampling import SampleSize, nested_samples, parse_sizes, prefinetune_instances, sample_shortfalls
from quickstudy.data.splits import SplitConfig, unseen_task_splits

DEFAULT_SIZES = "100,200,1000,all"


@dataclass
class SizeTotals:
    """One sample size summed over the unseen tasks."""

    instances: int = 0
    per_category: Counter[str] = field(default_factory=Counter)
    capped_tasks: list[str] = field(default_factory=list)


@dataclass
class CollectionStats:
    """Counts for the unseen tasks of one split (and the seen tasks' pre-finetuning set)."""

    split: str
    seen_tasks: int = 0
    categories: Counter[str] = field(default_factory=Counter)
    instances: Counter[str] = field(default_factory=Counter)
    train_per_category: Counter[str] = field(default_factory=Counter)
    leaked_removed: int = 0
    sizes: dict[str, SizeTotals] = field(default_factory=dict)

    @property
    def tasks(self) -> int:
        return sum(self.categories.values())

    def category_order(self) -> list[str]:
        """Categories by task count, largest first (the order of Table 4.1)."""
        return sorted(self.categories, key=lambda category: (-self.categories[category], category))

    def percent_of_train(self, instances: int, category: str | None = None) -> float:
        total = self.instances["train"] if category is None else self.train_per_category[category]
        return round(100 * instances / total, 2) if total else 0.0

    def to_json(self) -> dict[str, Any]:
        order = self.category_order()
        return {
            "tasks": self.tasks,
            "categories": {category: self.categories[category] for category in order},
            "instances": {part: self.instances[part] for part in ("train", "validation", "test", "prefinetune")},
            "sizes": {
                label: {
                    "instances": totals.instances,
                    "percent": self.percent_of_train(totals.instances),
                    "per_category": {category: totals.per_category[category] for category in order},
                    "capped_tasks": totals.capped_tasks,
                }
                for label, totals in self.sizes.items()
            },
            "leaked_removed": self.leaked_removed,
            "seen_tasks": self.seen_tasks,
        }


def collection_stats(
    collection: Collection,
    split_name: str = "default",
    sizes: Sequence[SampleSize] | None = None,
    config: SplitConfig = SplitConfig(),
    prefinetune_per_task: int = 100,
    seed: int = 1,
    on_task: Callable[[str], None] | None = None,
) -> CollectionStats:
    """Count tasks, instances and per-size samples of the split's unseen tasks, and
    the pre-finetuning set of its seen tasks. `on_task(name)` is called after each task."""
    sizes = list(sizes) if sizes is not None else parse_sizes(DEFAULT_SIZES)
    split = collection.split(split_name)
    stats = CollectionStats(split=split_name, sizes={size.label: SizeTotals() for size in sizes})
    for task_split in unseen_task_splits(collection, split, config):
        category = task_split.category
        stats.categories[category] += 1
        stats.instances.update(
            test=len(task_split.test), validation=len(task_split.validation), train=len(task_split.train)
        )
        stats.train_per_category[category] += len(task_split.train)
        stats.leaked_removed += task_split.leaked_removed
        for label, chosen in nested_samples(task_split, sizes, seed).items():
            stats.sizes[label].instances += len(chosen)
            stats.sizes[label].per_category[category] += len(chosen)
        for shortfall in sample_shortfalls(task_split, sizes):
            stats.sizes[shortfall.size].capped_tasks.append(shortfall.task)
        if on_task:
            on_task(task_split.task.name)
    for name in split.train:
        stats.instances["prefinetune"] += len(prefinetune_instances(collection.task(name), prefinetune_per_task, seed))
        stats.seen_tasks += 1
        if on_task:
            on_task(name)
    return stats


def stats_tables(stats: CollectionStats, config: SplitConfig, prefinetune_per_task: int) -> list[Table]:
    """Rich tables in the layout of the thesis's Tables 4.1, 4.2 and 4.3."""
    order = stats.category_order()

    tasks_table = Table(title=escape(f"Table 4.1  Unseen tasks per category (split {stats.split!r})"))
    tasks_table.add_column("Category")
    tasks_table.add_column("Tasks", justify="right")
    for category in order:
        tasks_table.add_row(escape(category), str(stats.categories[category]))
    tasks_table.add_row("Total", str(stats.tasks), style="bold")

    instances_table = Table(title="Table 4.2  Instances")
    instances_table.add_column("Set")
    instances_table.add_column("Instances", justify="right")
    instances_table.add_row(
        f"Train (unseen tasks; {stats.leaked_removed} removed as leakage)", f"{stats.instances['train']:,}"
    )
    instances_table.add_row(
        f"Validation (next {config.n_validation} per unseen task)", f"{stats.instances['validation']:,}"
    )
    instances_table.add_row(f"Test (first {config.n_test} per unseen task)", f"{stats.instances['test']:,}")
    instances_table.add_row(
        f"Pre-finetuning ({prefinetune_per_task} per seen task, {stats.seen_tasks} seen tasks)",
        f"{stats.instances['prefinetune']:,}",
    )

    def cell(instances: int, category: str | None = None) -> str:
        return f"{instances:,} ({stats.percent_of_train(instances, category):.2f}%)"

    sizes_table = Table(title="Table 4.3  Selected train instances per size (% of train)")
    sizes_table.add_column("Category")
    sizes_table.add_column("Train", justify="right")
    for label in stats.sizes:
        sizes_table.add_column(label, justify="right")
    for category in order:
        per_size = [cell(size.per_category[category], category) for size in stats.sizes.values()]
        sizes_table.add_row(escape(category), f"{stats.train_per_category[category]:,}", *per_size)
    all_sizes = [cell(size.instances) for size in stats.sizes.values()]
    sizes_table.add_row("All", f"{stats.instances['train']:,}", *all_sizes, style="bold")
    sizes_table.add_row(
        "Tasks capped", "", *[str(len(size.capped_tasks)) for size in stats.sizes.values()], style="dim"
    )
    return [tasks_table, instances_table, sizes_table]
