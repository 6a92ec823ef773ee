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
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._bar.stop()

    def started(self, total: int) -> None:
        """Called once the study is locked and planned, so a refusal prints no bar."""
        self._bar.start()
        self._task = self._bar.add_task("", total=total)

    def update(self, done: int, running: int, failed: int) -> None:
        description = f"done {done}  running {running}  failed {failed}"
        self._bar.update(self._task, completed=done + failed, description=description)
