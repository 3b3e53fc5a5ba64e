"""Runs over several processes, as a user launches them: ``torchrun`` (gloo on CPU) in a subprocess,
offline, and what the tests read back from them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from tests.cli import offline_env

# No dropout anywhere (LoRA's and the backbone's), so one process and two draw nothing different.
# 41 rows in batches of 5: shares of 3 and 2 rows, and each epoch's last batch of 1 row leaves
# rank 1 an empty share (it joins with weight 0).
EXACT = ["model=tiny-bert", "method=lora", "task=rte", "data.source=embedded", "method.dropout=0",
         "+model.architecture.hidden_dropout_prob=0", "+model.architecture.attention_probs_dropout_prob=0",
         "data.max_train_samples=41", "data.max_eval_samples=31", "trainer.batch_size=5", "trainer.epochs=3",
         "trainer.progress=false"]  # fmt: skip
# FSDP on a decoder (rank classification: the loss averages over rows, as the shares are weighted).
FSDP = ["model=tiny-llama", "method=lora", "task=rte", "data.source=embedded", "method.dropout=0",
        "data.max_train_samples=41", "data.max_eval_samples=21", "trainer.batch_size=5", "trainer.epochs=2",
        "trainer.progress=false"]  # fmt: skip
EARLY = "trainer.checkpoint_every_steps=3"  # a first checkpoint long before the end: a kill lands mid-run


def torchrun(*args: str, cwd, processes: int = 2, wait: bool = True):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "peftbench", "run", *args]  # fmt: skip
    if not wait:
        return subprocess.Popen(command, cwd=cwd, env=offline_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.run(command, cwd=cwd, env=offline_env(), capture_output=True, text=True, timeout=1800)


def outcome(results):
    """The one run folder's record, method weights and history (without times)."""
    from safetensors.torch import load_file

    (run_dir,) = [p for p in results.iterdir() if not p.name.startswith(".")]
    record = json.loads((run_dir / "record.json").read_text())
    history = [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"}
               for line in (run_dir / "history.jsonl").read_text().splitlines()]  # fmt: skip
    return run_dir, record, load_file(str(run_dir / "method.safetensors")), history


def assert_same_training(one, other, atol: float) -> None:
    """Same run id, steps, metrics (every evaluation) and, within float reduction order, weights."""
    import torch

    (dir_a, a, weights_a, history_a), (dir_b, b, weights_b, history_b) = one, other
    assert a["status"] == b["status"] == "complete"
    assert dir_a.name == dir_b.name  # the world size does not enter the run id
    assert a["cost"]["steps"] == b["cost"]["steps"]
    assert a["metrics"] == b["metrics"]
    assert [h["metrics"] for h in history_a] == [h["metrics"] for h in history_b]
    assert sorted(weights_a) == sorted(weights_b)
    for name in weights_a:
        torch.testing.assert_close(weights_b[name], weights_a[name], atol=atol, rtol=0)


def kill_rank(process, results, rank: int) -> None:
    """Wait until the run has checkpointed, then SIGKILL the worker of ``rank``; torchrun tears
    the other down."""
    import psutil

    deadline = time.monotonic() + 180
    while not list(results.glob("*/checkpoints/train/step-*")):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended or never checkpointed"
        time.sleep(0.02)
    workers = [p for p in psutil.Process(process.pid).children(recursive=True) if p.environ().get("RANK") == str(rank)]
    workers[0].send_signal(signal.SIGKILL)
    process.wait(timeout=120)
    assert process.returncode != 0
