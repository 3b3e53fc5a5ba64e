"""Writing and reading run records (DESIGN §3, "Run record").

A run directory ``RESULTS_ROOT/<run_id>/`` holds ``record.json`` beside the resolved config, the
history and the method's weights, each written whole (``peftbench.atomic``). The run id hashes
the config fields that change the result, so a repeated sweep finds what is already complete.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Callable, Iterator

from peftbench.errors import UserError

RECORD_FILE = "record.json"
WEIGHTS_FILE = "method.safetensors"  # the method's own weights (and saved buffers), beside the record
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


def started(run: str, model: str, method: str, task: str, config: dict, parts: list[dict], init_from: str | None,
            extra: dict) -> dict:
    """The record of a run as it starts (status ``running``), in the layout every reader expects.

    ``parts`` holds one entry per task (``part_entry``); the record's benchmark, format and data
    are theirs, and a multi-task record keeps the entries (``parts``: tables read each task's
    cells from them). ``extra`` are the method's own fields (AdapterFusion's ``fused``).
    """
    return {
        "schema": SCHEMA,
        "run_id": run,
        "status": "running",
        "error": None,
        "created": now(),
        "finished": None,
        "model": model,
        "method": method,
        "task": task,
        "benchmark": "+".join(dict.fromkeys(part["benchmark"] for part in parts)),
        "format": "+".join(dict.fromkeys(part["format"] for part in parts)),
        "seed": config["seed"],
        "method_config": config["method"],
        "config": config,
        "metrics": {},
        "params": {},
        "cost": {},
        "env": {},
        "data": parts[0]["data"],
        "init_from": init_from,
        **({"parts": parts} if len(parts) > 1 else {}),
        **extra,
    }


def part_entry(task: str, benchmark: str, format_name: str, main: tuple[str, str], data: dict) -> dict:
    """A record's account of one of its tasks: where its main metric is, and its data fingerprint."""
    return {
        "task": task,
        "benchmark": benchmark,
        "format": format_name,
        "main": {"split": main[0], "metric": main[1]},
        "data": data,
    }


def failed(record: dict, reason: str) -> None:
    record.update(status="failed", error=reason, finished=now())


def completed(record: dict, result, select: tuple[str, str], submission: str | None, env: dict) -> None:
    """``record`` as complete: best and last metrics of the trainer's ``result`` (a ``FitResult``),
    the main metric at ``select`` (split, metric) of the best evaluation, the cost and environment."""
    record.update(
        status="complete",
        finished=now(),
        metrics={
            "best": result.best,
            "last": result.last,
            "best_epoch": result.best_epoch,
            "main": {"split": select[0], "metric": select[1], "value": result.best[select[0]][select[1]]},
        },
        cost=result.cost,
        submission=submission,
        env=env,
    )


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


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


def run_folder(run: str, results: str | os.PathLike) -> Path:
    """The folder of the run a command names: ``run`` itself when it is a run folder, else the run
    id ``run`` in ``results``; a UserError when it is neither."""
    folder = Path(run) if Path(run, RECORD_FILE).is_file() else Path(results) / run
    if not (folder / RECORD_FILE).is_file():
        raise UserError(f"no run '{run}' (neither a run folder nor a run id in {results}); list them with peftbench list runs")
    return folder


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

    A record that cannot be read is passed to ``warn`` once and skipped. Directories without a
    ``record.json`` (and hidden entries) are not runs and are passed over silently.
    """
    return read_records(run_dirs(root), warn)


def run_dirs(root: str | os.PathLike) -> list[str]:
    """The run folders under ``root`` (hidden ones left out), in name order, from one scan of it."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"results directory {root} does not exist; pass --results DIR")
    with os.scandir(root) as entries:
        return sorted(e.path for e in entries if e.is_dir() and not e.name.startswith("."))


def read_records(folders: list[str], warn: Callable = warn_to_stderr) -> Iterator[dict]:
    """The readable records of the run folders ``folders`` (``run_dirs``), as ``iter_records``."""
    for run_dir in folders:
        path = os.path.join(run_dir, RECORD_FILE)  # strings, not Paths: this loop runs per record
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            continue
        except OSError as error:
            warn(CorruptRecord(path, error.strerror or str(error)))
            continue
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


class RunIndex:
    """The complete runs of a results folder, read once: the query of a run that builds on others
    (a warm start from MNLI, AdapterFusion's stage-1 adapters). Unreadable records are left out
    silently here; ``peftbench doctor`` reports them."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._complete: list[dict] | None = None

    @property
    def complete(self) -> list[dict]:
        if self._complete is None:
            found = iter_records(self.root, warn=lambda problem: None) if self.root.is_dir() else ()
            self._complete = [record for record in found if record["status"] == "complete"]
        return self._complete

    def by_id(self, run: str) -> dict | None:
        """The complete run ``run`` (a run id), or None."""
        return next((record for record in self.complete if record["run_id"] == run), None)

    def newest(self, **fields) -> dict | None:
        """The most recently finished complete run whose record has each of ``fields``' values
        (``task=``, ``model=``, ``method=``, ``seed=``, ``method_config=``…), or None."""
        matching = [r for r in self.complete if all(r.get(key) == value for key, value in fields.items())]
        return max(matching, key=lambda record: record.get("finished") or "", default=None)

    def folder(self, record: dict) -> Path:
        return self.root / record["run_id"]
