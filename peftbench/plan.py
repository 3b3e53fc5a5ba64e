"""A run, planned: every check that needs no model weights, and what the run is assembled from.

``Planner`` turns a composed config into a ``Plan``: the method built from its config node, the
backbone's anatomy and architecture (family checked), the task or tasks with the format each runs
in, their rows from the chosen source (``tasks/sources.py``) cut to folds and sample limits, the
finished runs a warm start or AdapterFusion builds on, and the run id (a hash of the
result-changing config) with its folder. A task whose label set its data decides (the CFPB
complaints) is read before its format is chosen, and takes the label set it read
(``labelled_by``). It writes nothing, so bad input is one line (exit 2)
in about a second, before any model loads. ``peftbench run`` plans every job of a sweep before
launching it, each job once: a task's rows are read once for all the jobs that use them, and a
job that runs in the planning process takes its plan from there. ``peftbench params`` counts
from the same steps (``method_from_config``, ``checked_anatomy``, ``run_format``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from peftbench.config import check_trainer, identity, with_parts
from peftbench.errors import UserError


@dataclass
class Part:
    """One task of a run: the task, its rows and the format they meet the model in."""

    task: object  # peftbench.tasks.Task
    data: object  # peftbench.tasks.TaskData
    format: str  # peftbench.formats


@dataclass
class Plan:
    config: dict  # the resolved config, plain
    model_cfg: object
    method: object
    anatomy: object
    arch_config: object
    run_id: str
    run_dir: Path
    init_from: Path | None  # the finished run whose method weights this one starts from
    parts: list[Part]  # the run's tasks: one, or the several of a multi-task run
    name: str  # the task's name, or the multi-task mixture's (glue_all, rte+mrpc+sst2)

    @property
    def multitask(self) -> bool:
        return len(self.parts) > 1


class Planner:
    """Plans jobs; within one planner each task's rows are read once, and each job is planned
    once (``take`` hands a planned job to the process that runs it, and forgets it)."""

    def __init__(self):
        self._plans: dict[str, Plan] = {}
        self._rows: dict[tuple, object] = {}

    def plan(self, cfg) -> Plan:
        """Check everything the run of config ``cfg`` needs before loading a model (UserError)."""
        config = resolved(cfg)
        key = _key(config)
        if key not in self._plans:
            self._plans[key] = self._plan(cfg, config)
        return self._plans[key]

    def take(self, cfg) -> Plan:
        """The plan of ``cfg`` to execute: the one made already (then forgotten), else a new one."""
        config = resolved(cfg)
        return self._plans.pop(_key(config), None) or self._plan(cfg, config)

    def _plan(self, cfg, config: dict) -> Plan:
        from omegaconf import OmegaConf

        from peftbench.formats import FORMATS
        from peftbench.models.load import architecture_config, check_weights, load_tokenizer
        from peftbench.results.record import RunIndex, run_id

        model_cfg = OmegaConf.to_object(cfg.model)
        name, tasks = run_tasks(config["task"])
        method = method_from_config(config["method"])
        method.tasks = [task.name for task in tasks]
        check_trainer(config["trainer"], config["task"])
        _check_labels_from_data(config["task"], tasks)
        anatomy = checked_anatomy(model_cfg)
        check_weights(model_cfg)
        arch_config = architecture_config(model_cfg)
        method.check_model(anatomy, arch_config)
        tasks = [self._labelled(task, config) for task in tasks]
        method.class_labels = list(dict.fromkeys(word for task in tasks for word in task.verbalizers))
        formats = [run_format(task, model_cfg.family, config["task"]["format"], method) for task in tasks]
        _check_strategy(config["trainer"], formats)
        if len(tasks) > 1:
            _check_multitask(method, model_cfg, [FORMATS[f].trains_head for f in formats], config["task"]["temperature"])
        method.check_tokenizer(lambda: load_tokenizer(model_cfg))
        parts = [Part(task, self._data(config["data"], task, config["seed"]), fmt) for task, fmt in zip(tasks, formats)]
        method.check_steps(_optimizer_steps(parts, config["trainer"]))
        results_dir = Path(config["results_dir"])
        _check_writable(results_dir)
        runs = RunIndex(results_dir)
        init_from = _warm_start_source(config, model_cfg.name, method.name, runs)
        builds_on = method.prerequisites(runs, model_cfg.name, config["seed"])
        first = parts[0]
        chosen = [fmt for task, fmt in zip(tasks, formats) if method.preferred_format(task, model_cfg.family) == fmt]
        run = run_id(
            _identity(config, first.data, init_from, builds_on, chosen),
            prefix=f"{name}.{model_cfg.name}.{method.name}.s{config['seed']}" + _fold_suffix(config["data"], first.task),
        )
        return Plan(config, model_cfg, method, anatomy, arch_config, run, results_dir / run, init_from, parts, name)

    def _data(self, data_cfg: dict, task, seed: int):
        """The task's rows for this run: from the chosen source (read once per planner), then cut
        to the cross-validation fold and the sample limits; every split the run needs present."""
        loaded = self._loaded(task, data_cfg)
        return _shaped(dataclasses.replace(loaded, splits=dict(loaded.splits)), data_cfg, task, seed)

    def _loaded(self, task, data_cfg: dict):
        """The task's rows as its source gives them, read once per planner (per run options: XNLI in
        each language is other rows)."""
        from peftbench.tasks.sources import data_dir, load_task

        key = (task.name, task.options, data_cfg["source"], data_dir(data_cfg["dir"]))
        if key not in self._rows:
            self._rows[key] = load_task(task, data_cfg["source"], data_cfg["dir"])
        return self._rows[key]

    def _labelled(self, task, config: dict):
        """``task``, or where its data decides its label set, the task with the set it reads."""
        if not task.declared_classes:
            return task
        return labelled_by(task, self._loaded(task, config["data"]), config["task"]["labels_from_data"])


def plan(cfg) -> Plan:
    """The plan of one config (``Planner().plan``)."""
    return Planner().plan(cfg)


def resolved(cfg) -> dict:
    """The composed config as plain data, interpolations resolved; a preset's per-task value that
    the task lacks is one line."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        first = str(error).strip().splitlines()[0]
        raise UserError(
            f"{error.full_key}: {first}; the experiment preset has no value for task '{cfg.task.name}' "
            "(pick a task it covers or set the field on the command line)"
        ) from None


