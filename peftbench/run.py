"""One run, end to end: config → data → model → method → trainer → run record.

``plan`` does every check that needs no model weights (names, types, values, model/method fit,
data files, results folder) and writes nothing, so bad input fails in a second with exit 2.
``execute`` then loads, trains and writes the record atomically; a run whose record is complete
is skipped (the run id is a hash of the result-changing config, DESIGN §3), and one that was
interrupted continues from its last checkpoint (``<run>/checkpoints/``; the best one is kept when
the run completes).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from peftbench.config import identity
from peftbench.errors import UserError
from peftbench.results.history import append_evaluation


@dataclass
class Part:
    """One task of a run: the task, its rows and the format they meet the model in."""

    task: object
    data: object  # TaskData
    format: str  # peftbench.formats


@dataclass
class Plan:
    config: dict  # the resolved config, plain
    model_cfg: object
    task: object  # the first (for a single-task run, the only) task; ``parts`` has them all
    method: object
    anatomy: object
    arch_config: object
    data: object  # TaskData
    format: str  # how the task's rows meet the model (peftbench.formats)
    run_id: str
    run_dir: Path
    init_from: Path | None  # the finished run whose method weights this one starts from
    parts: list[Part]
    name: str  # the task's name, or the multi-task mixture's (glue_all, rte+mrpc+sst2)

    @property
    def multitask(self) -> bool:
        return len(self.parts) > 1


def plan(cfg) -> Plan:
    """Check everything a run needs before loading a model; raise UserError on bad input."""
    from omegaconf import OmegaConf

    from peftbench.formats import FORMATS
    from peftbench.methods import build_method
    from peftbench.models.anatomy import anatomy_of
    from peftbench.models.load import architecture_config, check_weights, model_type
    from peftbench.results.record import run_id

    from omegaconf.errors import OmegaConfBaseException

    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        first = str(error).strip().splitlines()[0]
        raise UserError(
            f"{error.full_key}: {first}; the experiment preset has no value for task '{cfg.task.name}' "
            "(pick a task it covers or set the field on the command line)"
        ) from None
    model_cfg = OmegaConf.to_object(cfg.model)
    name, tasks = _tasks(config["task"])
    method = build_method(config["method"])
    method.tasks = [task.name for task in tasks]
    _check_trainer(config["trainer"], config["task"])
    anatomy = anatomy_of(model_type(model_cfg))
    if anatomy.family != model_cfg.family:
        raise UserError(
            f"model '{model_cfg.name}' says family {model_cfg.family}, but {model_type(model_cfg)} is "
            f"{anatomy.family}; fix conf/model/{model_cfg.name}.yaml"
        )
    check_weights(model_cfg)
    arch_config = architecture_config(model_cfg)
    method.check_model(anatomy, arch_config)
    formats = [_format(task, model_cfg.family, config["task"]["format"], method) for task in tasks]
    if len(tasks) > 1 and any(FORMATS[f].trains_head for f in formats):
        raise UserError(
            f"multi-task runs need a language model that reads every task as text; {model_cfg.name} is "
            f"{model_cfg.family} and would need a head per task (not supported yet); pick a decoder or "
            "encoder_decoder model (e.g. model=tiny-t5, model=smollm2-135m)"
        )
    if len(tasks) > 1 and config["task"]["temperature"] <= 0:
        raise UserError(f"task.temperature must be positive, got {config['task']['temperature']}; 1 samples "
                        "in proportion to the data, 10 as Hyperformer, large values uniformly")  # fmt: skip
    parts = [Part(task, _load_data(config["data"], task), fmt) for task, fmt in zip(tasks, formats)]
    results_dir = Path(config["results_dir"])
    _check_writable(results_dir)
    init_from = _warm_start_source(config, model_cfg.name, method.name, results_dir)
    builds_on = method.prerequisites(results_dir, model_cfg.name, config["seed"])
    first = parts[0]
    run = run_id(
        _identity(config, first.data, init_from, builds_on),
        prefix=f"{name}.{model_cfg.name}.{method.name}.s{config['seed']}" + _fold_suffix(config["data"], first.task),
    )
    return Plan(
        config, model_cfg, first.task, method, anatomy, arch_config, first.data, first.format, run,
        results_dir / run, init_from, parts, name,
    )  # fmt: skip


def _tasks(task_cfg: dict) -> tuple[str, list]:
    """The run's task name and its tasks: one, or the several of a multi-task config."""
    from peftbench.tasks import get_task

    names = task_cfg["tasks"]
    if task_cfg["name"] == "multi" and len(names) < 2:
        raise UserError("task=multi needs two tasks or more; name them: task=[rte,mrpc,sst2] (or task.tasks=[…])")
    if not names:
        return task_cfg["name"], [get_task(task_cfg["name"])]
    if len(set(names)) < len(names):
        raise UserError(f"task.tasks names a task twice ({', '.join(names)}); name each once")
    name = "+".join(names) if task_cfg["name"] == "multi" else task_cfg["name"]
    return name, [get_task(n) for n in names]


