"""Crash safety: a run killed with SIGKILL at random points and started again ends exactly as an
uninterrupted one; two processes on one run never both train it."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.cli import offline_env, peftbench

# Dropout on, several epochs, a checkpoint after every step: kills land mid-epoch and between.
RUN = ["run", "model=tiny-bert", "task=rte", "data.source=embedded", "trainer.progress=false", "method=lora",
       "trainer.epochs=4", "trainer.batch_size=4", "trainer.checkpoint_every_steps=1", "trainer.eval_every_steps=5"]  # fmt: skip


def _outcome(results):
    """What must not depend on interruptions: the record's metrics, the weights, the history."""
    from safetensors.torch import load_file

    (run_dir,) = [p for p in results.iterdir() if not p.name.startswith(".")]
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "complete"
    weights = load_file(str(run_dir / "method.safetensors"))
    history = [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"} for line in (run_dir / "history.jsonl").read_text().splitlines()]
    return run_dir, record, weights, history


def _kill_during_training(argv, results, rng, cwd, phase="train"):
    """Start the run, wait until it has written a new checkpoint of ``phase``, kill -9 it a random
    moment later."""
    pattern = f"*/checkpoints/{phase}/step-*"
    before = set(results.glob(pattern))
    process = subprocess.Popen([sys.executable, "-m", "peftbench", *argv], cwd=cwd, env=offline_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not set(results.glob(pattern)) - before and process.poll() is None:
        assert time.monotonic() < deadline, "the run never checkpointed"
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.3))
    process.send_signal(signal.SIGKILL)
    process.wait()
    return process.returncode


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The run as it ends when nothing stops it (made once: every killer seed compares with it)."""
    root = tmp_path_factory.mktemp("reference")
    done = peftbench(*RUN, f"results_dir={root / 'results'}", cwd=root)
    assert done.returncode == 0, done.stderr
    return _outcome(root / "results")


# One kill schedule in `make test`; two more in `make test-slow` (each is a minute of training).
@pytest.mark.parametrize("killer_seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path, killer_seed, uninterrupted):
    _, expected_record, expected_weights, expected_history = uninterrupted

    results = tmp_path / "killed"
    argv = [*RUN, f"results_dir={results}"]
    rng = random.Random(killer_seed)
    killed = [_kill_during_training(argv, results, rng, tmp_path) for _ in range(2)]
    rerun = peftbench(*argv, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    run_dir, record, weights, history = _outcome(results)
    if -signal.SIGKILL in killed:  # (a kill that came after the run finished resumes nothing)
        assert "resumed from" in rerun.stderr or record["cost"]["resumed_from_step"] is not None
    assert record["metrics"] == expected_record["metrics"]
    assert record["params"] == expected_record["params"]
    assert weights.keys() == expected_weights.keys()
    for name in weights:
        assert weights[name].equal(expected_weights[name]), name
    assert history == expected_history
    steps = [int(p.name.split("-")[1]) for p in (run_dir / "checkpoints" / "train").iterdir()]
    assert len(steps) == 1, "a complete run keeps only its best checkpoint"
    assert not list(run_dir.rglob("*.tmp"))


@pytest.mark.slow  # a minute: LT-SFT's two phases, killed and resumed
def test_lt_sft_killed_in_its_search_phase_resumes_to_the_same_mask_and_weights(tmp_path):
    """sparse (LT-SFT) trains twice in one run: a kill during the dense search resumes the search
    from its own checkpoints, and the mask and final weights come out the same."""
    sparse = [*RUN, "method=sparse", "method.k=300", "method.density=null", "trainer.epochs=2", "trainer.lr=1e-3"]
    reference = tmp_path / "reference"
    assert peftbench(*sparse, f"results_dir={reference}", cwd=tmp_path).returncode == 0
    _, expected_record, expected_weights, expected_history = _outcome(reference)

    results = tmp_path / "killed"
    argv = [*sparse, f"results_dir={results}"]
    _kill_during_training(argv, results, random.Random(0), tmp_path, phase="search")
    rerun = peftbench(*argv, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    run_dir, record, weights, history = _outcome(results)
    assert "checkpoints/search/step-" in rerun.stderr  # it resumed the search
    assert record["metrics"] == expected_record["metrics"] and history == expected_history
    assert weights.keys() == expected_weights.keys()
    assert all(weights[name].equal(expected_weights[name]) for name in weights)  # mask indices included
    assert not (run_dir / "checkpoints" / "search").exists()


def test_two_processes_on_one_run_train_it_once(tmp_path):
    results = tmp_path / "results"
    argv = [sys.executable, "-m", "peftbench", *RUN, f"results_dir={results}"]
    first, second = (subprocess.Popen(argv, cwd=tmp_path, env=offline_env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for _ in range(2))  # fmt: skip
    outcomes = [(p.wait(timeout=300), p.stderr.read()) for p in (first, second)]
    trained = [err for code, err in outcomes if "trainable of" in err]
    assert len(trained) == 1, outcomes
    others = [(code, err) for code, err in outcomes if "trainable of" not in err]
    (code, err), = others
    # The other one either found the lock held, or came after the run was complete.
    assert (code == 3 and "busy: run " in err and "pid " in err) or (code == 0 and "already complete" in err), (code, err)
    _, record, _, history = _outcome(results)
    assert len(history) == len({(h["phase"], h["step"]) for h in history})


def test_wait_waits_for_the_holder_then_skips_the_complete_run(tmp_path):
    results = tmp_path / "results"
    argv = [sys.executable, "-m", "peftbench", *RUN, f"results_dir={results}"]
    first = subprocess.Popen(argv, cwd=tmp_path, env=offline_env(), stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(results.glob("*/checkpoints/train/step-*")):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.02)
    second = peftbench("run", "--wait", *RUN[1:], f"results_dir={results}", cwd=tmp_path)
    assert first.wait(timeout=300) == 0
    assert second.returncode == 0 and "already complete" in second.stderr, second.stderr


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    from peftbench.results.lock import lock_holder

    results = tmp_path / "results"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    plan = peftbench(*RUN, f"results_dir={results}", "trainer.epochs=1", cwd=tmp_path)  # learn the run folder
    assert plan.returncode == 0
    (run_dir,) = list(results.iterdir())
    (run_dir / "record.json").unlink()  # no longer complete
    (run_dir / ".lock").write_text(json.dumps({"pid": pid, "host": "here", "since": "earlier"}))
    assert lock_holder(run_dir) is None  # a file without a live flock holds nothing
    again = peftbench(*RUN, f"results_dir={results}", "trainer.epochs=1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"stale lock of {run_dir.name} (pid {pid}" in again.stderr
    assert json.loads((run_dir / "record.json").read_text())["status"] == "complete"
