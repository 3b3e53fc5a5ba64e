"""One planned run, end to end: set up → train → finish, each step leaving the record whole.

A run is planned first (``peftbench.plan``: every check that needs no weights). ``execute`` then
reads top to bottom as a recipe:

- ``setup``: the model in the task's format, the pipeline (``peftbench.pipeline``), the run folder
  with the resolved config and a ``running`` record;
- ``train``: a method that searches its parameters first (LT-SFT) does so; the method goes on the
  model (warm-started from a finished run where asked); the trainer fits it, checkpointing for
  resume, or evaluates once for a method that trains nothing;
- ``finish``: the best weights saved and scored once on the held-out labelled splits (E2E's
  test set), the method's reports and the unlabelled test split's submission written, the record
  marked complete with metrics, cost and environment; training checkpoints pruned to the best one.

A failure anywhere marks the record failed with its reason (and keeps the last good checkpoint),
so the same command resumes it. The record's layout is ``results/record.py``'s.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from peftbench.errors import UserError
from peftbench.plan import Plan
from peftbench.results import record as records
from peftbench.results.record import RECORD_FILE, WEIGHTS_FILE
from peftbench.results.history import append_evaluation
from peftbench.train.distributed import barrier, speaks

CONFIG, HISTORY = "config.yaml", "history.jsonl"


@dataclass
class Session:
    """A run under way: the plan, the model and what it trains with, and its record."""

    plan: Plan
    model: object
    tokenizer: object
    pipeline: object  # peftbench.pipeline.Pipeline
    record: dict

    @property
    def folder(self) -> Path:
        return self.plan.run_dir


def execute(p: Plan) -> dict:
    """Train the planned run and write its record; return the record."""
    from peftbench.atomic import write_json_atomic

    run = setup(p)
    try:
        result = train(run)
        finish(run, result)
    except BaseException as error:
        reason = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
        records.failed(run.record, reason)
        try:
            if speaks():
                write_json_atomic(run.folder / RECORD_FILE, run.record)
        except (OSError, UserError):  # e.g. the disk is still full: the "running" record stays whole
            pass
        raise
    barrier()  # the ranks leave the run together, its record written
    return run.record


def setup(p: Plan) -> Session:
    """The model, its pipeline, and the run folder with the resolved config and a ``running`` record."""
    from omegaconf import OmegaConf

    from peftbench.atomic import write_json_atomic, write_text_atomic
    from peftbench.pipeline import add_heads, build_model, build_pipeline

    first = p.parts[0]
    model, tokenizer, fmt = build_model(p.model_cfg, first.task, p.config["seed"], first.format, p.config["task"])
    pipeline = build_pipeline(p, fmt, tokenizer)
    add_heads(p, model, pipeline)
    if speaks():  # rank 0 writes the run's files; every rank reads its checkpoints
        p.run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(p.run_dir / CONFIG, OmegaConf.to_yaml(OmegaConf.create(p.config)))
        if not (p.run_dir / "checkpoints").is_dir():  # a fresh start: an older history is from a run that left no checkpoint
            (p.run_dir / HISTORY).unlink(missing_ok=True)
    parts = [
        records.part_entry(part.task.name, part.task.benchmark, part.format, (part.task.main_split, part.task.main_metric),
                           part.data.fingerprint())
        for part in p.parts
    ]  # fmt: skip
    record = records.started(p.run_id, p.model_cfg.name, p.method.name, p.name, p.config, parts,
                             p.init_from.name if p.init_from else None, p.method.record_entry())  # fmt: skip
    if speaks():
        write_json_atomic(p.run_dir / RECORD_FILE, record)
    return Session(p, model, tokenizer, pipeline, record)


def train(run: Session):
    """Search (a method that picks its parameters by training first), attach the method, warm-start
    it where asked, count parameters, then fit (or evaluate once); returns the trainer's result."""
    from peftbench.atomic import write_json_atomic
    from peftbench.counting import parameter_counts
    from peftbench.methods.base import attach
    from peftbench.pipeline import trainer_settings
    from peftbench.train.checkpoint import Checkpoints
    from peftbench.train.loop import evaluate_once, fit
    from peftbench.train.tracking import tracking

    p, model, pipeline = run.plan, run.model, run.pipeline
    trains_head = pipeline.formats[0].trains_head
    search_s = _search(run, trains_head)
    head = attach(p.method, model, p.anatomy, run.tokenizer, train_head=trains_head)
    if p.init_from:
        _warm_start(model, head, p.init_from)
    run.record["params"] = params = parameter_counts(model, p.method, head)
    if speaks():
        write_json_atomic(run.folder / RECORD_FILE, run.record)
        print(f"run {p.run_id}: {params['trainable']:,} trainable of {params['total']:,} parameters", file=sys.stderr)
    settings = trainer_settings(p.config)
    on_evaluation = _history(run, "train")
    if not p.method.trains:
        result = evaluate_once(model, pipeline.evaluate, settings, on_evaluation)
    else:
        checkpoints = Checkpoints(run.folder / "checkpoints" / "train", keep=settings.keep_checkpoints)
        result = fit(model, pipeline.loader, pipeline.evaluate, pipeline.select, settings,
                     loss=pipeline.loss, on_evaluation=on_evaluation, checkpoints=checkpoints,
                     on_step=lambda step: p.method.after_step(model, step),
                     on_resume=lambda step: p.method.resume_at(model, step),
                     learning_rates=p.method.learning_rates(model),
                     tracking=tracking(settings.log_with, run.folder, p.run_id, p.config))  # fmt: skip
    if search_s is not None:  # the search phase is part of the method's cost
        result.cost.update(search_s=search_s, wall_s=round(result.cost["wall_s"] + search_s, 3))
    return result


