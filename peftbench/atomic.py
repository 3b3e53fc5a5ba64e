"""Files written whole or not at all (DESIGN §3: "written atomically (temp file + rename)").

Every file peftbench writes (records, histories, weights, checkpoints, tables, plots, submissions)
goes through here: the bytes go to a temporary file in the same directory, flushed and fsynced,
which is then renamed over the target and the directory fsynced, so a reader (or a crash) sees
the old file or the new one, never a part. A write that fails for lack of space is one line
(``DiskFull``) naming the file. Standard library only: every layer may use it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import uuid
from pathlib import Path

from peftbench.errors import UserError

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class DiskFull(UserError):
    """A write failed for lack of space (or of quota, or over the file-size limit)."""

    def __init__(self, path: Path, error: OSError):
        super().__init__(
            f"no space left to write {path} ({error.strerror}); free space there or pass results_dir=DIR "
            "(finished files and the last checkpoint are kept whole)"
        )


@contextlib.contextmanager
def disk_errors(path: Path):
    """Turn a write's out-of-space error into ``DiskFull`` naming ``path``."""
    try:
        yield
    except OSError as error:
        if error.errno in _NO_SPACE:
            raise DiskFull(Path(path), error) from None
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with disk_errors(path):
            # os.open with 0o666 honours the umask, as a plain open() of the target would.
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """``write_bytes_atomic`` for UTF-8 text."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """``write_bytes_atomic`` for a JSON document (indented, keys in insertion order)."""
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
