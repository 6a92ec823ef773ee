"""A progress bar over a study's runs with live done / running / failed counts."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from quickstudy.study.runner import Progress as RunProgress


class RichProgress(RunProgress):
    def __init__(self, console: Console):
        self._bar = Progress(
            TextColumn("[bold]study[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._task: Any = None

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def started(self, total: int) -> None:
        self._task = self._bar.add_task("", total=total)

    def update(self, done: int, running: int, failed: int) -> None:
        description = f"done {done}  running {running}  failed {failed}"
        self._bar.update(self._task, completed=done + failed, description=description)
