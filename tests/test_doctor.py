"""Damaged records and checkpoints never break the aggregate: ``table`` and ``list runs`` warn once
per bad path and go on; ``doctor`` lists what is wrong and ``--fix`` cures it, leaving good runs
byte for byte as they were."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli import peftbench

RUN = ["run", "model=tiny-bert", "task=rte", "data.source=embedded", "trainer.progress=false", "method=lora",
       "trainer.epochs=2", "trainer.batch_size=8", "trainer.checkpoint_every_steps=2", "trainer.keep_checkpoints=2"]  # fmt: skip


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, list[Path]]:
    """A results folder with three complete runs (seeds 0–2), made once."""
    root = tmp_path_factory.mktemp("finished")
    results = root / "results"
    done = peftbench("run", "-m", *RUN[1:], "seed=0,1,2", f"results_dir={results}", cwd=root)
    assert done.returncode == 0, done.stderr
    return results, sorted(p for p in results.iterdir() if not p.name.startswith("."))


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _damage(results: Path, runs: list[Path]) -> dict[str, Path]:
    """Damage copies of the finished runs in several ways; returns the bad path of each."""
    def clone(run, name):
        target = results / f"{run.name}.{name}"
        shutil.copytree(run, target)
        return target

    bad = {}
    truncated = clone(runs[0], "truncated")
    text = (truncated / "record.json").read_text()
    (truncated / "record.json").write_text(text[: len(text) // 2])
    bad["truncated record"] = truncated / "record.json"
    empty = clone(runs[0], "empty")
    (empty / "record.json").write_text("")
    bad["empty record"] = empty / "record.json"
    invalid = clone(runs[0], "invalid")
    (invalid / "record.json").write_text(json.dumps({"status": "complete"}))
    bad["invalid record"] = invalid / "record.json"
    # A run killed mid-training: record says running, a checkpoint cut short, another one's state
    # garbled, and a temporary file of an unfinished write.
    killed = clone(runs[1], "killed")
    record = json.loads((killed / "record.json").read_text())
    record.update(status="running", metrics={}, finished=None)
    (killed / "record.json").write_text(json.dumps(record))
    checkpoints = killed / "checkpoints" / "train"
    (best,) = checkpoints.iterdir()
    shutil.copytree(best, checkpoints / "step-00000099")
    shutil.copytree(best, checkpoints / "step-00000098")
    tensors = checkpoints / "step-00000099" / "tensors.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-100])
    bad["truncated checkpoint"] = tensors
    (checkpoints / "step-00000098" / "state.json").write_text("{not json")
    bad["garbled checkpoint state"] = checkpoints / "step-00000098" / "state.json"
    (killed / ".record.json.0123.tmp").write_text('{"half": ')
    return bad


def test_table_and_list_warn_once_per_bad_path_doctor_fixes_without_touching_good_runs(finished, tmp_path):
    source, runs = finished
    results = tmp_path / "results"
    shutil.copytree(source, results)
    runs = sorted(p for p in results.iterdir() if not p.name.startswith("."))
    good = {run.name: _snapshot(run) for run in runs}
    bad = _damage(results, runs)

    for argv in (["table", "lora_table2", "--model", "tiny-bert"], ["list", "runs"]):
        shown = peftbench(*argv, "--results", str(results), cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        warnings = [line for line in shown.stderr.splitlines() if line.startswith("warning:")]
        for name, path in bad.items():
            assert sum(str(path) in line for line in warnings) == 1, (name, warnings)
        assert len(warnings) == len(bad), warnings
    listed = peftbench("list", "runs", "--results", str(results), cwd=tmp_path).stdout
    assert all(run.name in listed for run in runs)
    assert "running" in listed  # the killed run's record is readable: it is listed as what it says

    found = peftbench("doctor", "--results", str(results), cwd=tmp_path)
    assert found.returncode == 1
    for kind in ("corrupt", "stale", "damaged checkpoint", "leftover"):
        assert kind in found.stdout, (kind, found.stdout)
    assert not any(run.name + ":" in found.stdout or f"{run.name}/" in found.stdout for run in runs), found.stdout

    fixed = peftbench("doctor", "--fix", "--results", str(results), cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    again = peftbench("doctor", "--results", str(results), cwd=tmp_path)
    assert again.returncode == 0 and "corrupt" not in again.stdout and "damaged" not in again.stdout, again.stdout
    for argv in (["table", "lora_table2", "--model", "tiny-bert"], ["list", "runs"]):
        shown = peftbench(*argv, "--results", str(results), cwd=tmp_path)
        assert shown.returncode == 0 and "warning" not in shown.stderr, shown.stderr
    for run in runs:
        assert _snapshot(run) == good[run.name], f"doctor touched the good run {run.name}"
    trashed = sorted(p.name for p in (results / ".trash").iterdir())
    assert len(trashed) == 3  # the three corrupt records: moved, not deleted
    killed = next(p for p in results.iterdir() if p.name.endswith(".killed"))
    assert json.loads((killed / "record.json").read_text())["status"] == "failed"


def test_deep_check_finds_a_flipped_byte(finished, tmp_path):
    source, runs = finished
    run = tmp_path / runs[2].name
    shutil.copytree(runs[2], run)
    (best,) = (run / "checkpoints" / "train").iterdir()
    tensors = best / "tensors.safetensors"
    data = bytearray(tensors.read_bytes())
    data[-1] ^= 0xFF
    tensors.write_bytes(bytes(data))
    shallow = peftbench("doctor", "--results", str(tmp_path), cwd=tmp_path)
    assert "damaged" not in shallow.stdout  # the structure is whole
    deep = peftbench("doctor", "--deep", "--results", str(tmp_path), cwd=tmp_path)
    assert "damaged checkpoint" in deep.stdout and "checksum" in deep.stdout
