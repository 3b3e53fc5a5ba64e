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

from peftbench.errors import UserError

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
    format: Optional[str] = None  # classification | multiple_choice | rank_classification | cloze | generation | token_classification | masked_lm; None: by task and family
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
    # A task whose label set its data decides (customer_complaint_database: the Issue values of
    # the CFPB snapshot read): run that set even when its count is not the paper's (157)
    labels_from_data: bool = False
    # Run options a task reads (``Task.options``): the language of a cross-lingual task (XNLI's and
    # WikiANN's target language, ``mlm``'s text), and ``mlm``'s own text file; None: the task's default
    language: Optional[str] = None
    text_file: Optional[str] = None


@dataclass
class DataConfig:
    source: str = "auto"  # auto | dir | hub | embedded
    dir: Optional[str] = None  # the benchmark's original files (or PEFTBENCH_DATA)
    max_train_samples: Optional[int] = None
    # A few-shot training set: k rows of train drawn with the run's seed, as Hyperformer's n_obs
    # (its few-shot Table 3 and low-resource Figure 2); the paper's setting, not a sample. None: all.
    train_samples: Optional[int] = None
    max_eval_samples: Optional[int] = None
    folds: Optional[int] = None  # K-fold cross-validation on train (default: the task's own, RAFT 5)
    fold: int = 0  # which of the K folds is the validation split
    cache: bool = True  # tokenised features kept under the cache folder and reused (formats/cache.py)


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
    progress: bool = True  # a bar on a terminal, a line per log_every steps otherwise
    log_with: str = "none"  # none | tensorboard | wandb | mlflow | aim: a tracker, local/offline (train/tracking.py)
    group_by_length: bool = True  # length-grouped batches (HF's LengthGroupedSampler); off: random batches
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, more time
    compile: bool = False  # torch.compile the training forward/backward
    frozen_bf16: bool = False  # keep the frozen Linear weights in bf16 (with bf16 autocast; trained ones stay fp32)
    # Predict the unlabelled test splits for the benchmark's server (GLUE's TSVs, RAFT's CSV) with the best
    # weights; false skips them (a sweep on dev: RTE's 3,000 test rows take longer than a short run trains)
    submission: bool = True
    # Over several processes (torchrun, accelerate launch): ddp, a whole copy per rank; fsdp, the
    # model sharded over the ranks (FSDP2). One process trains unwrapped whatever it says.
    strategy: str = "ddp"
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
        "eval_batch_size", "log_every", "progress", "log_with", "device", "checkpoint_every_steps", "keep_checkpoints",
        "gradient_checkpointing", "compile",  # speed and memory, not the result (up to float rounding)
        "submission",  # a file beside the result, not the result
        "strategy",  # the global batch is the same whatever the processes (train/sharding.py)
    },
    "data": {"dir", "cache"},
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
    "task": {"tasks": [], "temperature": 1.0, "labels_from_data": False, "language": None, "text_file": None},
    "data": {"train_samples": None},
    # LoRA's A, initialised so before the option existed; bottleneck adapters without MAD-X's invertible adapter;
    # LT-SFT without its L1 penalty; AdapterFusion over single-task adapters; MoE modules without fixed routing,
    # noisy gating or a capacity limit; mask tuning's uniform start
    "method": {"init": "kaiming", "invertible": "none", "full_l1": 0.0, "sparse_l1": 0.0, "adapter_training": "single",
               "hybrid": False, "noisy_gating": False, "capacity_factor": None, "controlled_init": None},
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


