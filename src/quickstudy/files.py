"""Atomic file and folder writes, shared by every stage: readers see the old file or
the new one, never half of it, so a kill at any moment loses nothing already written."""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from quickstudy.errors import output_error


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn an OSError raised while writing `path` (read-only folder, full disk) into a
    one-line OutputError naming the file."""
    try:
        yield
    except OSError as error:
        raise output_error(error, path) from None


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace `path` with `text` (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


def json_text(payload: Any, where: str | Path, indent: int | None = 1) -> str:
    """`payload` as strict JSON: a NaN or infinite number (a diverged loss, a tampered
    score) becomes null, with a warning naming the file, never the invalid token `NaN`."""
    found: list[float] = []

    def finite(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            found.append(value)
            return None
        if isinstance(value, dict):
            return {key: finite(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(item) for item in value]
        return value

    payload = finite(payload)
    if found:
        logging.getLogger(__name__).warning("%s: %d non-finite number(s) written as null", where, len(found))
    return json.dumps(payload, indent=indent, ensure_ascii=False, allow_nan=False) + "\n"


def write_json_atomic(path: str | Path, payload: Any, indent: int = 1) -> None:
    """Replace `path` with `payload` as JSON (non-finite numbers as null), atomically."""
    write_text_atomic(path, json_text(payload, path, indent))


def replace_directory(source: Path, target: Path) -> None:
    """Move the finished folder `source` to `target`, replacing any old `target`;
    a reader sees either the old or the new folder, never a half-written one."""
    with writing(target):
        if not target.exists():
            os.replace(source, target)
            return
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        os.replace(target, old / target.name)
        os.replace(source, target)
        shutil.rmtree(old, ignore_errors=True)


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: Path, prefix: str) -> None:
    """Delete `<folder>/<prefix><pid>...` temp files and folders whose writer died (a kill
    skips its cleanup); those of live processes are theirs to finish."""
    for path in folder.glob(glob.escape(prefix) + "*"):
        digits = path.name[len(prefix) :].split("-")[0].split(".")[0]
        if digits.isdigit() and not process_alive(int(digits)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