def _format(task, family: str, override: str | None, method) -> str:
    """The format ``task`` runs in on ``family``, checked against the method."""
    from peftbench.formats import format_name

    fmt = format_name(task, family, override)
    method.check_format(task, fmt)
    if fmt == "generation" and not method.generates:
        raise UserError(
            f"method '{method.name}' cannot decode text yet (its soft prompt is not carried through "
            f"generate's KV cache), so it cannot run task {task.name}; use method=prefix or method=lora"
        )
    return fmt


def _identity(config: dict, data, init_from: Path | None, builds_on: list[Path]) -> dict:
    """The result-changing fields, plus the data's official subset when there is one (FewGLUE
    and SuperGLUE runs of one config differ), the run a warm start starts from and the runs the
    method builds on; without any of them, the id is what it always was."""
    fields = identity(config)
    if data.subset:
        fields["data"] = {**fields["data"], "subset": data.subset}
    if init_from:
        fields["trainer"] = {**fields["trainer"], "init_from_run": init_from.name}
    if builds_on:
        fields["method"] = {**fields["method"], "builds_on_runs": [path.name for path in builds_on]}
    return fields


def _warm_start_source(config: dict, model: str, method: str, results_dir: Path) -> Path | None:
    """The run directory ``trainer.init_from_task`` names: the newest complete run of that task
    with this run's model, method config and seed (None when the option is off)."""
    from peftbench.results.record import iter_records
    from peftbench.tasks import get_task

    task = config["trainer"]["init_from_task"]
    if task is None:
        return None
    get_task(task)  # an unknown task name is refused with the known ones
    seed = config["seed"]
    found = [
        record
        for record in (iter_records(results_dir, warn=lambda problem: None) if results_dir.is_dir() else ())
        if record["status"] == "complete"
        and (record["task"], record["model"], record["method"], record["seed"]) == (task, model, method, seed)
        and record["method_config"] == config["method"]
    ]
    if not found:
        raise UserError(
            f"trainer.init_from_task={task}: no complete {task} run of {model} with this {method} config and "
            f"seed {seed} in {results_dir}; run it first (peftbench run model={model} method={method} task={task} "
            f"seed={seed}, same method settings) or drop trainer.init_from_task"
        )
    return results_dir / max(found, key=lambda record: record.get("finished") or "")["run_id"]


def _warm_start(model, head: list[str], source: Path) -> None:
    """Copy the method's weights (not the task head's) from the finished run ``source``."""
    import torch
    from safetensors.torch import load_file

    saved = load_file(str(source / "method.safetensors"))
    head_names = set(head)
    wanted = {n: p for n, p in model.named_parameters() if p.requires_grad and n not in head_names}
    wanted.update({n: b for n, b in model.named_buffers() if n in saved and n not in head_names})
    missing = sorted(n for n in wanted if n not in saved or saved[n].shape != wanted[n].shape)
    if missing:
        raise UserError(f"{source}: its method weights do not fit this model ({missing[0]}); warm-start from a run of the same model and method config")
    with torch.no_grad():
        for name, tensor in wanted.items():
            tensor.copy_(saved[name])
    print(f"warm start: method weights from {source.name}", file=sys.stderr)


