"""The quick checkpoint check of ``peftbench table`` (``doctor.records``) and its index of
checkpoint states (``train/checkpoint.py: StateIndex``): each state.json is read once and then
taken from the index while it is unchanged, and damage found after it was indexed is still found.
Checkpoints here are hand-built: a state.json as ``Checkpoints.save`` writes it and a tensors file
of the size it records (the quick check compares the two; nothing reads the tensors)."""

from __future__ import annotations

import json
import os
import types

import pytest

from peftbench.doctor import records
from peftbench.results.record import run_dirs
from peftbench.train import checkpoint
from peftbench.train.checkpoint import FORMAT, StateIndex


def _checkpoint(run, step=2, size=64):
    folder = run / "checkpoints" / "train" / f"step-{step:08d}"
    folder.mkdir(parents=True)
    _state(folder, size)
    (folder / "tensors.safetensors").write_bytes(b"\0" * size)
    return folder


def _state(folder, size):
    """A new state.json, renamed into place as the checkpoint writer's are (a new file)."""
    state = {"step": 2, "best_step": 2, "tensors_bytes": size, "tensors_sha256": "0" * 64, "format": FORMAT}
    (folder / "new-state").write_text(json.dumps(state))
    os.replace(folder / "new-state", folder / "state.json")


def _scan(results):
    warned = []
    list(records(results, warn=warned.append))
    return [(problem.path, problem.reason) for problem in warned]


@pytest.fixture
def state_reads(monkeypatch):
    """How many state.json documents the checkpoint check parses."""
    parsed = []

    def loads(raw):
        if b'"tensors_bytes"' in raw:
            parsed.append(raw)
        return json.loads(raw)

    monkeypatch.setattr(checkpoint, "json", types.SimpleNamespace(loads=loads, dumps=json.dumps, JSONDecodeError=json.JSONDecodeError))
    return parsed


def test_each_state_is_read_once_then_taken_from_the_index(tmp_path, state_reads):
    results = tmp_path / "results"
    for name in ("run-a", "run-b"):
        _checkpoint(results / name)

    assert _scan(results) == [] and len(state_reads) == 2
    index = json.loads((results / StateIndex.FILE).read_text())
    assert sorted(index) == [f"{name}/checkpoints/train/step-00000002/state.json" for name in ("run-a", "run-b")]
    assert all(entry[3] == 64 for entry in index.values())  # the tensors size each state records
    assert [os.path.basename(folder) for folder in run_dirs(results)] == ["run-a", "run-b"]  # the index is no run

    assert _scan(results) == [] and len(state_reads) == 2  # nothing parsed again

    (results / "run-b" / "checkpoints" / "train" / "step-00000002" / "tensors.safetensors").unlink()
    (results / "run-b" / "checkpoints" / "train" / "step-00000002" / "state.json").unlink()
    os.rmdir(results / "run-b" / "checkpoints" / "train" / "step-00000002")
    _scan(results)
    assert list(json.loads((results / StateIndex.FILE).read_text())) == ["run-a/checkpoints/train/step-00000002/state.json"]


def test_damage_after_indexing_is_found_as_without_the_index(tmp_path, state_reads):
    results = tmp_path / "results"
    cut = _checkpoint(results / "run-a") / "tensors.safetensors"
    rewritten = _checkpoint(results / "run-b")
    assert _scan(results) == []

    cut.write_bytes(b"\0" * 40)  # the tensors file is stat'ed on every scan
    _state(rewritten, 80)  # a new state.json is read afresh
    assert _scan(results) == [
        (cut, "40 bytes where state.json records 64 (truncated)"),
        (rewritten / "tensors.safetensors", "64 bytes where state.json records 80 (truncated)"),
    ]
    assert len(state_reads) == 3


def test_a_damaged_index_is_ignored_and_rewritten(tmp_path, state_reads):
    results = tmp_path / "results"
    _checkpoint(results / "run-a")
    (results / StateIndex.FILE).write_text('{"run-a/checkpoints/train/step-00000002/state.json": [1, 2')
    assert _scan(results) == [] and len(state_reads) == 1
    assert len(json.loads((results / StateIndex.FILE).read_text())) == 1
