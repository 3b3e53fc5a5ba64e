"""What a planned run trains and evaluates with: its model in the task's format, and its pipeline.

``build_model`` makes the backbone as every run makes it (seeded first, with a fresh task head
where the format has one). ``build_pipeline`` turns the plan's rows into features with each
task's format (after the method's prompt rewrite, for in-context learning; read from the features
cache, ``formats/cache.py``, when a run made them before), the training batches
(length-grouped; for several tasks, temperature-sampled one-task batches), the evaluation
callback (metrics per split, or per ``task/split`` and their ``average`` for a multi-task run) and
the loss (the format's, plus the method's penalty), and the scoring of the held-out labelled
splits (E2E's test set) once, with the best weights, as the papers report them (in the method's
``testing`` context: MAD-X's target language adapter swapped in). The trainer
receives the first four and nothing else. A multi-task run on a model with a task head gives
each task its own (``add_heads``), and each batch and evaluation selects its task's.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

from peftbench.train.distributed import decided

AVERAGE = "average"  # a multi-task run's metrics: the mean of its tasks' main metrics


@dataclass
class Pipeline:
    """What a run trains and evaluates with, for one task or several."""

    formats: list  # per part: its Format
    features: list[dict]  # per part: split -> features
    loader: object | None  # None when the method trains nothing
    evaluate: Callable  # model -> {split: {metric: value}} (multi-task: "<task>/<split>" and "average")
    select: tuple[str, str]  # the (split, metric) the best evaluation is chosen by
    loss: Callable  # (model, batch) -> loss
    test: Callable  # model -> the same for the held-out labelled splits (E2E's test), scored once at the end


def trainer_settings(config: dict, **changes) -> SimpleNamespace:
    """The run's ``trainer`` config as the trainer reads it (attributes), with ``changes`` (a
    search phase's own ``lr``)."""
    return SimpleNamespace(**{**config["trainer"], **changes})


def build_model(model_cfg, task, seed: int, format_name: str, task_cfg: dict):
    """The backbone in the run's format (with a fresh task head where the format has one), as
    every run builds it: seeded first, so the head and a tiny random model come out the same
    each time. Returns (model, tokenizer, format)."""
    from accelerate.utils import set_seed  # transformers' twin imports its Trainer and peft: 2.5 s

    from peftbench.formats import make_format
    from peftbench.models.load import load_tokenizer

    set_seed(seed)
    tokenizer = load_tokenizer(model_cfg)
    fmt = make_format(format_name, task, tokenizer, {**task_cfg, "family": model_cfg.family})
    return fmt.load_model(model_cfg), tokenizer, fmt


def build_pipeline(p, fmt, tokenizer) -> Pipeline:
    """Features, training batches, evaluation and loss of the plan ``p``'s task (or tasks: batches
    drawn by temperature sampling, each with its own task's format; metrics per task and their
    mean). ``fmt`` is the first task's format, as ``build_model`` made it."""
    from peftbench.formats import cache as feature_cache
    from peftbench.formats import make_format
    from peftbench.models.heads import select_head
    from peftbench.train.batching import train_loader
    from peftbench.train.sampling import multitask_loader

    trainer, seed, method = trainer_settings(p.config), p.config["seed"], p.method
    options = {**p.config["task"], "family": p.model_cfg.family}
    formats = [fmt] + [make_format(part.format, part.task, tokenizer, options) for part in p.parts[1:]]
    features = []
    for part, f in zip(p.parts, formats):
        train_rows = part.data.splits[part.task.train_split]
        f.task = method.prompt_task(part.task, train_rows, seed, tokenizer, f.max_length)
        cached = p.config["data"]["cache"] and f.task is part.task  # a rewritten prompt is this run's own
        features.append({
            split: feature_cache.encode(f, rows, cached)
            for split, rows in part.data.splits.items()
            if method.trains or split != part.task.train_split  # nothing trains: the rows only demonstrate
        })  # fmt: skip
    train = [f[part.task.train_split] for part, f in zip(p.parts, features)] if method.trains else []
    loader = None
    if train and p.multitask:
        loader = multitask_loader(formats, train, trainer.batch_size, seed, p.config["task"]["temperature"],
                                  trainer.group_by_length)  # fmt: skip
    elif train:
        loader = train_loader(train[0], fmt, trainer.batch_size, seed, trainer.group_by_length)

    def use_task(model, task: str) -> None:
        method.select_task(task)
        if p.multitask:
            select_head(model, task)

    def scores(model, splits_of: Callable) -> dict:
        metrics = {}
        for part, f, feats in zip(p.parts, formats, features):
            use_task(model, part.task.name)
            for split in splits_of(part):
                with method.evaluating(model):
                    predictions = sharded_predict(f, model, feats[split], trainer.eval_batch_size)
                if predictions is not None:  # rank 0 (or the only process) scores
                    metrics[f"{part.task.name}/{split}" if p.multitask else split] = part.task.score(
                        predictions, part.data.splits[split]
                    )
        return decided(lambda: metrics)  # every rank goes on with rank 0's metrics

    def evaluate(model) -> dict:
        metrics = scores(model, lambda part: part.task.eval_splits)
        if p.multitask:
            mains = [metrics[f"{part.task.name}/{part.task.main_split}"][part.task.main_metric] for part in p.parts]
            metrics[AVERAGE] = {"score": sum(mains) / len(mains)}
        return metrics

    def test(model) -> dict:
        with method.testing(model):
            return scores(model, held_out)

    def task_loss(model, batch: dict):
        if not p.multitask:
            return fmt.loss(model, batch)
        use_task(model, p.parts[batch["task"]].task.name)
        return formats[batch["task"]].loss(model, {k: v for k, v in batch.items() if k != "task"})

    def loss(model, batch: dict):
        value = task_loss(model, batch)
        penalty = method.penalty(model)
        return value if penalty is None else value + penalty

    first = p.parts[0].task
    select = (AVERAGE, "score") if p.multitask else (first.main_split, first.main_metric)
    return Pipeline(formats, features, loader, evaluate, select, loss, test)


def sharded_predict(fmt, model, features: list[dict], batch_size: int) -> list | None:
    """``fmt.predict`` over the ranks: each predicts its contiguous shard of ``features``, rank 0
    gets them all back in order (no row twice, none padding), the others None; alone, just
    ``fmt.predict``. An FSDP model's shards are padded to one length (its forward is a collective
    every rank must join as often) and the padding dropped when gathered."""
    from peftbench.train.distributed import gathered, shard
    from peftbench.train.parallel import is_sharded

    mine = shard(features, even=is_sharded(next(model.parameters())))
    return gathered(fmt.predict(model, mine, batch_size), len(features))


def add_heads(p, model, pipeline: Pipeline) -> None:
    """A multi-task run whose formats train a head: a head per task (``peftbench.models.heads``),
    the first task's the one ``build_model`` made; the pipeline selects each batch's task's."""
    from peftbench.models.heads import add_task_heads

    if p.multitask and pipeline.formats[0].trains_head:
        add_task_heads(model, {part.task.name: f.head_size(part.task) for part, f in zip(p.parts, pipeline.formats)})


def held_out(part) -> list[str]:
    """The task's held-out splits that this run's data holds with labels (E2E's test references;
    GLUE's test labels are the server's, so its test splits are not among them)."""
    splits = part.data.splits
    return [split for split in part.task.test_splits if splits.get(split) and splits[split][0]["label"] is not None]
