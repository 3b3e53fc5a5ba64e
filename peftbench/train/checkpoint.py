"""Checkpoints for resume: a run's training state every N steps and after every evaluation.

``<run>/checkpoints/<phase>/step-00000120/`` holds ``tensors.safetensors`` (the trainable
parameters, the optimiser's moments, the RNG and data-order generator states) and ``state.json``
(step, epoch, batches consumed in the epoch, scheduler, optimiser hyper-parameters, the
evaluations so far, cost counters, the size and SHA-256 of the tensors file). Tensors go through
safetensors only, never pickle. A checkpoint is written in a hidden ``.step-….tmp`` folder and
renamed into place, so a folder named ``step-N`` is whole unless something damaged it later; a
damaged one is reported and passed over, and resume falls back to the one before. The quick
check (``peftbench table`` makes it for every run) reads state.json and compares the tensors
file's size with the one recorded (a state.json read before and unchanged since is taken from the
results folder's ``StateIndex``); the deep one (``peftbench doctor --deep``) also checks the
safetensors structure and the checksum.

Pruning keeps the newest ``keep`` checkpoints and the one of the best evaluation (its parameters
are the run's best weights). Nothing here imports torch at module level: ``peftbench doctor`` and
``peftbench table`` check checkpoints without the ML stack.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from peftbench.integrity import safetensors_problem

TENSORS, STATE = "tensors.safetensors", "state.json"
FORMAT = 2  # of state.json; a checkpoint of another format is passed over (the run starts afresh)
_NAME = re.compile(r"^step-(\d{8})$")


@dataclass
class Problem:
    path: Path
    reason: str


class Checkpoints:
    """The checkpoints of one training phase, in one folder."""

    def __init__(self, directory: str | os.PathLike, keep: int = 1):
        self._folder = os.fspath(directory)  # a string: the quick check runs for every run's phases
        self.keep = keep

    @property
    def directory(self) -> Path:
        return Path(self._folder)

    def path(self, step: int) -> Path:
        return self.directory / f"step-{step:08d}"

    def steps(self) -> list[int]:
        """Steps of the checkpoint folders present (whole or not), ascending."""
        try:
            with os.scandir(self.directory) as entries:
                found = [_NAME.match(entry.name) for entry in entries if entry.is_dir()]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(int(match.group(1)) for match in found if match)

    def save(self, step: int, tensors: dict, state: dict) -> None:
        """Write checkpoint ``step`` (``state["best_step"]`` names the best one), then prune."""
        from safetensors.torch import save

        from peftbench.atomic import write_bytes_atomic

        data = save({name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()})
        temporary = self.directory / f".step-{step:08d}.tmp"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        try:
            write_bytes_atomic(temporary / TENSORS, data)
            document = {**state, "format": FORMAT, "step": step, "tensors_bytes": len(data),
                        "tensors_sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip
            write_bytes_atomic(temporary / STATE, (json.dumps(document) + "\n").encode())
            final = self.path(step)
            if final.exists():
                shutil.rmtree(final)
            os.replace(temporary, final)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        self.prune(best=state.get("best_step"))

    def load(self, step: int) -> tuple[dict, dict]:
        """(tensors, state) of checkpoint ``step``; ``CorruptCheckpoint`` when it is not whole."""
        from safetensors.torch import load

        problem = self.problem(step, deep=False)
        if problem:
            raise CorruptCheckpoint(problem)
        folder = self.path(step)
        data = (folder / TENSORS).read_bytes()
        state = json.loads((folder / STATE).read_text())
        if hashlib.sha256(data).hexdigest() != state["tensors_sha256"]:
            raise CorruptCheckpoint(Problem(folder / TENSORS, "contents differ from the checksum in state.json"))
        return load(data), state

    def latest(self, warn: Callable[[Problem], None]) -> tuple[dict, dict, dict] | None:
        """The newest whole checkpoint whose best checkpoint is whole too, as (tensors, state,
        best tensors); each damaged one met on the way is passed to ``warn``. None: start afresh."""
        for step in reversed(self.steps()):
            try:
                tensors, state = self.load(step)
                best = tensors if state["best_step"] in (None, step) else self.load(state["best_step"])[0]
            except CorruptCheckpoint as error:
                warn(error.problem)
                continue
            return tensors, state, best
        return None

    def problem(self, step: int, deep: bool, states: StateIndex | None = None) -> Problem | None:
        """Why checkpoint ``step`` is not whole: state.json and the tensors file's size (quick);
        with ``deep``, the safetensors structure and the checksum too. The quick check takes the
        recorded size of a state.json it has read before, unchanged since, from ``states``."""
        folder = os.path.join(self._folder, f"step-{step:08d}")  # strings: table checks every run's
        state_path, tensors_path = os.path.join(folder, STATE), os.path.join(folder, TENSORS)
        try:
            key = states.key(state_path) if states is not None and not deep else None
            expected = states.get(state_path, key) if key else None
            if expected is None:
                with open(state_path, "rb") as handle:
                    state = json.loads(handle.read())
        except FileNotFoundError:
            return Problem(Path(state_path), "missing")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            return Problem(Path(state_path), f"unreadable ({type(error).__name__})")
        if expected is None:
            if not isinstance(state, dict) or not {"step", "tensors_bytes", "tensors_sha256", "best_step"} <= set(state):
                return Problem(Path(state_path), "not a checkpoint state")
            if state.get("format") != FORMAT:
                return Problem(Path(state_path), f"format {state.get('format')}, written by another peftbench version")
            expected = state["tensors_bytes"]
            if key:
                states.put(state_path, key, expected)
        try:
            size = os.stat(tensors_path).st_size
        except FileNotFoundError:
            return Problem(Path(tensors_path), "missing")
        if size != expected:
            cut = " (truncated)" if size < expected else ""
            return Problem(Path(tensors_path), f"{size} bytes where state.json records {expected}{cut}")
        if deep:
            reason = safetensors_problem(tensors_path)
            if reason:
                return Problem(Path(tensors_path), reason)
            with open(tensors_path, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            if digest != state["tensors_sha256"]:
                return Problem(Path(tensors_path), "contents differ from the checksum in state.json")
        return None

    def problems(self, deep: bool = False, states: StateIndex | None = None) -> list[Problem]:
        """Every damaged checkpoint and every leftover temporary folder (``states``: see ``problem``)."""
        try:
            with os.scandir(self._folder) as entries:
                names = sorted(entry.name for entry in entries)
        except (FileNotFoundError, NotADirectoryError):
            return []
        unfinished = [Problem(self.directory / name, "unfinished checkpoint write") for name in names if name.endswith(".tmp")]
        steps = (int(match.group(1)) for match in map(_NAME.match, names) if match)
        return [p for p in (self.problem(step, deep, states) for step in steps) if p] + unfinished

    def prune(self, best: int | None, keep: int | None = None) -> None:
        """Remove all but the newest ``keep`` checkpoints and the ``best`` one."""
        steps = self.steps()
        kept = set(steps[len(steps) - (self.keep if keep is None else keep) :]) | {best}
        for step in steps:
            if step not in kept:
                shutil.rmtree(self.path(step), ignore_errors=True)


class StateIndex:
    """The quick check's memory of a results folder's checkpoint states, kept between commands in
    ``<results>/.checkpoint-states.json``: for each state.json already read and found sound, its
    inode, modification time and size, and the tensors file's size it records. A checkpoint's
    state.json is written once, in a folder renamed into place, so a file with the same inode,
    time and size is the file read before; any change (rewritten, replaced, cut) reads it afresh.
    The tensors file is stat'ed every time, so damage to it is found as without the index. The
    index is a cache: unreadable, it is ignored; where it cannot be written, it is not kept."""

    FILE = ".checkpoint-states.json"

    def __init__(self, root: str | os.PathLike):
        self.path = os.path.join(root, self.FILE)
        self._skip = len(os.path.join(root, ""))  # entries are named relative to the results folder
        try:
            with open(self.path, "rb") as handle:
                known = json.loads(handle.read())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            known = {}
        self.known: dict[str, list[int]] = known if isinstance(known, dict) else {}
        self.seen: dict[str, list[int]] = {}  # what this scan met: the index written back

    @staticmethod
    def key(path: str) -> list[int]:
        stat = os.stat(path)
        return [stat.st_ino, stat.st_mtime_ns, stat.st_size]

    def get(self, path: str, key: list[int]) -> int | None:
        """The tensors size recorded in the state.json at ``path`` (stat ``key``), if read before."""
        name = path[self._skip :]
        entry = self.known.get(name)
        if isinstance(entry, list) and entry[:3] == key and len(entry) == 4 and isinstance(entry[3], int):
            self.seen[name] = entry
            return entry[3]
        return None

    def put(self, path: str, key: list[int], tensors_bytes: int) -> None:
        self.seen[path[self._skip :]] = [*key, tensors_bytes]

    def save(self) -> None:
        """Keep what this scan met (runs removed since drop out), when it differs from the file."""
        if self.seen == self.known:
            return
        from peftbench.atomic import write_bytes_atomic

        try:
            write_bytes_atomic(self.path, json.dumps(self.seen, separators=(",", ":")).encode())
        except OSError:
            pass  # a read-only results folder: the next command reads the states again


class CorruptCheckpoint(Exception):
    def __init__(self, problem: Problem):
        self.problem = problem
        super().__init__(f"{problem.path}: {problem.reason}")
