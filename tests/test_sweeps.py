"""Sweeps (``peftbench run -m``) through Hydra's launchers, as a user types them: the basic launcher,
joblib (parallel local jobs) and submitit's local executor (the SLURM launcher's code path); sweep
presets that set ``hydra.sweeper.params``; a sweep run again does nothing; a failing job does not
stop the others and sets the exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from peftbench.launch import jobs
from tests.cli import peftbench

TINY = ["model=tiny-bert", "task=rte", "data.source=embedded", "trainer.max_steps=2", "trainer.progress=false"]


def _records(results: Path) -> list[dict]:
    runs = [p for p in sorted(results.iterdir()) if not p.name.startswith(".")]
    return [json.loads((p / "record.json").read_text()) for p in runs]


def _snapshot(results: Path) -> dict:
    """Every file of every run folder (the sweeps' own folder left out), bytes and modification time."""
    return {
        p.relative_to(results): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in results.rglob("*")
        if p.is_file() and not p.relative_to(results).parts[0].startswith(".")
    }


def _multirun_yaml(results: Path) -> str:
    (sweep,) = (results / ".sweeps").iterdir()
    return (sweep / "multirun.yaml").read_text()


def test_submitit_local_runs_every_job_to_completion(tmp_path):
    done = peftbench("run", "-m", "hydra/launcher=submitit_local", *TINY, "seed=1,2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    results = tmp_path / "results"  # the default results_dir, relative to where the command ran
    assert [(r["seed"], r["status"]) for r in _records(results)] == [(1, "complete"), (2, "complete")]
    assert len(list(results.glob(".sweeps/*/.submitit/*/*_result.pkl"))) == 2  # the jobs went through submitit
    assert "2 trained" in done.stderr and done.stdout.count("complete ") == 2  # the report reads the records back


def test_joblib_runs_jobs_in_parallel_workers(tmp_path):
    done = peftbench("run", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY, "seed=1,2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    records = _records(tmp_path / "results")
    assert [(r["seed"], r["status"]) for r in records] == [(1, "complete"), (2, "complete")]
    launched = _multirun_yaml(tmp_path / "results")
    assert "hydra/launcher: joblib" in launched and "n_jobs: 2" in launched


def test_the_rank_sweep_preset_expands_to_its_grid_and_the_command_line_wins():
    grid = jobs(["experiment=sweep_lora_rank_minilm"], multirun=True)
    assert len(grid) == 16
    points = {tuple(sorted(job)) for job in grid}
    for r in (1, 2, 4, 8):
        for targets in ("[attn.q]", "[attn.q,attn.v]"):
            for seed in (1, 2):
                job = ["experiment=sweep_lora_rank_minilm", f"method.r={r}", f"method.targets={targets}"]
                assert tuple(sorted([*job, f"seed={seed}"])) in points
    assert len(jobs(["experiment=sweep_lora_rank_minilm", "seed=3"], multirun=True)) == 8
    assert len(jobs(["experiment=sweep_lora_rank_minilm", "method.r=1,64"], multirun=True)) == 8


def test_a_sweep_preset_runs_its_grid_and_a_rerun_launches_nothing(tmp_path):
    """The real preset's grid on the tiny model (the preset on MiniLM is the slow test below)."""
    argv = ["run", "-m", "experiment=sweep_lora_rank_minilm", "model=tiny-bert", "trainer.max_steps=2"]
    first = peftbench(*argv, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    results = tmp_path / "results"
    records = _records(results)
    assert len(records) == 16 and all(r["status"] == "complete" for r in records)
    grid = {(r["method_config"]["r"], tuple(r["method_config"]["targets"]), r["seed"]) for r in records}
    assert len(grid) == 16 and {r for r, _, _ in grid} == {1, 2, 4, 8}
    before, sweeps = _snapshot(results), sorted((results / ".sweeps").iterdir())

    again = peftbench(*argv, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("skipped ") == 16 and "0 trained, 16 already complete (skipped)" in again.stderr
    assert _snapshot(results) == before  # no record, weight or history file touched
    assert sorted((results / ".sweeps").iterdir()) == sweeps  # nothing was launched


def test_a_failing_job_does_not_stop_the_sweep_and_sets_the_exit_status(tmp_path):
    """lr=1e30 without clipping diverges (a user error, exit 2 for a single run); the other job still
    runs, and the sweep's report names the failed run and exits 2."""
    done = peftbench("run", "-m", *TINY, "trainer.max_steps=3", "trainer.max_grad_norm=0", "trainer.lr=1e30,1e-3",
                     cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2, done.stderr
    statuses = sorted(r["status"] for r in _records(tmp_path / "results"))
    assert statuses == ["complete", "failed"]
    assert "1 trained" in done.stderr and "1 failed" in done.stderr and "not finite" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_the_minilm_rank_sweep_runs_in_one_command_and_a_rerun_does_nothing(tmp_path):
    """The acceptance sweep as a user types it: 16 MiniLM runs on the embedded RTE slice, two at a time."""
    argv = ["run", "-m", "experiment=sweep_lora_rank_minilm", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    first = peftbench(*argv, cwd=tmp_path, timeout=1800)  # a hang guard, not a timing check
    assert first.returncode == 0, first.stderr
    results = tmp_path / "results"
    records = _records(results)
    assert len(records) == 16 and {r["model"] for r in records} == {"minilm-l6"}
    before = _snapshot(results)
    again = peftbench(*argv, cwd=tmp_path)
    assert again.returncode == 0 and "16 already complete (skipped)" in again.stderr
    assert _snapshot(results) == before


def test_each_job_is_planned_once_and_each_tasks_rows_read_once(tmp_path, monkeypatch, one_thread):
    """The check plans every job before any runs; a job that runs in this process (the basic
    launcher) executes that plan instead of planning again, and the jobs share the task's rows."""
    from peftbench import plan as planning
    from peftbench.cli import main
    from peftbench.tasks import sources

    planned, loaded = [], []
    make_plan, load_task = planning.Planner._plan, sources.load_task
    monkeypatch.setattr(planning.Planner, "_plan", lambda self, cfg, config: planned.append(config["seed"]) or make_plan(self, cfg, config))
    monkeypatch.setattr(sources, "load_task", lambda *args: loaded.append(args[0].name) or load_task(*args))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        main(["run", "-m", *TINY, "trainer.max_steps=1", "seed=1,2", f"results_dir={tmp_path / 'results'}"])
    assert done.value.code == 0
    assert sorted(planned) == [1, 2] and loaded == ["rte"]
    assert [r["status"] for r in _records(tmp_path / "results")] == ["complete", "complete"]
