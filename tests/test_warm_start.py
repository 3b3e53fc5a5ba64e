"""Warm start (``trainer.init_from_task``): the LoRA paper starts its RoBERTa-base MRPC, RTE and
STS-B runs from the LoRA weights trained on MNLI (Hu et al. 2021, §5.1 and Appendix D). Here a
tiny model trains LoRA on RTE, then an MRPC run starts from it: its method weights begin as the RTE
run's (the head is the task's own), its id names the source, and a missing source is refused
before anything loads."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.cli import peftbench

COMMON = ["model=tiny-bert", "method=lora", "data.source=embedded", "trainer.progress=false", "seed=3",
          "trainer.batch_size=8"]  # fmt: skip


def _run_dir(results: Path, task: str) -> Path:
    (found,) = [p for p in results.iterdir() if p.name.startswith(f"{task}.")]
    return found


def test_an_mrpc_run_starts_from_the_rte_runs_lora_weights(tmp_path):
    results = tmp_path / "results"
    source = peftbench("run", *COMMON, "task=rte", "trainer.max_steps=3", "trainer.lr=0.01", f"results_dir={results}", cwd=tmp_path)
    assert source.returncode == 0, source.stderr
    rte = _run_dir(results, "rte")

    # lr 1e-12: the target's weights stay where they started (to 1e-11), so they show what the warm start loaded.
    argv = ["run", *COMMON, "task=mrpc", "trainer.max_steps=1", "trainer.lr=1e-12", f"results_dir={results}"]
    warm = peftbench(*argv, "trainer.init_from_task=rte", cwd=tmp_path)
    assert warm.returncode == 0, warm.stderr
    assert f"warm start: method weights from {rte.name}" in warm.stderr
    mrpc = _run_dir(results, "mrpc")
    record = json.loads((mrpc / "record.json").read_text())
    assert record["init_from"] == rte.name

    loaded, trained = load_file(mrpc / "method.safetensors"), load_file(rte / "method.safetensors")
    lora = [name for name in loaded if "lora" in name]
    assert lora and all(torch.allclose(loaded[name], trained[name], atol=1e-9, rtol=0) for name in lora)
    assert any(trained[name].abs().sum() > 0 for name in lora if "lora_B" in name or "up" in name)

    cold = peftbench(*argv, cwd=tmp_path)  # the same run without the warm start is another run
    assert cold.returncode == 0, cold.stderr
    cold_dir = next(p for p in results.iterdir() if p.name.startswith("mrpc.") and p != mrpc)
    fresh = load_file(cold_dir / "method.safetensors")
    assert not all(torch.allclose(fresh[name], trained[name], atol=1e-3) for name in lora)

    again = peftbench(*argv, "trainer.init_from_task=rte", cwd=tmp_path)  # finished: skipped
    assert again.returncode == 0 and "skip" in again.stderr.lower(), again.stderr


def test_a_missing_source_run_is_refused_before_anything_is_written(tmp_path):
    results = tmp_path / "results"
    done = peftbench("run", *COMMON, "task=mrpc", "trainer.init_from_task=mnli", f"results_dir={results}", cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "trainer.init_from_task=mnli: no complete mnli run of tiny-bert" in line
    assert "task=mnli seed=3" in line and "Traceback" not in done.stderr
    assert not results.exists() or not any(results.iterdir())
