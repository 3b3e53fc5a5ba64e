"""Structured configs: the typed schema of a run, registered in Hydra's ConfigStore.

``conf/config.yaml`` composes one entry of each group (model, method, task, trainer) over this
schema, so a wrong type (``trainer.epochs=abc``) or an unknown key fails at composition, before
anything loads. The method section is checked by the method's own ``Config`` dataclass
(``peftbench.methods.build_method``), so a new method brings its schema in its own file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
GROUPS = ("model", "method", "task", "trainer", "experiment")


@dataclass
class ModelConfig:
    name: str = MISSING
    family: str = MISSING  # encoder | decoder | encoder_decoder
    hub_id: Optional[str] = None  # the Hugging Face hub id: the real path, needs the network
    package: Optional[str] = None  # a pip package carrying the files (imported by name, not run)
    package_subdir: Optional[str] = None  # the folder inside that package
    path: Optional[str] = None  # a local folder; wins over package and hub
    random_init: bool = False  # random weights from `architecture` (tiny test models)
    architecture: dict[str, Any] = field(default_factory=dict)  # config.json fields, model_type first
    trust_remote_code: bool = False


@dataclass
class TaskConfig:
    name: str = MISSING
    max_length: int = 128
    format: Optional[str] = None  # classification | multiple_choice | rank_classification; None: by family
    unlikelihood_loss: bool = False  # rank classification: T-Few's L_UL on the wrong choices (Eq. 2)
    length_normalized_loss: bool = False  # rank classification: T-Few's L_LN (Eq. 3)
    label_smoothing: float = 0.0  # generation: ε of the target distribution
    num_beams: int = 1  # generation: decoding settings (E2E: the LoRA paper's 10, 0.9, 4)
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    max_new_tokens: int = 64
    # Multi-task: the tasks trained together (``name`` then names the mixture, e.g. glue_all);
    # batches drawn by temperature sampling, p_i ∝ n_i^(1/T) (peftbench.train.sampling)
    tasks: list[str] = field(default_factory=list)
    temperature: float = 1.0


@dataclass
class DataConfig:
    source: str = "auto"  # auto | dir | hub | embedded
    dir: Optional[str] = None  # the benchmark's original files (or PEFTBENCH_DATA)
    max_train_samples: Optional[int] = None
    max_eval_samples: Optional[int] = None
    folds: Optional[int] = None  # K-fold cross-validation on train (default: the task's own, RAFT 5)
    fold: int = 0  # which of the K folds is the validation split


@dataclass
class TrainerConfig:
    epochs: int = 3
    max_steps: Optional[int] = None  # stop after this many optimiser steps (overrides epochs)
    batch_size: int = 32
    eval_batch_size: int = 128
    grad_accum: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    precision: str = "auto"  # auto | fp32 | bf16 | fp16  (auto: bf16 on a GPU that has it, else fp32)
    device: str = "auto"  # auto | cpu | cuda
    eval_every_steps: Optional[int] = None  # evaluate every N steps as well as at each epoch end
    log_every: int = 20
    progress: bool = True
    group_by_length: bool = True  # length-grouped batches (HF's LengthGroupedSampler); off: random batches
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, more time
    compile: bool = False  # torch.compile the training forward/backward
    frozen_bf16: bool = False  # keep the frozen Linear weights in bf16 (with bf16 autocast; trained ones stay fp32)
    checkpoint_every_steps: Optional[int] = 500  # also after every evaluation; for resume (None: evaluations only)
    keep_checkpoints: int = 1  # the newest kept while training, besides the best one (kept to the end)
    # Start the method's weights from the finished run of this task with the same model, method
    # config and seed (the LoRA paper's warm start from MNLI for MRPC, RTE and STS-B); None: fresh.
    init_from_task: Optional[str] = None


@dataclass
class PaperSource:
    """Where an experiment preset's values come from: the paper's arXiv id and the version read
    (``v2``, or the venue's, e.g. ``acl``). Tables keep runs of another version out of a cell."""

    arxiv: Optional[str] = None
    version: Optional[str] = None


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    method: Any = MISSING
    task: TaskConfig = field(default_factory=TaskConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    seed: int = 0
    results_dir: str = "results"
    experiment: Optional[str] = None  # set by experiment presets, recorded
    paper: PaperSource = field(default_factory=PaperSource)  # set by experiment presets, recorded
    # Per-task values of a preset, read by interpolation: `lr: ${per_task.${task.name}.lr}`.
    per_task: dict[str, Any] = field(default_factory=dict)


# Fields that do not change a run's result, left out of its id.
NOT_RESULT_CHANGING = {
    "trainer": {
        "eval_batch_size", "log_every", "progress", "device", "checkpoint_every_steps", "keep_checkpoints",
        "gradient_checkpointing", "compile",  # speed and memory, not the result (up to float rounding)
    },
    "data": {"dir"},
    "model": {"path", "package", "package_subdir", "hub_id", "trust_remote_code"},
    "results_dir": None,
    "experiment": None,
    "paper": None,
    "per_task": None,  # its effect is already in the resolved fields that read it
}
# Result-changing options added after runs were recorded: at these values they leave the id as it
# was before they existed, so finished runs stay found.
LATER_OPTIONS = {
    "trainer": {"group_by_length": True, "frozen_bf16": False, "init_from_task": None},
    "task": {"tasks": [], "temperature": 1.0},
}


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="peftbench_schema", node=Config)


def available(group: str) -> list[str]:
    """The options of a config group: the YAML files in ``conf/<group>/``."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def identity(cfg: dict) -> dict:
    """The result-changing part of a resolved config (a plain dict), hashed into the run id."""
    out = {}
    for key, value in cfg.items():
        if key in NOT_RESULT_CHANGING and NOT_RESULT_CHANGING[key] is None:
            continue
        skip = NOT_RESULT_CHANGING.get(key, set())
        later = LATER_OPTIONS.get(key, {})
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in skip and not (k in later and later[k] == v)}
        out[key] = value
    return out


def model_config(name: str) -> ModelConfig:
    """The typed ``conf/model/<name>.yaml`` (for commands and tests that need no full composition)."""
    from omegaconf import OmegaConf

    from peftbench.errors import UserError

    path = CONF_DIR / "model" / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"unknown model '{name}'; choose one of: {', '.join(available('model'))}")
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(path)))