def method_from_config(node: dict):
    """The method of a config node, a combination's parts read from their presets."""
    from peftbench.methods import build_method

    return build_method(with_parts(node))


def checked_anatomy(model_cfg):
    """The model's anatomy (no weights), the family its YAML declares checked against it."""
    from peftbench.models.anatomy import anatomy_of
    from peftbench.models.load import model_type

    anatomy = anatomy_of(model_type(model_cfg))
    if anatomy.family != model_cfg.family:
        raise UserError(
            f"model '{model_cfg.name}' says family {model_cfg.family}, but {model_type(model_cfg)} is "
            f"{anatomy.family}; fix conf/model/{model_cfg.name}.yaml"
        )
    return anatomy


def run_tasks(task_cfg: dict) -> tuple[str, list]:
    """The run's task name and its tasks: one, or the several of a multi-task config, each bound to
    the run options it reads (``task.language``, ``task.text_file``)."""
    from peftbench.tasks import get_task

    names = task_cfg["tasks"]
    if task_cfg["name"] == "multi" and len(names) < 2:
        raise UserError("task=multi needs two tasks or more; name them: task=[rte,mrpc,sst2] (or task.tasks=[…])")
    if not names:
        return task_cfg["name"], [get_task(task_cfg["name"], task_cfg)]
    if len(set(names)) < len(names):
        raise UserError(f"task.tasks names a task twice ({', '.join(names)}); name each once")
    name = "+".join(names) if task_cfg["name"] == "multi" else task_cfg["name"]
    return name, [get_task(n, task_cfg) for n in names]


def run_format(task, family: str, override: str | None, method) -> str:
    """The format ``task`` runs in on ``family``, checked against the method."""
    from peftbench.formats import format_name

    fmt = format_name(task, family, override, method.preferred_format(task, family))
    method.check_format(task, fmt)
    if fmt == "generation" and family not in method.generates:
        raise UserError(
            f"method '{method.name}' cannot decode text yet on {family} models (its soft prompt is not carried "
            f"through generate's KV cache), so it cannot run task {task.name} there; use an encoder_decoder "
            "model (e.g. model=t5-base), or method=prefix or method=lora"
        )
    return fmt


