"""Experiment trackers through accelerate (``trainer.log_with``): TensorBoard, Weights & Biases,
MLflow, Aim. Off by default (``none``); each writes inside the run folder and reaches no network
unless the user asks for it:

- ``tensorboard``: event files in ``<run>/tracker/`` (``tensorboard --logdir results`` shows every run);
- ``wandb``: offline, under ``<run>/tracker/wandb/`` (``wandb sync`` uploads it later); ``WANDB_MODE=online``
  logs live; project ``peftbench``, run name the run id;
- ``mlflow``: a local file store at ``<run>/tracker/mlruns`` (``mlflow ui --backend-store-uri`` reads
  it; ``MLFLOW_ALLOW_FILE_STORE`` is set for it) unless ``MLFLOW_TRACKING_URI`` names another store;
  experiment ``peftbench`` (``MLFLOW_EXPERIMENT_NAME`` overrides it), run name the run id;
- ``aim``: an Aim repository at ``<run>/tracker/``, run name the run id.

What is logged: the resolved config as hyperparameters (flattened, ``trainer.lr``), the training
loss, learning rate and samples/s every ``trainer.log_every`` steps (``train/…``), every
evaluation's metrics (``eval/<split>/<metric>``) and, at the end, the cost figures (``cost/…``).
Whether the tracker's package is installed is checked when the run is planned (``config.py``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

FOLDER = "tracker"
PROJECT = "peftbench"


@dataclass(frozen=True)
class Tracking:
    """Where a run's tracker writes: ``log_with`` (an accelerate tracker name), the run folder,
    the run's name (its id) and the resolved config logged as hyperparameters."""

    log_with: str
    run_dir: Path
    name: str
    config: dict

    @property
    def folder(self) -> Path:
        return self.run_dir / FOLDER


def tracking(log_with: str, run_dir: Path, name: str, config: dict) -> Tracking | None:
    """The run's ``Tracking``, or None for ``log_with=none``."""
    return None if log_with == "none" else Tracking(log_with, Path(run_dir), name, config)


class Tracker:
    """The run's tracker on an accelerator, or nothing at all (``tracking`` None)."""

    def __init__(self, accelerator, tracking: Tracking | None):
        self.accelerator = accelerator if tracking is not None else None
        if self.accelerator is None:
            return
        tracking.folder.mkdir(parents=True, exist_ok=True)
        if tracking.log_with == "mlflow" and not os.environ.get("MLFLOW_TRACKING_URI"):
            import mlflow

            # MLflow 3 refuses its file store unless asked for it; its database store would create
            # an SQLite schema per run (seconds of migrations) where a folder of files is enough
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            mlflow.set_tracking_uri((tracking.folder / "mlruns").as_uri())
        if tracking.log_with == "wandb":
            # the process's mode, not only the run's: W&B's usage telemetry follows the process
            # settings and would post to the W&B server even for an offline run
            os.environ.setdefault("WANDB_MODE", "offline")
        project = FOLDER if tracking.log_with == "tensorboard" else tracking.name if tracking.log_with == "aim" else PROJECT
        accelerator.init_trackers(project, config=hyperparameters(tracking.config), init_kwargs=_init_kwargs(tracking))

    def log(self, values: dict, step: int) -> None:
        if self.accelerator is not None:
            self.accelerator.log(values, step=step)

    def end(self) -> None:
        if self.accelerator is not None:
            self.accelerator.end_training()
            self.accelerator = None


def accelerator_options(tracking: Tracking | None) -> dict:
    """``Accelerator(...)``'s tracker options: TensorBoard logs to ``project_dir/<project>``
    (``<run>/tracker``), Aim keeps its repository at ``project_dir``."""
    if tracking is None:
        return {}
    project_dir = tracking.run_dir if tracking.log_with == "tensorboard" else tracking.folder
    return {"log_with": tracking.log_with, "project_dir": str(project_dir)}


def _init_kwargs(tracking: Tracking) -> dict:
    if tracking.log_with == "wandb":
        return {"wandb": {"name": tracking.name, "dir": str(tracking.folder), "mode": os.environ["WANDB_MODE"]}}
    if tracking.log_with == "mlflow":
        return {"mlflow": {"run_name": tracking.name, "logging_dir": str(tracking.folder / "artifacts")}}
    return {}


def hyperparameters(config: dict, prefix: str = "") -> dict:
    """The config flattened to ``a.b.c`` keys with values every tracker takes (TensorBoard's
    hparams accept int, float, str and bool only): lists and None as JSON text."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(hyperparameters(value, name + "."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value)
    return flat


def scalars(prefix: str, values: dict) -> dict:
    """``{prefix/key: number}`` from a nested dict of values, numbers only (no bools, None or text)."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(scalars(f"{prefix}/{key}", value))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f"{prefix}/{key}"] = value
    return flat
