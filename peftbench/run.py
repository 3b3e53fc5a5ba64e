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

from peftbench.config import identity
from peftbench.errors import UserError
from peftbench.results.history import append_evaluation


@dataclass
class Plan:
    config: dict  # the resolved config, plain
    model_cfg: object
    task: object
    method: object
    anatomy: object
    arch_config: object
    data: object  # TaskData
    format: str  # how the task's rows meet the model (peftbench.formats)
    run_id: str
    run_dir: Path
    init_from: Path | None  # the finished run whose method weights this one starts from


def plan(cfg) -> Plan:
    """Check everything a run needs before loading a model; raise UserError on bad input."""
    from omegaconf import OmegaConf

    from peftbench.formats import format_name
    from peftbench.methods import build_method
    from peftbench.models.anatomy import anatomy_of
    from peftbench.models.load import architecture_config, check_weights, model_type
    from peftbench.results.record import run_id
    from peftbench.tasks import get_task

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
    task = get_task(config["task"]["name"])
    method = build_method(config["method"])
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
    fmt = format_name(task, model_cfg.family, config["task"]["format"])
    method.check_format(task, fmt)
    if fmt == "generation" and not method.generates:
        raise UserError(
            f"method '{method.name}' cannot decode text yet (its soft prompt is not carried through "
            f"generate's KV cache), so it cannot run task {task.name}; use method=prefix or method=lora"
        )
    data = _load_data(config["data"], task)
    results_dir = Path(config["results_dir"])
    _check_writable(results_dir)
    init_from = _warm_start_source(config, model_cfg.name, method.name, results_dir)
    name = run_id(
        _identity(config, data, init_from),
        prefix=f"{task.name}.{model_cfg.name}.{method.name}.s{config['seed']}" + _fold_suffix(config["data"], task),
    )
    return Plan(config, model_cfg, task, method, anatomy, arch_config, data, fmt, name, results_dir / name, init_from)


def _identity(config: dict, data, init_from: Path | None) -> dict:
    """The result-changing fields, plus the data's official subset when there is one (FewGLUE
    and SuperGLUE runs of one config differ) and the run a warm start starts from; without
    either, the id is what it always was."""
    fields = identity(config)
    if data.subset:
        fields["data"] = {**fields["data"], "subset": data.subset}
    if init_from:
        fields["trainer"] = {**fields["trainer"], "init_from_run": init_from.name}
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
    train_rows = p.data.splits[p.task.train_split]
    fmt.task = p.method.prompt_task(p.task, train_rows, p.config["seed"], tokenizer, fmt.max_length)
    features = {
        split: fmt.encode(rows)
        for split, rows in p.data.splits.items()
        if p.method.trains or split != p.task.train_split  # nothing trains: the rows only demonstrate
    }
    loader = (
        fmt.train_loader(features[p.task.train_split], trainer_cfg.batch_size, p.config["seed"], trainer_cfg.group_by_length)
        if p.method.trains
        else None
    )

    def evaluate(model) -> dict:
        metrics = {}
        for split in p.task.eval_splits:
            predictions = fmt.predict(model, features[split], trainer_cfg.eval_batch_size)
            metrics[split] = p.task.score(predictions, p.data.splits[split])
        return metrics

    p.run_dir.mkdir(parents=True, exist_ok=True)
    from omegaconf import OmegaConf

    write_text_atomic(p.run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(p.config)))
    history_path = p.run_dir / "history.jsonl"
    checkpoint_root = p.run_dir / "checkpoints"
    if not checkpoint_root.is_dir():  # a fresh start: an older history is from a run that left no checkpoint
        history_path.unlink(missing_ok=True)
    select = (p.task.main_split, p.task.main_metric)
    record = _record(p, {}, status="running")
    write_json_atomic(p.run_dir / "record.json", record)
    train_checkpoints = Checkpoints(checkpoint_root / "train", keep=trainer_cfg.keep_checkpoints)
    try:
        search_s = _search(p, model, fmt, loader, evaluate, select, history_path)
        head = attach(p.method, model, p.anatomy, tokenizer, train_head=fmt.trains_head)
        if p.init_from:
            _warm_start(model, head, p.init_from)
        record["params"] = params = parameter_counts(model, p.method, head)
        write_json_atomic(p.run_dir / "record.json", record)
        print(f"run {p.run_id}: {params['trainable']:,} trainable of {params['total']:,} parameters", file=sys.stderr)
        on_evaluation = lambda entry: append_evaluation(history_path, {**entry, "phase": "train"})  # noqa: E731
        if p.method.trains:
            result = fit(
                model, loader, evaluate, select, trainer_cfg,
                loss=fmt.loss, on_evaluation=on_evaluation, checkpoints=train_checkpoints,
            )  # fmt: skip
        else:
            result = evaluate_once(model, evaluate, trainer_cfg, on_evaluation)
        save_weights({**result.best_state, **p.method.saved_buffers(model)}, p.run_dir / "method.safetensors")
        submission = _submit(p, fmt, model, result.best_state, features, trainer_cfg.eval_batch_size)
    except BaseException as error:
        reason = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
        record.update(status="failed", error=reason, finished=_now())
        try:
            write_json_atomic(p.run_dir / "record.json", record)
        except (OSError, UserError):  # e.g. the disk is still full: the "running" record stays whole
            pass
        raise
    main = result.best[p.task.main_split][p.task.main_metric]
    record.update(
        status="complete",
        finished=_now(),
        metrics={
            "best": result.best,
            "last": result.last,
            "best_epoch": result.best_epoch,
            "main": {"split": p.task.main_split, "metric": p.task.main_metric, "value": main},
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


def _search(p: Plan, model, fmt, loader, evaluate, select, history_path: Path) -> float | None:
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
            loader,
            evaluate,
            select,
            _namespace({**p.config["trainer"], "lr": lr}),
            loss=fmt.loss,
            on_evaluation=lambda entry: append_evaluation(history_path, {**entry, "phase": "search"}),
            checkpoints=Checkpoints(p.run_dir / "checkpoints" / "search", keep=p.config["trainer"]["keep_checkpoints"]),
        )
        spent.append(result.cost["wall_s"])

    p.method.search(model, head_parameter_names(model) if fmt.trains_head else [], train)
    return sum(spent)


def _submit(p: Plan, fmt, model, best_state: dict, features: dict, batch_size: int) -> str | None:
    """With the best weights, the unlabelled test split's predictions in the task's submission
    format, under ``<run>/submission/``; returns the file (None when the task or data has none)."""
    import torch

    rows = p.data.splits.get("test")
    if p.task.submit is None or not rows or rows[0]["label"] is not None:
        return None
    model.load_state_dict(best_state, strict=False)
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
        "task": p.task.name,
        "benchmark": p.task.benchmark,
        "format": p.format,
        "seed": p.config["seed"],
        "method_config": p.config["method"],
        "config": p.config,
        "metrics": {},
        "params": params,
        "cost": {},
        "env": {},
        "data": p.data.fingerprint(),
        "init_from": p.init_from.name if p.init_from else None,
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
