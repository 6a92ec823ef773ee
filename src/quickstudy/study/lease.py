"""One run, one process: a run's lease, and workers that die with their runner.

Before a run starts, the process that will execute it takes the run's lease: the file
`runs/<id>/lease.json` ({pid, host, heartbeat, token}), created exclusively. While the run
executes, a thread renews the heartbeat; the lease is removed when the run ends. A second
process finds the lease and leaves the run alone, so no two processes ever execute the
same run, even across a crashed runner and a new one. A lease whose holder is gone is
taken over: a dead pid on this host, or (another host, or a reused pid) a heartbeat older
than STALE_AFTER_SECONDS.

Worker processes also ask the kernel to kill them when their runner dies (Linux
PR_SET_PDEATHSIG), so a `kill -9` of a runner leaves no orphan workers behind.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from quickstudy.files import process_alive, write_json_atomic
from quickstudy.study.layout import LEASE_FILE

HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 120.0  # a holder on another host whose heartbeat is older than this is gone


class RunLease:
    """A held lease: renews its heartbeat until `release()` (or the end of a `with` block)."""

    def __init__(self, path: Path, holder: dict[str, Any]):
        self.path = path
        self.holder = holder
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease {path.parent.name}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            if lease_holder(self.path) != self.holder:
                continue  # taken over by another process that judged us gone: never write over it
            self.holder = {**self.holder, "heartbeat": time.time()}
            try:
                write_json_atomic(self.path, self.holder)
            except Exception:  # a full disk must not kill the run; the heartbeat only ages
                pass

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        current = lease_holder(self.path)
        if current is not None and current.get("token") == self.holder["token"]:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def take_lease(run_folder: Path) -> RunLease | None:
    """The run's lease, or None while another live process holds it."""
    path = run_folder / LEASE_FILE
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "heartbeat": time.time(), "token": uuid.uuid4().hex}
    for _ in range(3):
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            current = lease_holder(path)
            if current is not None and not is_stale(current):
                return None
            _remove_stale(path, current)
            continue
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(holder, out)
        return RunLease(path, holder)
    return None


def lease_holder(path: Path) -> dict[str, Any] | None:
    """The lease file's holder, or None when absent or unreadable (a lease torn by a crash)."""
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def is_stale(holder: dict[str, Any], now: float | None = None) -> bool:
    """Whether the holder is gone: a dead pid on this host, or a heartbeat too old."""
    age = (now or time.time()) - float(holder.get("heartbeat") or 0)
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        return not process_alive(holder["pid"]) or age > 10 * STALE_AFTER_SECONDS  # a reused pid
    return age > STALE_AFTER_SECONDS


def describe(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "another process"
    return f"pid {holder.get('pid')} on {holder.get('host')}"


def _remove_stale(path: Path, judged: dict[str, Any] | None) -> None:
    """Move a stale lease out of the way; if what was moved is not the lease judged stale
    (its holder renewed or replaced it meanwhile), put it back."""
    aside = path.with_name(f".{path.name}.stale-{uuid.uuid4().hex}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    moved = lease_holder(aside)
    if judged is not None and moved is not None and moved.get("token") != judged.get("token"):
        try:
            os.link(aside, path)  # back, unless a new lease was created meanwhile
        except FileExistsError:
            pass
    aside.unlink(missing_ok=True)


def die_with_parent(parent: int) -> None:
    """Ask Linux to kill this process when its parent `parent` dies (a worker with its
    runner); no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)
