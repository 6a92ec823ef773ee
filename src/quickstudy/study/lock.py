"""One runner per study directory.

`study run` holds an exclusive lock on `<study>/.lock` for as long as it runs. The
lock is an OS file lock, so it goes away with the process however it ends (even
SIGKILL); a second runner is refused with one line naming the holder.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from quickstudy.errors import StudyError

LOCK_NAME = ".lock"
HOLDER_NAME = ".lock.holder.json"


@contextmanager
def study_lock(study_dir: Path) -> Iterator[None]:
    """Hold the study's lock, or raise StudyError at once if another runner holds it."""
    study_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(study_dir / LOCK_NAME, is_singleton=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise StudyError(
            f"{study_dir}: another `study run` is running this study ({lock_holder(study_dir)}); wait for it to finish"
        ) from None
    try:
        holder = {"pid": os.getpid(), "host": socket.gethostname()}
        (study_dir / HOLDER_NAME).write_text(json.dumps(holder) + "\n", encoding="utf-8")
        yield
    finally:
        lock.release()


def lock_holder(study_dir: Path) -> str:
    """Who holds the lock, as well as the holder file tells (it may be from an earlier runner)."""
    try:
        holder = json.loads((study_dir / HOLDER_NAME).read_text(encoding="utf-8"))
        return f"pid {holder['pid']} on {holder['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"
