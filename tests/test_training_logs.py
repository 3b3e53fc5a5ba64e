"""What training reports while it runs: plain lines in a log, the bar on a terminal, an experiment
tracker (TensorBoard, read back with TensorBoard's own reader), and the average memory beside the
peak. The fits are test_trainer.py's: a tiny BERT with LoRA on 8 rows."""

import io
import json
import re
import sys

import pytest

from peftbench.cli import main
from peftbench.train.tracking import hyperparameters
from tests.cli import peftbench
from tests.test_trainer import _Scripted, _cfg, _fit

pytestmark = pytest.mark.usefixtures("one_thread")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_a_plain_line_per_log_every_steps(capsys):
    # 8 rows, batch 2: 4 steps; the learning rate decays linearly from 1e-2 with no warm-up steps
    # (round(0.06 · 4) = 0): 1e-2 · (4 - 2) / 4 = 5e-3 after step 2, 0 after step 4.
    _fit(_cfg(epochs=1, batch_size=2, progress=True, log_every=2), _Scripted([0.5]))
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) == 3, err
    assert re.fullmatch(r"step 2/4  loss \d+\.\d{4}  lr 5\.000e-03  \d+\.\d samples/s", lines[0]), lines[0]
    assert re.fullmatch(r"step 4/4  loss \d+\.\d{4}  lr 0\.000e\+00  \d+\.\d samples/s", lines[1]), lines[1]
    assert lines[2] == "eval step 4/4  epoch 1  accuracy 0.5000"


def test_a_terminal_gets_the_bar(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _fit(_cfg(epochs=1, batch_size=2, progress=True, log_every=2), _Scripted([0.5]))
    shown = terminal.getvalue()
    assert "\r" in shown and "train: 100%" in shown and "4/4" in shown
    assert "accuracy=0.5000" in shown
    assert "step 2/4  loss" not in shown


def test_progress_false_writes_nothing(capsys):
    _fit(_cfg(epochs=1, batch_size=2, progress=False, log_every=2), _Scripted([0.5]))
    assert capsys.readouterr().err == ""


def test_the_average_memory_is_recorded_beside_the_peak():
    result, _ = _fit(_cfg(epochs=1, batch_size=2), _Scripted([0.5]))
    # CPU: the mean resident set size after each of the 4 steps, at most the process's peak
    assert 0 < result.cost["avg_memory_mb"] <= result.cost["peak_memory_mb"]


def test_the_config_is_flattened_to_values_every_tracker_takes():
    config = {"trainer": {"lr": 1e-3, "log_with": "tensorboard", "max_steps": None}, "method": {"targets": ["attn.q"]}}
    assert hyperparameters(config) == {
        "trainer.lr": 1e-3, "trainer.log_with": "tensorboard", "trainer.max_steps": "null", "method.targets": '["attn.q"]',
    }  # fmt: skip


def test_a_run_with_tensorboard_writes_events_tensorboard_reads(tmp_path):
    """Through the real command, whose stderr is a pipe: log lines, a tracker folder, the record's
    new figures, and nothing written beside the results (no Hydra log file in the working folder)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    done = peftbench("run", "model=tiny-bert", "task=rte", "data.source=embedded", "trainer.max_steps=4",
                     "trainer.log_every=2", "trainer.eval_every_steps=2", "trainer.log_with=tensorboard",
                     "results_dir=results", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "step 2/4  loss" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]
    (run_dir,) = (tmp_path / "results").iterdir()
    record = json.loads((run_dir / "record.json").read_text())
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]

    events = EventAccumulator(str(run_dir / "tracker"))
    events.Reload()
    assert [event.step for event in events.Scalars("train/loss")] == [2, 4]
    assert [event.step for event in events.Scalars("train/lr")] == [2, 4]
    accuracy = [(event.step, event.value) for event in events.Scalars("eval/validation/accuracy")]
    assert accuracy == [(entry["step"], pytest.approx(entry["metrics"]["validation"]["accuracy"])) for entry in history]
    assert [event.value for event in events.Scalars("cost/avg_memory_mb")] == [pytest.approx(record["cost"]["avg_memory_mb"])]

    (session,) = [folder for folder in (run_dir / "tracker").iterdir() if folder.is_dir()
                  and any(f.name.startswith("events.") for f in folder.iterdir())]  # fmt: skip
    hparams = EventAccumulator(str(session))
    hparams.Reload()
    start = plugin_data_pb2.HParamsPluginData.FromString(hparams.PluginTagToContent("hparams")["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["trainer.lr"].number_value == pytest.approx(record["config"]["trainer"]["lr"])
    assert start.session_start_info.hparams["model.name"].string_value == "tiny-bert"

    assert record["cost"]["adapter_file_bytes"] == (run_dir / "method.safetensors").stat().st_size
    assert 0 < record["cost"]["avg_memory_mb"] <= record["cost"]["peak_memory_mb"]


@pytest.mark.parametrize(
    "log_with, mentions",
    [("comet", "trainer.log_with must be one of none, tensorboard, wandb, mlflow, aim, got 'comet'"),
     ("wandb", "trainer.log_with=wandb needs the wandb package, which is not installed; `pip install wandb`"),
     ("mlflow", "trainer.log_with=mlflow needs the mlflow package, which is not installed; `pip install mlflow`"),
     ("aim", "trainer.log_with=aim needs the aim package, which is not installed; `pip install aim`")],
)  # fmt: skip
def test_a_tracker_that_is_unknown_or_not_installed_is_one_line_before_anything_loads(
    tmp_path, monkeypatch, capsys, log_with, mentions
):
    import importlib.util

    find_spec = importlib.util.find_spec
    # the tracker's package hidden as if not installed (aim is not: it does not install beside our pins)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == log_with else find_spec(name, *args))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "model=tiny-bert", "task=rte", "data.source=embedded", f"trainer.log_with={log_with}",
              f"results_dir={tmp_path / 'results'}"])  # fmt: skip
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and mentions in line
    assert list(tmp_path.iterdir()) == []