def execute(p: Plan) -> dict:
    """Train the planned run and write its record; return the record."""
    import torch

    from peftbench.counting import parameter_counts
    from peftbench.environment import environment
    from peftbench.methods.base import attach
    from peftbench.results.record import write_json_atomic, write_text_atomic
    from peftbench.train.checkpoint import Checkpoints
    from peftbench.train.loop import evaluate_once, fit
    from peftbench.train.weights import save_weights

    trainer_cfg = _namespace(p.config["trainer"])
    model, tokenizer, fmt = build_model(p.model_cfg, p.task, p.config["seed"], p.format, p.config["task"])
    pipeline = _pipeline(p, fmt, tokenizer, trainer_cfg)

    p.run_dir.mkdir(parents=True, exist_ok=True)
    from omegaconf import OmegaConf

    write_text_atomic(p.run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(p.config)))
    history_path = p.run_dir / "history.jsonl"
    checkpoint_root = p.run_dir / "checkpoints"
    if not checkpoint_root.is_dir():  # a fresh start: an older history is from a run that left no checkpoint
        history_path.unlink(missing_ok=True)
    select = pipeline.select
    record = _record(p, {}, status="running")
    write_json_atomic(p.run_dir / "record.json", record)
    train_checkpoints = Checkpoints(checkpoint_root / "train", keep=trainer_cfg.keep_checkpoints)
    try:
        search_s = _search(p, model, pipeline, fmt.trains_head, history_path)
        head = attach(p.method, model, p.anatomy, tokenizer, train_head=fmt.trains_head)
        if p.init_from:
            _warm_start(model, head, p.init_from)
        record["params"] = params = parameter_counts(model, p.method, head)
        write_json_atomic(p.run_dir / "record.json", record)
        print(f"run {p.run_id}: {params['trainable']:,} trainable of {params['total']:,} parameters", file=sys.stderr)
        on_evaluation = lambda entry: append_evaluation(history_path, {**entry, "phase": "train"})  # noqa: E731
        if p.method.trains:
            result = fit(
                model, pipeline.loader, pipeline.evaluate, select, trainer_cfg,
                loss=pipeline.loss, on_evaluation=on_evaluation, checkpoints=train_checkpoints,
            )  # fmt: skip
        else:
            result = evaluate_once(model, pipeline.evaluate, trainer_cfg, on_evaluation)
        save_weights({**result.best_state, **p.method.saved_buffers(model)}, p.run_dir / "method.safetensors")
        model.load_state_dict(result.best_state, strict=False)
        for name, data in p.method.reports(model, pipeline.evaluate).items():
            write_json_atomic(p.run_dir / name, data)
        submission = None if p.multitask else _submit(
            p, fmt, model, pipeline.features[0], trainer_cfg.eval_batch_size
        )
    except BaseException as error:
        reason = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
        record.update(status="failed", error=reason, finished=_now())
        try:
            write_json_atomic(p.run_dir / "record.json", record)
        except (OSError, UserError):  # e.g. the disk is still full: the "running" record stays whole
            pass
        raise
    main = result.best[select[0]][select[1]]
    record.update(
        status="complete",
        finished=_now(),
        metrics={
            "best": result.best,
            "last": result.last,
            "best_epoch": result.best_epoch,
            "main": {"split": select[0], "metric": select[1], "value": main},
        },
        cost=result.cost,
        submission=submission,
        env=environment(result.cost["device"]),
    )
    record["cost"]["torch_threads"] = torch.get_num_threads()
    if search_s is not None:  # the search phase is part of the method's cost
        record["cost"].update(search_s=search_s, wall_s=round(record["cost"]["wall_s"] + search_s, 3))
    write_json_atomic(p.run_dir / "record.json", record)
    train_checkpoints.prune(best=result.best_step, keep=0)
    shutil.rmtree(checkpoint_root / "search", ignore_errors=True)  # its outcome, the mask, is in the weights
    return record


AVERAGE = "average"  # a multi-task run's metrics: the mean of its tasks' main metrics