def _optimizer_steps(parts: list[Part], trainer: dict) -> int:
    """The run's optimiser steps, from its training rows (a batch of ``batch_size`` rows of one task,
    as ``train.batching`` and ``train.sampling`` cut them)."""
    from types import SimpleNamespace

    from peftbench.train.loop import optimizer_steps

    batch = trainer["batch_size"]
    batches = sum(-(-len(part.data.splits[part.task.train_split]) // batch) for part in parts)
    return optimizer_steps(batches, SimpleNamespace(**trainer))


def _check_multitask(method, model_cfg, trains_head: list[bool], temperature: float) -> None:
    if not method.multitask:
        raise UserError(f"method '{method.name}' trains for one task at a time; run it per task (-m task=a,b)")
    if any(trains_head) and not all(trains_head):
        raise UserError(
            f"a multi-task run reads every task through a head of its own or every task as text; on "
            f"{model_cfg.name} these tasks mix the two; pick tasks of one kind, or one task.format for all"
        )
    if temperature <= 0:
        raise UserError(f"task.temperature must be positive, got {temperature}; 1 samples "
                        "in proportion to the data, 10 as Hyperformer, large values uniformly")  # fmt: skip


def _check_strategy(trainer: dict, formats: list[str]) -> None:
    """FSDP's forward is a collective, so every rank must run as many: decoding text, whose steps
    end when each rank's own texts end, is refused under it over several processes."""
    import os

    from peftbench.train.distributed import world

    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        raise UserError("peftbench shards the model itself: launch with `accelerate launch --multi_gpu …` "
                        "and pass trainer.strategy=fsdp instead of --use_fsdp")
    if world().distributed and trainer["strategy"] == "fsdp" and "generation" in formats:
        raise UserError("trainer.strategy=fsdp cannot decode text over several processes yet (each rank's "
                        "generation ends at its own step); use trainer.strategy=ddp for generation tasks")


def _check_labels_from_data(task_cfg: dict, tasks: list) -> None:
    if task_cfg["labels_from_data"] and not any(task.declared_classes for task in tasks):
        raise UserError(
            f"task.labels_from_data=true is for tasks whose label set their data decides "
            f"(customer_complaint_database); {task_cfg['name']} names its labels itself, so drop it"
        )


def labelled_by(task, data, labels_from_data: bool):
    """``task`` with the label set its rows name (``TaskData.label_names``), where the data decides
    it (``Task.declared_classes``). Full data must name as many classes as the paper declares (a
    snapshot other than the paper's names others: one line, before any model loads), unless
    ``task.labels_from_data=true`` runs the set it names; a sample (the shipped slice, a few
    rows) names what it holds."""
    found = len(data.label_names)
    if found != task.declared_classes and not (data.sample or labels_from_data):
        raise UserError(
            f"task {task.name}: {data.location} names {found} classes, not the {task.declared_classes} of the "
            f"paper's data (another snapshot of it); pass a copy with the paper's classes, or "
            f"task.labels_from_data=true to run these {found}"
        )
    return task.with_labels(data.label_names)


def few_shot(rows: list, k: int, seed: int) -> list:
    """``k`` of ``rows`` as Hyperformer draws a few-shot training set (Karimi Mahabadi et al. 2021,
    §5 few-shot transfer; ``hyperformer/data/tasks.py``, ``subsample``): a permutation from
    ``torch.randperm`` with a generator seeded by the seed, and its first ``k`` rows, in that order.
    All rows when there are no more than ``k`` (CB's 250)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return [rows[index] for index in torch.randperm(len(rows), generator=generator).tolist()[:k]]


def _shaped(data, data_cfg: dict, task, seed: int):
    """``data`` cut to the configured fold, few-shot draw and sample limits (in place); its needed
    splits checked."""
    folds = data_cfg["folds"] or task.folds
    if folds:
        from peftbench.tasks.folds import cross_validation_split

        train, validation = cross_validation_split(data.splits[task.train_split], folds, data_cfg["fold"])
        data.splits.update({task.train_split: train, task.main_split: validation})
        data.location += f" (fold {data_cfg['fold']} of {folds})"
    k = data_cfg["train_samples"]
    if k is not None:
        if k < 1:
            raise UserError(f"data.train_samples must be ≥ 1, got {k}; drop it to train on every row")
        data.splits[task.train_split] = few_shot(data.splits[task.train_split], k, seed)
        data.location += f" ({k} training rows drawn with seed {seed})"
    limits = {task.train_split: data_cfg["max_train_samples"]}
    limits.update({split: data_cfg["max_eval_samples"] for split in task.eval_splits})
    for split, limit in limits.items():
        if limit is not None:
            if limit < 1:
                raise UserError(f"data sample limits must be ≥ 1, got {limit}; drop the limit or set a positive one")
            if limit < len(data.splits[split]):
                data.splits[split] = data.splits[split][:limit]
                data.sample = True
    for split in (task.train_split, *task.eval_splits):
        if not data.splits.get(split):
            raise UserError(
                f"task {task.name} has no '{split}' rows in {data.location}; check the data folder, "
                "or score by cross-validation on train with data.folds=K data.fold=k"
            )
    return data


def _identity(config: dict, data, init_from: Path | None, builds_on: list[Path], chosen: list[str]) -> dict:
    """The result-changing fields, plus the data's official subset when there is one (FewGLUE
    and SuperGLUE runs of one config differ), the label set where the data decides it (two
    snapshots of the CFPB complaints with other Issue values are other runs), the run a warm start
    starts from, the runs the method builds on and the formats the method chose (``chosen``:
    P-tuning's cloze on an encoder, where such runs once read a classification head); without any
    of them, the id is what it always was."""
    import hashlib

    fields = identity(config)
    if chosen and config["task"]["format"] is None:
        fields["task"] = {**fields["task"], "format": "+".join(dict.fromkeys(chosen))}
    if data.subset:
        fields["data"] = {**fields["data"], "subset": data.subset}
    if data.label_names is not None:
        labels = hashlib.sha256(json.dumps(list(data.label_names)).encode()).hexdigest()[:16]
        fields["data"] = {**fields["data"], "label_names_sha256": labels}
    if init_from:
        fields["trainer"] = {**fields["trainer"], "init_from_run": init_from.name}
    if builds_on:
        fields["method"] = {**fields["method"], "builds_on_runs": [path.name for path in builds_on]}
    return fields


def _warm_start_source(config: dict, model: str, method: str, runs) -> Path | None:
    """The run folder ``trainer.init_from_task`` names: the newest complete run of that task with
    this run's model, method config and seed (None when the option is off)."""
    from peftbench.tasks import get_task

    task = config["trainer"]["init_from_task"]
    if task is None:
        return None
    get_task(task)  # an unknown task name is refused with the known ones
    seed = config["seed"]
    found = runs.newest(task=task, model=model, method=method, seed=seed, method_config=config["method"])
    if found is None:
        raise UserError(
            f"trainer.init_from_task={task}: no complete {task} run of {model} with this {method} config and "
            f"seed {seed} in {runs.root}; run it first (peftbench run model={model} method={method} task={task} "
            f"seed={seed}, same method settings) or drop trainer.init_from_task"
        )
    return runs.folder(found)


def _fold_suffix(data_cfg: dict, task) -> str:
    folds = data_cfg["folds"] or task.folds
    return f".f{data_cfg['fold']}" if folds else ""


def _check_writable(results_dir: Path) -> None:
    """The nearest existing folder on the way to ``results_dir`` must take a file (tried with a
    temporary one, removed at once: permission bits say nothing for root or read-only mounts)."""
    import tempfile

    probe = results_dir.absolute()
    while not probe.exists():
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(f"{probe} is a file")
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as error:
        raise UserError(
            f"results folder {results_dir} is not writable ({error.strerror or error}); pass results_dir=DIR"
        ) from None


def _key(config: dict) -> str:
    return json.dumps(config, sort_keys=True, default=str)
