"""Atomic file and folder writes, shared by every stage: readers see the old file or
the new one, never half of it, so a kill at any moment loses nothing already written."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace `path` with `text` (temp file in the same folder, fsync, rename)."""
    path = Path(path)
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


def write_json_atomic(path: str | Path, payload: Any, indent: int = 1) -> None:
    """Replace `path` with `payload` as JSON, atomically."""
    write_text_atomic(path, json.dumps(payload, indent=indent, ensure_ascii=False) + "\n")


def replace_directory(source: Path, target: Path) -> None:
    """Move the finished folder `source` to `target`, replacing any old `target`;
    a reader sees either the old or the new folder, never a half-written one."""
    if not target.exists():
        os.replace(source, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    os.replace(target, old / target.name)
    os.replace(source, target)
    shutil.rmtree(old, ignore_errors=True)
