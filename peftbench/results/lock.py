"""One process per run: an exclusive lock on ``<run>/.lock`` while a run is checked and trained.

The lock is ``fcntl.flock`` on that file, which the kernel releases when its holder dies
(``kill -9`` included): a lock left by a dead process is stale by construction and the next
process simply takes it. The file's JSON (pid, host, since) is there only to say who holds it;
it is emptied on release.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import sys
from pathlib import Path

LOCK_FILE = ".lock"


class RunBusy(Exception):
    """Another live process holds the run's lock."""

    def __init__(self, run_dir: Path, holder: dict):
        self.run_dir, self.holder = run_dir, holder
        who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')}"
        super().__init__(f"run {run_dir.name} is being trained by {who}; pass --wait to wait for it, or leave it")


@contextlib.contextmanager
def run_lock(run_dir: Path, wait: bool = False):
    """Hold the run's lock for the block; ``RunBusy`` at once when it is held (unless ``wait``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise RunBusy(run_dir, _holder(path)) from None
        previous = _holder(path)
        if previous.get("pid") is not None:
            print(f"taking over the stale lock of {run_dir.name} (pid {previous['pid']} is gone)", file=sys.stderr)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": dt.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(me).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(descriptor, 0)
    finally:
        os.close(descriptor)  # closing drops the flock


def lock_holder(run_dir: Path) -> dict | None:
    """Who holds the run's lock now (None: nobody alive does)."""
    path = Path(run_dir) / LOCK_FILE
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _holder(path)
    finally:
        os.close(descriptor)


def _holder(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return {}
    return holder if isinstance(holder, dict) else {}