def check_trainer(trainer: dict, task: dict) -> None:
    """Refuse impossible trainer values (and a task length too short to hold a row); before any model loads."""
    for key in ("batch_size", "eval_batch_size", "grad_accum", "epochs", "log_every"):
        if trainer[key] < 1:
            raise UserError(f"trainer.{key} must be ≥ 1, got {trainer[key]}")
    if trainer["max_steps"] is not None and trainer["max_steps"] < 1:
        raise UserError(f"trainer.max_steps must be ≥ 1, got {trainer['max_steps']}")
    if trainer["lr"] <= 0:
        raise UserError(f"trainer.lr must be positive, got {trainer['lr']}")
    if not 0 <= trainer["warmup_ratio"] < 1:
        raise UserError(f"trainer.warmup_ratio must be in [0, 1), got {trainer['warmup_ratio']}")
    if trainer["precision"] not in {"auto", "fp32", "bf16", "fp16"}:
        raise UserError(f"trainer.precision must be auto, fp32, bf16 or fp16, got '{trainer['precision']}'")
    if trainer["frozen_bf16"] and trainer["precision"] not in {"bf16", "auto"}:
        raise UserError(
            f"trainer.frozen_bf16 needs bf16 autocast, but trainer.precision is {trainer['precision']}; "
            "set trainer.precision=bf16 or drop trainer.frozen_bf16"
        )
    if trainer.get("strategy", "ddp") not in {"ddp", "fsdp"}:
        raise UserError(f"trainer.strategy must be ddp or fsdp, got '{trainer['strategy']}'")
    if trainer["device"] not in {"auto", "cpu", "cuda"}:
        raise UserError(f"trainer.device must be auto, cpu or cuda, got '{trainer['device']}'")
    check_tracker(trainer.get("log_with", "none"))
    if task["max_length"] < 8:
        raise UserError(f"task.max_length must be ≥ 8, got {task['max_length']}")


# trainer.log_with -> the packages that provide it (any one of them); accelerate drives each.
TRACKERS = {"none": (), "tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",),
            "aim": ("aim",)}  # fmt: skip


def check_tracker(log_with: str) -> None:
    """Refuse an unknown tracker, or one whose package is not installed, before any model loads."""
    import importlib.util

    if log_with not in TRACKERS:
        raise UserError(f"trainer.log_with must be one of {', '.join(TRACKERS)}, got '{log_with}'")
    packages = TRACKERS[log_with]
    if packages and not any(importlib.util.find_spec(package) for package in packages):
        raise UserError(
            f"trainer.log_with={log_with} needs the {packages[0]} package, which is not installed; "
            f"`pip install {packages[0]}` or drop trainer.log_with"
        )


def model_config(name: str) -> ModelConfig:
    """The typed ``conf/model/<name>.yaml`` (for commands and tests that need no full composition)."""
    from omegaconf import OmegaConf


    path = CONF_DIR / "model" / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"unknown model '{name}'; choose one of: {', '.join(available('model'))}")
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(path)))


def method_preset(name: str) -> dict:
    """``conf/method/<name>.yaml`` as Hydra composes it: the entries of its ``defaults`` list (other
    presets of the group, e.g. ``bitfit_qm2`` on ``bitfit``) merged in order, ``_self_`` where it
    stands (last when absent)."""
    from omegaconf import OmegaConf


    path = CONF_DIR / "method" / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"unknown method '{name}'; known: {', '.join(available('method'))} (peftbench list methods)")
    own = OmegaConf.load(path)
    defaults = list(own.pop("defaults", None) or [])
    if "_self_" not in defaults:
        defaults.append("_self_")
    merged = OmegaConf.create()
    for entry in defaults:
        merged = OmegaConf.merge(merged, own if entry == "_self_" else method_preset(entry))
    return OmegaConf.to_container(merged, resolve=True)


def with_parts(method_node: dict) -> dict:
    """The node a method is built from: a combination (``method=[lora,bitfit]``, name ``composed``)
    gets ``parts``, each part's preset with the combination's ``settings`` for it, and a routing
    method (a ``module`` field: ``method=moe_adapters method.module=lora``) gets ``module_config``,
    its module's preset with its ``settings``, so that the method layer never reads ``conf/``; any
    other node as it is. The run's config (and its id) keeps the node as given."""
    if method_node.get("module") in available("method"):  # an unknown module: the method's check names the known
        return {**method_node, "module_config": {**method_preset(method_node["module"]), **(method_node.get("settings") or {})}}
    if method_node.get("name") != "composed":
        return method_node
    settings = method_node.get("settings") or {}
    parts = [{**method_preset(name), **(settings.get(name) or {})} for name in method_node.get("methods") or []]
    return {**method_node, "parts": parts}