@dataclass
class _Pipeline:
    """What a run trains and evaluates with, for one task or several."""

    features: list[dict]  # per part: split -> features
    loader: object | None  # None when the method trains nothing
    evaluate: Callable  # model -> {split: {metric: value}} (multi-task: "<task>/<split>" and "average")
    select: tuple[str, str]  # the (split, metric) the best evaluation is chosen by
    loss: Callable  # (model, batch) -> loss


def _pipeline(p: Plan, fmt, tokenizer, trainer_cfg) -> _Pipeline:
    """Features, training batches, evaluation and loss of the run's task (or tasks: batches drawn
    by temperature sampling, each with its own task's format; metrics per task and their mean)."""
    from peftbench.formats import make_format
    from peftbench.train.sampling import multitask_loader

    options = {**p.config["task"], "family": p.model_cfg.family}
    formats = [fmt] + [make_format(part.format, part.task, tokenizer, options) for part in p.parts[1:]]
    features = []
    for part, f in zip(p.parts, formats):
        train_rows = part.data.splits[part.task.train_split]
        f.task = p.method.prompt_task(part.task, train_rows, p.config["seed"], tokenizer, f.max_length)
        features.append({
            split: f.encode(rows)
            for split, rows in part.data.splits.items()
            if p.method.trains or split != part.task.train_split  # nothing trains: the rows only demonstrate
        })  # fmt: skip
    seed, batch_size, grouped = p.config["seed"], trainer_cfg.batch_size, trainer_cfg.group_by_length
    loader = None
    if p.method.trains and p.multitask:
        train = [f[part.task.train_split] for part, f in zip(p.parts, features)]
        loader = multitask_loader(formats, train, batch_size, seed, p.config["task"]["temperature"], grouped)
    elif p.method.trains:
        loader = fmt.train_loader(features[0][p.task.train_split], batch_size, seed, grouped)

    def evaluate(model) -> dict:
        metrics = {}
        for part, f, feats in zip(p.parts, formats, features):
            p.method.select_task(part.task.name)
            for split in part.task.eval_splits:
                with p.method.evaluating(model):
                    predictions = f.predict(model, feats[split], trainer_cfg.eval_batch_size)
                metrics[f"{part.task.name}/{split}" if p.multitask else split] = part.task.score(
                    predictions, part.data.splits[split]
                )
        if p.multitask:
            mains = [metrics[f"{t.name}/{t.main_split}"][t.main_metric] for t in (part.task for part in p.parts)]
            metrics[AVERAGE] = {"score": sum(mains) / len(mains)}
        return metrics

    def multitask_loss(model, batch: dict):
        p.method.select_task(p.parts[batch["task"]].task.name)
        return formats[batch["task"]].loss(model, {k: v for k, v in batch.items() if k != "task"})

    task_loss = multitask_loss if p.multitask else fmt.loss

    def loss(model, batch: dict):
        value = task_loss(model, batch)
        penalty = p.method.penalty(model)
        return value if penalty is None else value + penalty

    select = (AVERAGE, "score") if p.multitask else (p.task.main_split, p.task.main_metric)
    return _Pipeline(features, loader, evaluate, select, loss)


def _search(p: Plan, model, pipeline: "_Pipeline", trains_head: bool, history_path: Path) -> float | None:
    """A method that picks its parameters by training first (LT-SFT) does so here, with the run's
    trainer at the rate it asks for; its evaluations go to the history marked ``phase: search``.
    Returns the phase's wall seconds (None when the method does not search)."""
    from peftbench.models.anatomy import head_parameter_names
    from peftbench.train.checkpoint import Checkpoints
    from peftbench.train.loop import fit

    if not p.method.searches:
        return None
    spent = []

    def train(lr: float) -> None:
        result = fit(
            model,
            pipeline.loader,
            pipeline.evaluate,
            pipeline.select,
            _namespace({**p.config["trainer"], "lr": lr}),
            loss=pipeline.loss,
            on_evaluation=lambda entry: append_evaluation(history_path, {**entry, "phase": "search"}),
            checkpoints=Checkpoints(p.run_dir / "checkpoints" / "search", keep=p.config["trainer"]["keep_checkpoints"]),
        )
        spent.append(result.cost["wall_s"])

    p.method.search(model, head_parameter_names(model) if trains_head else [], train)
    return sum(spent)