def finish(run: Session, result) -> None:
    """Save the best weights (and the method in its library's format where it has one: method=peft's
    ``peft/`` folder), write the method's reports and the submission, complete the record, and prune
    the checkpoints to the best one."""
    import torch

    from peftbench.atomic import write_json_atomic
    from peftbench.environment import environment
    from peftbench.models.anatomy import head_parameter_names
    from peftbench.train.checkpoint import Checkpoints
    from peftbench.train.parallel import load_whole
    from peftbench.train.weights import save_weights

    p, model, main = run.plan, run.model, speaks()  # every rank evaluates its shard; rank 0 writes
    load_whole(model, result.best_state)
    scaffold = set(p.method.training_only(model))  # a learned mask's scores: their outcome is in the saved bits
    kept = {name: tensor for name, tensor in result.best_state.items() if name not in scaffold}
    if main:
        save_weights({**kept, **p.method.saved_buffers(model)}, run.folder / WEIGHTS_FILE)
        head = head_parameter_names(model) if run.pipeline.formats[0].trains_head else []
        p.method.save_alongside(model, head, run.folder)
    result.best = {**result.best, **_test(run, result.best_step or 0)}  # a copy: best may be last itself
    for name, data in p.method.reports(model, run.pipeline.evaluate).items():
        if main:
            write_json_atomic(run.folder / name, data)
    run.record.update(p.method.measured(model))  # after the reports: a router's usage is measured by them
    submission = None if p.multitask or not p.config["trainer"]["submission"] else _submit(run)
    if not main:
        return
    env = environment(result.cost["device"])
    records.completed(run.record, result, run.pipeline.select, submission, env)
    run.record["cost"]["torch_threads"] = torch.get_num_threads()
    run.record["cost"]["adapter_file_bytes"] = (run.folder / WEIGHTS_FILE).stat().st_size  # what a user keeps per task
    write_json_atomic(run.folder / RECORD_FILE, run.record)
    Checkpoints(run.folder / "checkpoints" / "train").prune(best=result.best_step, keep=0)
    for search in (run.folder / "checkpoints").glob("search*"):  # their outcome, the mask, is in the weights
        shutil.rmtree(search, ignore_errors=True)


def _test(run: Session, best_step: int) -> dict:
    """The held-out labelled splits (E2E's test) scored once with the best weights (loaded, those
    of step ``best_step``), as the papers report them; also a history line of phase ``test``."""
    import torch

    run.model.eval()
    with torch.no_grad():
        tested = run.pipeline.test(run.model)
    if tested and speaks():
        append_evaluation(run.folder / HISTORY, {"phase": "test", "step": best_step, "metrics": tested})
    return tested


