"""Writing and reading run records (DESIGN §3, "Run record").

A run directory ``RESULTS_ROOT/<run_id>/`` holds ``record.json`` beside the resolved config, the
history and the method's weights. Every file is written atomically (a temporary file in the same
directory, flushed and fsynced, then renamed over the target), so a crash leaves either the old
file or the new one, never half of one. The run id hashes the config fields that change the
result, so a repeated sweep finds what is already complete.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Callable, Iterator

from peftbench.errors import UserError

RECORD_FILE = "record.json"
SCHEMA = 1
STATUSES = ("running", "complete", "failed")
REQUIRED_KEYS = ("schema", "run_id", "status", "model", "method", "task", "seed", "method_config")
REQUIRED_WHEN_COMPLETE = ("finished", "metrics", "params", "data")


class CorruptRecord(UserError):
    """A ``record.json`` that is missing, empty, truncated, not JSON, or lacks required keys."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(
            f"unreadable run record {self.path}: {reason}; "
            "run `peftbench doctor --fix` to list or remove broken runs"
        )


class DiskFull(UserError):
    """A write failed for lack of space (or of quota, or over the file-size limit)."""

    def __init__(self, path: Path, error: OSError):
        super().__init__(
            f"no space left to write {path} ({error.strerror}); free space there or pass results_dir=DIR "
            "(finished files and the last checkpoint are kept whole)"
        )


_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


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


def run_id(identity: dict, prefix: str) -> str:
    """``<prefix>.<12 hex digits>``: a hash of the fields that change a run's result.

    The hash is over canonical JSON (sorted keys, no spaces), so it does not depend on the order
    in which the fields were assembled. ``prefix`` (e.g. ``rte.minilm-l6.lora.s1``) is for people;
    it becomes a directory name, so it may not contain a path separator.
    """
    if not prefix or "/" in prefix or os.sep in prefix:
        raise ValueError(f"run id prefix {prefix!r} must be a non-empty name without '/'")
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return f"{prefix}.{hashlib.sha256(canonical.encode('utf-8')).hexdigest()[:12]}"


def read_record(run_dir: str | os.PathLike) -> dict:
    """The record of one run directory; ``CorruptRecord`` when it cannot be trusted."""
    path = Path(run_dir) / RECORD_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorruptRecord(path, "no record.json") from None
    except OSError as error:
        raise CorruptRecord(path, error.strerror or str(error)) from None
    return _parse_record(path, raw)


def _parse_record(path: str | os.PathLike, raw: bytes) -> dict:
    if not raw.strip():
        raise CorruptRecord(path, "empty file")
    try:
        text = raw.decode("utf-8")
        record = json.loads(text)
    except UnicodeDecodeError:
        raise CorruptRecord(path, "not UTF-8 text") from None
    except json.JSONDecodeError as error:
        # The text ended inside a value: an unterminated string, or an error at the very end.
        if error.msg.startswith("Unterminated string") or error.pos >= len(text.rstrip()):
            raise CorruptRecord(path, "truncated JSON") from None
        reason = f"invalid JSON ({error.msg} at line {error.lineno} column {error.colno})"
        raise CorruptRecord(path, reason) from None
    if not isinstance(record, dict):
        raise CorruptRecord(path, "not a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise CorruptRecord(path, f"missing keys: {', '.join(missing)}")
    if record["schema"] != SCHEMA:
        raise CorruptRecord(path, f"schema {record['schema']!r}; this peftbench reads {SCHEMA}")
    if record["status"] not in STATUSES:
        raise CorruptRecord(path, f"unknown status {record['status']!r}")
    if record["status"] == "complete":
        missing = [key for key in REQUIRED_WHEN_COMPLETE if key not in record]
        if missing:
            raise CorruptRecord(path, f"complete but missing keys: {', '.join(missing)}")
    return record


def warn_to_stderr(problem) -> None:
    """The default ``warn`` of ``iter_records``: one line on stderr (a ``CorruptRecord`` or a
    damaged checkpoint's problem: anything with ``path`` and ``reason``)."""
    print(f"warning: skipping {problem.path}: {problem.reason}", file=sys.stderr)


def iter_records(
    root: str | os.PathLike, warn: Callable = warn_to_stderr
) -> Iterator[dict]:
    """Every readable record under ``root/*/record.json``, in directory-name order.

    A record that cannot be read is passed to ``warn`` once and skipped; so is each damaged
    checkpoint (its record is still yielded). Directories without a ``record.json`` (and hidden
    entries) are not runs and are passed over silently.
    """
    from peftbench.results.doctor import checkpoint_problems

    root = Path(root)
    if not root.is_dir():
        raise UserError(f"results directory {root} does not exist; pass --results DIR")
    with os.scandir(root) as entries:
        run_dirs = sorted(e.path for e in entries if e.is_dir() and not e.name.startswith("."))
    for run_dir in run_dirs:
        path = os.path.join(run_dir, RECORD_FILE)  # strings, not Paths: this loop runs per record
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            continue
        except OSError as error:
            warn(CorruptRecord(path, error.strerror or str(error)))
            continue
        for problem in checkpoint_problems(run_dir):
            warn(problem)
        try:
            record = _parse_record(path, raw)
        except CorruptRecord as problem:
            warn(problem)
            continue
        yield record


def is_complete(run_dir: str | os.PathLike) -> bool:
    """True when the run directory holds a readable record whose status is ``complete``."""
    try:
        return read_record(run_dir)["status"] == "complete"
    except CorruptRecord:
        return False