def _submit(p: Plan, fmt, model, features: dict, batch_size: int) -> str | None:
    """With the best weights (loaded), the unlabelled test split's predictions in the task's submission
    format, under ``<run>/submission/``; returns the file (None when the task or data has none)."""
    import torch

    rows = p.data.splits.get("test")
    if p.task.submit is None or not rows or rows[0]["label"] is not None:
        return None
    model.eval()
    with torch.no_grad():
        predictions = fmt.predict(model, features["test"], batch_size)
    return str(p.task.submit(p.run_dir / "submission", rows, predictions))


def build_model(model_cfg, task, seed: int, format_name: str, task_cfg: dict):
    """The backbone in the run's format (with a fresh task head where the format has one), as
    every run builds it: seeded first, so the head and a tiny random model come out the same
    each time. Returns (model, tokenizer, format)."""
    from transformers import set_seed

    from peftbench.formats import make_format
    from peftbench.models.load import load_tokenizer

    set_seed(seed)
    tokenizer = load_tokenizer(model_cfg)
    fmt = make_format(format_name, task, tokenizer, {**task_cfg, "family": model_cfg.family})
    return fmt.load_model(model_cfg), tokenizer, fmt


def _record(p: Plan, params: dict, status: str) -> dict:
    return {
        "schema": 1,
        "run_id": p.run_id,
        "status": status,
        "error": None,
        "created": _now(),
        "finished": None,
        "model": p.model_cfg.name,
        "method": p.method.name,
        "task": p.name,
        "benchmark": "+".join(dict.fromkeys(part.task.benchmark for part in p.parts)),
        "format": "+".join(dict.fromkeys(part.format for part in p.parts)),
        "seed": p.config["seed"],
        "method_config": p.config["method"],
        "config": p.config,
        "metrics": {},
        "params": params,
        "cost": {},
        "env": {},
        "data": p.data.fingerprint(),
        "init_from": p.init_from.name if p.init_from else None,
        **({"parts": [_part_entry(part) for part in p.parts]} if p.multitask else {}),
        **p.method.record_entry(),
    }


def _part_entry(part: Part) -> dict:
    """A multi-task record's account of one of its tasks (tables read each task's cells from it)."""
    return {
        "task": part.task.name,
        "benchmark": part.task.benchmark,
        "format": part.format,
        "main": {"split": part.task.main_split, "metric": part.task.main_metric},
        "data": part.data.fingerprint(),
    }


def _load_data(data_cfg: dict, task):
    """The task's rows from the chosen source (auto: data.dir, $PEFTBENCH_DATA, embedded, hub)."""
    source = data_cfg["source"]
    directory = data_cfg["dir"] or os.environ.get("PEFTBENCH_DATA")
    if source == "auto":
        source = "dir" if directory else ("embedded" if task.has_embedded else "hub")
    data = task.load(source, directory)  # the task names a missing folder, file or source itself
    folds = data_cfg["folds"] or task.folds
    if folds:
        from peftbench.tasks.folds import cross_validation_split

        train, validation = cross_validation_split(data.splits[task.train_split], folds, data_cfg["fold"])
        data.splits.update({task.train_split: train, task.main_split: validation})
        data.location += f" (fold {data_cfg['fold']} of {folds})"
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


def _fold_suffix(data_cfg: dict, task) -> str:
    folds = data_cfg["folds"] or task.folds
    return f".f{data_cfg['fold']}" if folds else ""


def _check_trainer(trainer: dict, task: dict) -> None:
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
    if trainer["device"] not in {"auto", "cpu", "cuda"}:
        raise UserError(f"trainer.device must be auto, cpu or cuda, got '{trainer['device']}'")
    if task["max_length"] < 8:
        raise UserError(f"task.max_length must be ≥ 8, got {task['max_length']}")


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


def _namespace(values: dict):
    from types import SimpleNamespace

    return SimpleNamespace(**values)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
