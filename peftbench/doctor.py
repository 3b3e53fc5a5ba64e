"""``peftbench doctor``: what in a results folder is not a whole, finished run, and its cure.

It reads both run records (``results/``) and training checkpoints (``train/checkpoint.py``), so it
lives at command level, above both; ``records`` is the results folder as ``table``, ``plot`` and
``list runs`` read it: every readable record, each damaged record or checkpoint warned once.

Findings, per run folder:

- ``corrupt``: record.json unreadable (empty, truncated, not JSON, keys missing), or a folder with
  files but no record. Cure: the folder is moved to ``RESULTS/.trash/`` (nothing is deleted).
- ``stale``: the record says running, but no live process holds the run's lock (it died).
  Cure: the record is marked failed ("interrupted"); its checkpoints stay, and running the same
  command resumes it.
- ``damaged checkpoint``: a checkpoint that is not whole, or a write that never finished.
  Cure: it is deleted; resume falls back to the checkpoint before it.
- ``leftover``: a temporary file of an interrupted atomic write. Cure: deleted.
- ``failed``: a run that stopped with an error (reported, left as is: re-running resumes it).
- ``damaged weights``: a complete run whose method.safetensors is not whole (reported only).

A run held by a live process is reported as ``running`` and never touched; a complete run's
record and weights are never touched either.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from peftbench.atomic import write_json_atomic
from peftbench.integrity import safetensors_problem
from peftbench.results.lock import LOCK_FILE, lock_holder
from peftbench.results.record import CorruptRecord, RECORD_FILE, WEIGHTS_FILE, read_record, read_records, run_dirs, warn_to_stderr
from peftbench.train.checkpoint import Checkpoints, StateIndex

TRASH = ".trash"


@dataclass
class Finding:
    kind: str
    path: Path
    reason: str
    cure: Callable[[], str] | None = None  # does the fix and says what it did; None: left as is


def records(root: Path, warn: Callable = warn_to_stderr) -> Iterator[dict]:
    """Every readable record under ``root`` (``iter_records``); each damaged checkpoint and each
    unreadable record is passed to ``warn`` once (the quick check: state.json and file sizes,
    a state.json read by an earlier command and unchanged since taken from ``StateIndex``).
    The folder is listed once, for both."""
    folders = run_dirs(root)
    states = StateIndex(root)
    for run_dir in folders:
        for problem in checkpoint_problems(run_dir, states=states):
            warn(problem)
    states.save()
    yield from read_records(folders, warn)


def examine(root: Path, deep: bool = False) -> list[Finding]:
    """Every finding under ``root`` (``deep`` also checks each checkpoint's checksum)."""
    folders = run_dirs(root) if root.is_dir() else []
    return [finding for run_dir in folders for finding in _examine_run(root, Path(run_dir), deep)]


def checkpoint_problems(run_dir: str | os.PathLike, deep: bool = False, states: StateIndex | None = None) -> list:
    """Damaged checkpoints of every phase of one run (objects with ``path`` and ``reason``)."""
    try:
        with os.scandir(os.path.join(run_dir, "checkpoints")) as entries:
            phases = sorted(entry.path for entry in entries if entry.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [problem for phase in phases for problem in Checkpoints(phase).problems(deep, states)]


def _examine_run(root: Path, run_dir: Path, deep: bool) -> list[Finding]:
    holder = lock_holder(run_dir)
    if holder is not None:
        return [Finding("running", run_dir, f"held by pid {holder.get('pid', '?')} on {holder.get('host', '?')}")]
    try:
        record = read_record(run_dir)
    except CorruptRecord as problem:
        if not (run_dir / RECORD_FILE).exists() and not _has_files(run_dir):
            return []  # an empty folder, or only a released lock: nothing to say
        return [Finding("corrupt", problem.path, problem.reason, lambda: _to_trash(root, run_dir))]
    findings = [
        Finding("leftover", path, "unfinished write", lambda path=path: _delete(path))
        for path in sorted(run_dir.rglob(".*.tmp"))
        if path.is_file()
    ]
    findings += [
        Finding("damaged checkpoint", p.path, p.reason, lambda p=p: _delete(_checkpoint_folder(p.path)))
        for p in checkpoint_problems(run_dir, deep)
    ]
    if record["status"] == "running":
        findings.append(Finding("stale", run_dir / RECORD_FILE, "running, but no live process holds its lock",
                                lambda: _mark_interrupted(run_dir, record)))  # fmt: skip
    elif record["status"] == "failed":
        findings.append(Finding("failed", run_dir / RECORD_FILE, record.get("error") or "no reason recorded"))
    elif (run_dir / WEIGHTS_FILE).exists() and safetensors_problem(run_dir / WEIGHTS_FILE):
        findings.append(Finding("damaged weights", run_dir / WEIGHTS_FILE, safetensors_problem(run_dir / WEIGHTS_FILE)))
    return findings


def _has_files(run_dir: Path) -> bool:
    return any(p.name != LOCK_FILE or p.stat().st_size for p in run_dir.iterdir())


def _checkpoint_folder(path: Path) -> Path:
    """The folder to remove for a problem found at ``path`` (a file inside a checkpoint, or a
    temporary checkpoint folder itself)."""
    return path if path.name.endswith(".tmp") else path.parent


def _delete(path: Path) -> str:
    shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    return "deleted"


def _to_trash(root: Path, run_dir: Path) -> str:
    trash = root / TRASH
    trash.mkdir(exist_ok=True)
    target, n = trash / run_dir.name, 1
    while target.exists():
        target, n = trash / f"{run_dir.name}.{n}", n + 1
    run_dir.rename(target)
    return f"moved to {target}"


def _mark_interrupted(run_dir: Path, record: dict) -> str:
    record.update(status="failed", error="interrupted: no process held its lock (found by peftbench doctor); "
                  "run the same command to resume it")  # fmt: skip
    write_json_atomic(run_dir / RECORD_FILE, record)
    return "marked failed; re-running its command resumes it"


def report(root: Path, fix: bool, deep: bool, out: Callable[[str], None] = print) -> int:
    """Print the findings (and cure them with ``fix``); returns how many problems are left."""
    findings = examine(root, deep)
    left = 0
    for finding in findings:
        line = f"{finding.kind:<18} {finding.path}: {finding.reason}"
        if finding.cure is not None and fix:
            line += f" -> {finding.cure()}"
        elif finding.cure is not None:
            left += 1
            line += " (--fix cures it)"
        out(line)
    if not findings:
        out(f"{root}: every run is whole")
    return left

