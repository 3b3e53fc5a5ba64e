"""W&B and MLflow through ``trainer.log_with`` (``train/tracking.py``), each read back with the
tracker's own reader: the loss, the learning rate, the evaluation metric, a cost figure and the
config's hyperparameters are there, and no socket left the machine (the trackers are offline /
local by default). The fit is test_trainer.py's tiny BERT with LoRA on 8 rows, in this process
(the TensorBoard test in test_training_logs.py runs the whole command); Aim is not installable
beside our pins (see the README), so only its refusal is tested there."""

import json
import os
import socket
import subprocess
import sys

import pytest

from peftbench.train.tracking import Tracking
from tests.test_trainer import _Scripted, _cfg, _fit

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = {"model": {"name": "tiny-bert"}, "trainer": {"lr": 1e-2, "log_with": None, "max_steps": None}}


@pytest.fixture
def connections(monkeypatch):
    """Every host name looked up and every address a Python socket connects to while the test
    runs (requests, urllib3 and asyncio all go through ``socket.getaddrinfo`` and
    ``socket.socket.connect``), as (family or "lookup", address)."""
    seen = []
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def recorded_connect(sock, address):
        seen.append((sock.family, address))
        return connect(sock, address)

    def recorded_lookup(host, *args, **kwargs):
        seen.append(("lookup", host))
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", recorded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", recorded_lookup)
    return seen


def _only_local(connections) -> bool:
    """Unix sockets only (W&B's SDK talks to its own wandb-core process through one)."""
    return all(family == socket.AF_UNIX for family, _ in connections)


def _tracked_fit(log_with, run_dir):
    config = {**CONFIG, "trainer": {**CONFIG["trainer"], "log_with": log_with}}
    # 8 rows, batch 2: 4 steps; a training line every 2 steps, an evaluation at steps 2 and 4
    cfg = _cfg(epochs=1, batch_size=2, log_every=2, eval_every_steps=2)
    result, _ = _fit(cfg, _Scripted([0.5, 0.75]), tracking=Tracking(log_with, run_dir, "run-1", config))
    return result


def test_wandb_logs_offline_into_the_run_folder(tmp_path, monkeypatch, connections):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))  # wandb-core's own debug log
    result = _tracked_fit("wandb", tmp_path / "run")

    (offline_run,) = (tmp_path / "run" / "tracker" / "wandb").glob("offline-run-*")
    # wandb's own reader of a run's transaction log (run-<id>.wandb), one JSON record a line
    shown = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(offline_run)],
                           capture_output=True, text=True, timeout=120, env={**os.environ, "WANDB_MODE": "offline"})  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    records = [json.loads(line) for line in shown.stdout.splitlines()]
    (run,) = [record["run"] for record in records if record["type"] == "run"]
    assert run["display_name"] == "run-1" and run["project"] == "peftbench"
    assert run["telemetry"]["feature"]["offline"] is True
    config = {key: value for record in records if record["type"] == "config" for key, value in record["config"]["update"].items()}
    assert config["trainer.lr"] == pytest.approx(1e-2) and config["model.name"] == "tiny-bert"
    history = [record["history"]["item"] for record in records if record["type"] == "history"]
    losses = [(item["_step"], item["train/lr"]) for item in history if "train/loss" in item]
    assert losses == [(2, pytest.approx(5e-3)), (4, 0.0)]  # linear decay from 1e-2 over 4 steps
    accuracy = [(item["_step"], item["eval/validation/accuracy"]) for item in history if "eval/validation/accuracy" in item]
    assert accuracy == [(2, 0.5), (4, 0.75)]
    (memory,) = [item["cost/avg_memory_mb"] for item in history if "cost/avg_memory_mb" in item]
    assert memory == pytest.approx(result.cost["avg_memory_mb"])
    assert _only_local(connections), connections


def test_mlflow_logs_to_a_local_store_in_the_run_folder(tmp_path, monkeypatch, connections):
    from mlflow.tracking import MlflowClient

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.delenv(name, raising=False)  # the local file store is the tracker's default
    result = _tracked_fit("mlflow", tmp_path / "run")

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads its file store only when asked to

    client = MlflowClient(tracking_uri=(tmp_path / "run" / "tracker" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("peftbench")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "run-1" and run.info.status == "FINISHED"
    assert float(run.data.params["trainer.lr"]) == pytest.approx(1e-2)
    assert run.data.params["model.name"] == "tiny-bert"

    def history(key):
        return [(metric.step, metric.value) for metric in client.get_metric_history(run.info.run_id, key)]

    assert [step for step, _ in history("train/loss")] == [2, 4]
    assert history("train/lr") == [(2, pytest.approx(5e-3)), (4, 0.0)]
    assert history("eval/validation/accuracy") == [(2, 0.5), (4, 0.75)]
    assert history("cost/avg_memory_mb") == [(4, pytest.approx(result.cost["avg_memory_mb"]))]
    assert connections == []