def _history(run: Session, phase: str):
    if not speaks():
        return lambda entry: None
    return lambda entry: append_evaluation(run.folder / HISTORY, {**entry, "phase": phase})


def _search(run: Session, trains_head: bool) -> float | None:
    """A method that picks its parameters by training first (LT-SFT, pruning) does so here, with
    the run's trainer at the rate it asks for (else ``trainer.lr``), once or in rounds (iterative
    pruning), each round a phase of its own, ``search`` then ``search-1``, ``search-2``, …: its
    evaluations go to the history marked with it, its checkpoints to ``checkpoints/<phase>``, so
    that a resumed run replays the rounds it finished. Returns the search's wall seconds (None
    when the method does not search)."""
    from peftbench.models.anatomy import head_parameter_names

    if not run.plan.method.searches:
        return None
    search = _Search(run)
    run.plan.method.search(run.model, head_parameter_names(run.model) if trains_head else [], search)
    return sum(search.spent)


class _Search:
    """What ``Method.search`` trains with: called, one round of the run's trainer; ``gradients``,
    one pass over the training batches without an optimiser; ``evaluate``, the run's evaluation."""

    def __init__(self, run: Session):
        self.run = run
        self.rounds = 0
        self.spent: list[float] = []  # wall seconds of each round and pass

    def __call__(self, lr: float | None = None, on_step=None) -> None:
        from peftbench.pipeline import trainer_settings
        from peftbench.train.checkpoint import Checkpoints
        from peftbench.train.loop import fit

        p, pipeline = self.run.plan, self.run.pipeline
        settings = trainer_settings(p.config, **({} if lr is None else {"lr": lr}))
        phase = "search" if not self.rounds else f"search-{self.rounds}"  # a round's own history phase and checkpoints
        checkpoints = Checkpoints(self.run.folder / "checkpoints" / phase, keep=p.config["trainer"]["keep_checkpoints"])
        result = fit(self.run.model, pipeline.loader, pipeline.evaluate, pipeline.select, settings, loss=pipeline.loss,
                     on_evaluation=_history(self.run, phase), checkpoints=checkpoints, on_step=on_step,
                     learning_rates=p.method.learning_rates(self.run.model))  # fmt: skip
        self.rounds += 1
        self.spent.append(result.cost["wall_s"])

    def gradients(self, on_batch) -> None:
        import time

        from peftbench.pipeline import trainer_settings
        from peftbench.train.loop import gradient_pass

        started = time.perf_counter()
        pipeline = self.run.pipeline
        gradient_pass(self.run.model, pipeline.loader, pipeline.loss, trainer_settings(self.run.plan.config), on_batch)
        self.spent.append(round(time.perf_counter() - started, 3))

    def evaluate(self) -> dict:
        import torch

        self.run.model.eval()
        with torch.inference_mode():
            return self.run.pipeline.evaluate(self.run.model)


def _warm_start(model, head: list[str], source: Path) -> None:
    """Copy the method's weights (not the task head's) from the finished run ``source``."""
    import torch
    from safetensors.torch import load_file

    saved = load_file(str(source / WEIGHTS_FILE))
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


def _submit(run: Session) -> str | None:
    """With the best weights (loaded), the unlabelled test splits' predictions in the task's submission
    format, under ``<run>/submission/``; returns the file, or the folder when there are several
    (MNLI's matched, mismatched and diagnostic sets); None when the task or data has none."""
    import torch

    from peftbench.pipeline import sharded_predict, trainer_settings

    part = run.plan.parts[0]
    splits = [split for split in part.task.submission_splits
              if part.data.splits.get(split) and part.data.splits[split][0]["label"] is None]  # fmt: skip
    if part.task.submit is None or not splits:
        return None
    fmt, batch_size = run.pipeline.formats[0], trainer_settings(run.plan.config).eval_batch_size
    run.model.eval()
    written = []
    for split in splits:
        with torch.no_grad():
            predictions = sharded_predict(fmt, run.model, run.pipeline.features[0][split], batch_size)
        if speaks():  # the others hold None: rank 0 gathered the predictions
            written.append(part.task.submit(run.folder / "submission", split, part.data.splits[split], predictions))
    return str(written[0] if len(written) == 1 else run.folder / "submission") if written else None
