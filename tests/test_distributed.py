"""One run over two processes (``torchrun``, gloo on CPU): every rank refuses bad input before the
process group, rank 0 says so once; rank 0 alone holds the lock (a busy run is busy on every rank);
the ranks train the global batch, so with dropout off the run ends as the one-process run does
(up to the order of float additions), evaluates each row once and writes one record; a finished
run is not trained again on any rank; a run whose rank is killed with SIGKILL resumes from its
last checkpoint. FSDP, submitit and the real-weights check: ``test_distributed_launchers.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.cli import offline_env, peftbench
from tests.distributed_runs import EARLY, EXACT, assert_same_training, kill_rank, outcome, torchrun


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """The EXACT run in one process (the reference of every comparison with it)."""
    root = tmp_path_factory.mktemp("alone")
    done = peftbench("run", *EXACT, f"results_dir={root / 'results'}", cwd=root)
    assert done.returncode == 0, done.stderr
    return outcome(root / "results")


def test_bad_input_is_refused_by_every_rank_before_the_group_and_said_once(tmp_path):
    """Both ranks exit 2 without a rendezvous (no peer is listening on the port), rank 0 prints
    the one line, nothing is written."""
    env = {**offline_env(), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "9"}
    ranks = [subprocess.Popen([sys.executable, "-m", "peftbench", "run", *EXACT, "trainer.batch_size=0",
                               f"results_dir={tmp_path / 'results'}"], cwd=tmp_path,
                              env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in (0, 1)]  # fmt: skip
    said = [process.communicate(timeout=120) for process in ranks]
    assert [process.returncode for process in ranks] == [2, 2]
    assert said[0][1].strip() == "error: trainer.batch_size must be ≥ 1, got 0"
    assert said[1][1].strip() == ""
    assert not (tmp_path / "results").exists()


def test_two_processes_train_the_global_batch_as_one_does(tmp_path, alone):
    done = torchrun(*EXACT, f"results_dir={tmp_path / 'results'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = outcome(tmp_path / "results")
    assert_same_training(alone, run, atol=1e-6)
    cost = run[1]["cost"]
    assert (cost["world_size"], cost["per_rank_batch"], cost["strategy"], cost["devices"]) == (2, 3, "ddp", ["cpu", "cpu"])
    assert alone[1]["cost"]["samples"] == cost["samples"]  # every row once per epoch, on one rank
    assert done.stdout.count("record:") == 1  # one summary, from rank 0
    again = torchrun(*EXACT, f"results_dir={tmp_path / 'results'}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("skipped") == 1 and "resumed" not in again.stderr
    assert json.loads((run[0] / "record.json").read_text()) == run[1]  # not retrained, not rewritten


def test_a_run_another_process_trains_is_busy_on_every_rank(tmp_path, alone):
    """The issue's failure (rank 1 took the lock, rank 0 said busy): now a run is busy only when
    another command holds it, and then every rank exits 3, rank 0 saying who holds it."""
    from peftbench.results.lock import run_lock

    run_dir = tmp_path / "results" / alone[0].name
    with run_lock(run_dir):
        # the two ranks started as torchrun starts them, each watched to its own exit (torchrun
        # itself stops the other ranks once one has exited, so its account of them is a race)
        said = _ranks(*EXACT, f"results_dir={tmp_path / 'results'}", cwd=tmp_path)
        # under torchrun itself: the first rank to exit says 3, and no rank aborts (SIGABRT) by
        # exiting inside the process group
        done = torchrun(*EXACT, f"results_dir={tmp_path / 'results'}", cwd=tmp_path)
    assert [status for status, _ in said] == [3, 3]  # both ranks exit 3
    stderr = said[0][1] + said[1][1]
    assert stderr.count("busy: run ") == 1 and f"pid {os.getpid()}" in said[0][1]
    assert done.returncode != 0 and done.stderr.count("busy: run ") == 1
    assert "exitcode  : 3" in done.stderr and "SIGABRT" not in done.stderr, done.stderr[-3000:]
    assert not (run_dir / "record.json").exists()


def _ranks(*args: str, cwd) -> list[tuple[int, str]]:
    """A 2-process run with the launcher's environment (a free rendezvous port on this machine):
    each rank's exit status and stderr."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**offline_env(), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    ranks = [subprocess.Popen([sys.executable, "-m", "peftbench", "run", *args], cwd=cwd,
                              env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in (0, 1)]  # fmt: skip
    said = [process.communicate(timeout=300)[1] for process in ranks]
    return [(process.returncode, stderr) for process, stderr in zip(ranks, said)]


def test_a_killed_rank_resumes_from_the_last_checkpoint(tmp_path, alone):
    """Rank 0 (the lock holder and writer) is killed after a checkpoint; the rerun resumes and
    ends where the uninterrupted run ends."""
    results = tmp_path / "results"
    kill_rank(torchrun(*EXACT, EARLY, f"results_dir={results}", cwd=tmp_path, wait=False), results, rank=0)
    (run_dir,) = [p for p in results.iterdir() if not p.name.startswith(".")]
    assert json.loads((run_dir / "record.json").read_text())["status"] == "running"
    rerun = torchrun(*EXACT, f"results_dir={results}", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed from" in rerun.stderr
    run = outcome(results)
    assert run[1]["cost"]["resumed_from_step"] > 0
    assert_same_training(alone, run, atol=1e-6)


def test_world_comes_from_the_launcher(monkeypatch):
    from peftbench.train.distributed import world
    from peftbench.train.sharding import RankShare, per_rank_batch

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert (world().rank, world().size, world().main) == (0, 1, True)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    w = world()
    assert (w.rank, w.size, w.local_rank, w.main, w.distributed) == (1, 2, 1, False, True)
    assert per_rank_batch(5, w) == 3
    share = RankShare(lambda rows: rows, w)
    assert share(list("abcde")) == (list("de"), 2 * 2 / 5, 5)  # rank 0 takes a, b, c
    assert share(list("a")) == (list("a"), 0.0, 1)  # an empty share: a row that weighs nothing


def test_accelerate_launch_trains_as_torchrun_does(tmp_path, alone):
    """The issue's second launcher: ``accelerate launch --multi_gpu`` (on CPU, gloo processes)."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "peftbench", "run", *EXACT, f"results_dir={tmp_path / 'results'}"]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, env=offline_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = outcome(tmp_path / "results")
    assert_same_training(alone, run, atol=1e-6)
    assert (run[1]["cost"]["world_size"], run[1]["cost"]["strategy"]) == (2, "ddp")


def test_accelerates_own_fsdp_is_refused_before_anything_loads(tmp_path):
    """accelerate's FSDP plugin falls back to DDP on CPU; peftbench shards the model itself."""
    done = subprocess.run([sys.executable, "-m", "peftbench", "run", *EXACT, f"results_dir={tmp_path / 'results'}"],
                          cwd=tmp_path, env={**offline_env(), "ACCELERATE_USE_FSDP": "true"},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: peftbench shards the model itself: launch with `accelerate launch --multi_gpu …` "
        "and pass trainer.strategy=fsdp instead of --use_fsdp"
    ]
    assert not (tmp_path / "results").exists()
