"""The training loop: one for every method, on accelerate.

AdamW (fused; decoupled weight decay on matrices only, not on biases and norms), linear warm-up then
linear decay, gradient accumulation, gradient clipping, mixed precision where the device has it
(bf16 autocast on GPUs that support it; fp32 on CPU), evaluation at each epoch end (and every N
steps if asked), the best evaluation kept by the task's main metric as the papers do, progress
(a bar on a terminal, a line per ``log_every`` steps in a log: ``train/progress.py``), an
experiment tracker if asked (``train/tracking.py``), and cost figures (``train/cost.py``). The
loss is read back from the device only every ``log_every`` steps, so the step loop makes no
host-device synchronisation.

With ``checkpoints``, the whole training state is saved every ``checkpoint_every_steps`` steps and
after every evaluation (``peftbench.train.checkpoint``), and a call that finds one continues from
it: parameters, optimiser, scheduler, RNG states and the position in the epoch's batch order are
restored, so on CPU the resumed run ends bit-identical to an uninterrupted one. A loss (or a
parameter) that is not finite stops training before it can reach a checkpoint
(``NonFiniteLoss``): the last checkpoint stays good.

It imports neither methods nor tasks: the run hands it the model (with its trainable parameters
marked), the training loader and an evaluation callback.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from peftbench.errors import UserError
from peftbench.train.checkpoint import Checkpoints
from peftbench.train.cost import MemorySamples, device_name
from peftbench.train.distributed import World, barrier, device_names, joined, summed, world
from peftbench.train.parallel import ddp_options, full, is_sharded, place, shard_model
from peftbench.train.progress import ProgressReport
from peftbench.train.sharding import per_rank_batch, rank_loader
from peftbench.train.tracking import Tracker, Tracking, accelerator_options, scalars

Metrics = dict[str, dict[str, float]]  # split -> metric -> value


@dataclass
class FitResult:
    best: Metrics
    last: Metrics
    best_epoch: float
    best_step: int | None
    best_state: dict  # trainable parameters at the best evaluation (CPU tensors)
    history: list[dict] = field(default_factory=list)
    cost: dict = field(default_factory=dict)


class NonFiniteLoss(UserError):
    """Training diverged: the loss or a trained parameter became NaN or infinite."""

    def __init__(self, step: int, what: str, last_good: int | None):
        kept = f"the last good checkpoint (step {last_good}) is kept" if last_good is not None else "no checkpoint was kept"
        super().__init__(
            f"training {what} not finite at step {step}; stopped, {kept}; "
            "lower trainer.lr or keep trainer.max_grad_norm on"
        )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    """accelerate's mixed_precision for a config value: no | bf16 | fp16."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "no"
    return {"fp32": "no"}.get(precision, precision)


def fit(
    model,
    train_loader,
    evaluate: Callable[[torch.nn.Module], Metrics],
    select: tuple[str, str],
    cfg,
    loss: Callable[[torch.nn.Module, dict], torch.Tensor] = lambda model, batch: model(**batch).loss,
    on_evaluation: Callable[[dict], None] = lambda entry: None,
    checkpoints: Checkpoints | None = None,
    on_step: Callable[[int], None] | None = None,
    tracking: Tracking | None = None,
    on_resume: Callable[[int], None] | None = None,
    learning_rates: dict[str, float] | None = None,
) -> FitResult:
    """Train ``model``'s trainable parameters; return the best and last evaluations and the cost.

    ``select`` is (split, metric) of the task's main metric (higher is better); ``loss(model,
    batch)`` is the format's training loss. ``train_loader``'s batch sampler must be an
    ``EpochBatches`` when ``checkpoints`` is given (its position is part of the state).
    ``on_step(step)`` is called after each optimiser step, before the gradients are cleared (a
    lottery ticket keeps the weights of step k; AdaLoRA reallocates its ranks from the gradients);
    a resumed run calls it from the step after its checkpoint, and ``on_resume(step)`` once
    with its checkpoint's step before the first batch. ``tracking`` names the tracker that gets
    the config, losses, evaluations and cost (None: no tracker). ``learning_rates``: trainable
    parameters (by name) that train at a rate of their own, each schedule scaled alike.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from transformers import get_linear_schedule_with_warmup

    device = resolve_device(cfg.device)
    ranks = world() if joined() else World()
    sharded = ranks.distributed and cfg.strategy == "fsdp"
    AcceleratorState._reset_state(reset_partial_state=True)  # accelerate keeps global state
    accelerator = Accelerator(
        mixed_precision=resolve_precision(cfg.precision, device),
        gradient_accumulation_steps=cfg.grad_accum,
        cpu=device.type == "cpu",
        **({"kwargs_handlers": ddp_options()} if ranks.distributed else {}),
        **accelerator_options(tracking),
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(accelerator.device)
    if cfg.frozen_bf16 and accelerator.mixed_precision == "bf16":
        _frozen_linear_weights_to_bf16(model)
    if cfg.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if sharded:  # before the optimiser: it must hold the shards
        model = shard_model(model, accelerator.device)
    params = [p for p in model.parameters() if p.requires_grad]
    own_rates = {id(p): learning_rates[n] for n, p in model.named_parameters() if learning_rates and n in learning_rates}
    at_run_rate = [p for p in params if id(p) not in own_rates]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in at_run_rate if p.ndim >= 2], "weight_decay": cfg.weight_decay},
            {"params": [p for p in at_run_rate if p.ndim < 2], "weight_decay": 0.0},
            *({"params": [p for p in params if own_rates.get(id(p)) == lr and (p.ndim >= 2) == matrices], "lr": lr,
               "weight_decay": cfg.weight_decay if matrices else 0.0}
              for lr in sorted(set(own_rates.values())) for matrices in (True, False)),
        ],
        lr=cfg.lr,
        fused=True,  # one kernel for the whole update, on CPU as on GPU (Trainer's default since torch 2.8)
    )
    steps_per_epoch = math.ceil(len(train_loader) / cfg.grad_accum)
    total_steps = optimizer_steps(len(train_loader), cfg)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(cfg.warmup_ratio * total_steps), total_steps)
    sampler = train_loader.batch_sampler
    if not ranks.distributed:
        model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    else:  # every rank draws the global batches and trains on its share (train/sharding.py)
        train_loader = rank_loader(train_loader, ranks, accelerator.device)
        optimizer = accelerator.prepare(optimizer)
        if not sharded:
            model = accelerator.prepare(model)  # DistributedDataParallel
    trainable = {name: p for name, p in accelerator.unwrap_model(model).named_parameters() if p.requires_grad}
    forward = torch.compile(model) if cfg.compile else model  # shares the parameters; evaluation stays eager

    state = _Progress(select)
    counters = {"step": 0, "epoch": 0, "consumed": 0, "train_s": 0.0, "elapsed_s": 0.0, "samples": 0, "tokens": 0,
                "memory_mb_total": 0.0, "memory_samples": 0}  # fmt: skip
    resumed = checkpoints.latest(_warn) if checkpoints else None
    if resumed:
        counters = _restore(resumed, trainable, optimizer, scheduler, sampler, state)
        print(f"resumed from {checkpoints.path(counters['step'])}", file=sys.stderr)
        if on_resume is not None:
            on_resume(counters["step"])
    started = time.perf_counter() - counters["elapsed_s"]
    train_seconds, samples, step, epoch = counters["train_s"], counters["samples"], counters["step"], counters["epoch"]
    running_loss = torch.zeros((), device=accelerator.device)
    tokens_before = counters["tokens"]  # of every rank, up to the checkpoint
    tokens = torch.tensor(0, dtype=torch.long, device=accelerator.device)  # this rank's since then
    memory = MemorySamples(accelerator.device, counters.get("memory_mb_total", 0.0), counters.get("memory_samples", 0))
    logged = (samples, train_seconds)  # samples and training seconds at the last log point
    tracker = Tracker(accelerator, tracking)
    progress = ProgressReport(total_steps, step, cfg.progress and ranks.main)

    def all_tokens() -> int:
        return tokens_before + round(summed(int(tokens)))

    def check_finite() -> None:
        """Raise before a diverged state is logged as fine or saved (one sync, at logs and saves;
        over several ranks one reduction, so that every rank stops alike)."""
        last_good = (checkpoints.steps() or [None])[-1] if checkpoints else None
        shards = [p.to_local() if is_sharded(p) else p for p in trainable.values()]
        bad_loss = not torch.isfinite(running_loss).item()
        bad_params = not all(torch.isfinite(p).all().item() for p in shards)
        if ranks.distributed:
            bad_loss, bad_params = summed(bad_loss) > 0, summed(bad_params) > 0
        if bad_loss:
            raise NonFiniteLoss(step, "loss is", last_good)
        if bad_params:
            raise NonFiniteLoss(step, "parameters are", last_good)

    def save_checkpoint(consumed: int) -> None:
        if checkpoints is None:
            return
        check_finite()
        tensors, document = _snapshot(trainable, optimizer, sampler, consumed)  # whole tensors, on every rank
        document.update(
            epoch=epoch, consumed=consumed, scheduler=scheduler.state_dict(), best_step=state.best_step,
            progress={"best": state.best, "last": state.last, "best_epoch": state.best_epoch, "history": state.history},
            counters={"train_s": train_seconds + time.perf_counter() - tick, "elapsed_s": time.perf_counter() - started,
                      "samples": samples, "tokens": all_tokens(), "memory_mb_total": memory.total,
                      "memory_samples": memory.count},
        )  # fmt: skip
        if ranks.main:  # one writer; the others wait so that none runs ahead of a checkpoint
            checkpoints.save(step, tensors, document)
        barrier()

    def run_evaluation(epoch: float) -> None:
        model.eval()
        with torch.inference_mode():
            metrics = evaluate(accelerator.unwrap_model(model))
        model.train()
        entry = {"epoch": round(epoch, 4), "step": step, "metrics": metrics, "elapsed_s": time.perf_counter() - started}
        state.update(entry, trainable)
        on_evaluation(entry)
        progress.evaluated(step, entry["epoch"], select[1], metrics[select[0]][select[1]])
        tracker.log(scalars("eval", metrics), step)

    def log_training() -> None:
        """The loss averaged since the last log point, the learning rate and the throughput."""
        nonlocal logged
        trained = train_seconds + time.perf_counter() - tick
        rate = (samples - logged[0]) / (trained - logged[1]) if trained > logged[1] else None
        logged = (samples, trained)
        total = summed(running_loss.item()) / ranks.size  # the ranks' weighted losses average to the batch's
        value, lr = total / (cfg.log_every * cfg.grad_accum), scheduler.get_last_lr()[0]
        progress.logged(step, value, lr, rate)
        tracker.log({"train/loss": value, "train/lr": lr, **({"train/samples_per_s": rate} if rate else {})}, step)

    try:
        model.train()
        every = cfg.checkpoint_every_steps
        while step < total_steps:
            last_evaluated = None
            tick = time.perf_counter()
            consumed = counters["consumed"] if step == counters["step"] else 0  # batches of this epoch done
            if resumed and step == counters["step"]:
                _set_rng_states(resumed[0], counters["python_rng"], counters["numpy_rng"])
            for batch in train_loader:
                consumed += 1
                if ranks.distributed:
                    batch, weight, rows = batch  # this rank's share of the global batch (train/sharding.py)
                with accelerator.accumulate(model):
                    if ranks.distributed:
                        with accelerator.autocast() if sharded else contextlib.nullcontext():
                            value = loss(forward, batch) * weight
                    else:
                        value = loss(forward, batch)
                    accelerator.backward(value)
                    if accelerator.sync_gradients:
                        if cfg.max_grad_norm:
                            accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                        optimizer.step()
                        scheduler.step()
                        if on_step is not None:  # before zero_grad: AdaLoRA's allocation reads the gradients
                            on_step(step + 1)
                        optimizer.zero_grad(set_to_none=True)
                running_loss += value.detach()
                samples += rows if ranks.distributed else batch["input_ids"].shape[0]
                tokens += batch["attention_mask"].sum() if not ranks.distributed or weight else 0
                if not accelerator.sync_gradients:
                    continue
                step += 1
                memory.sample()
                progress.step()
                if step % cfg.log_every == 0:
                    check_finite()
                    log_training()
                    running_loss.zero_()
                evaluates = bool(cfg.eval_every_steps) and step % cfg.eval_every_steps == 0
                if evaluates:
                    train_seconds += time.perf_counter() - tick
                    run_evaluation(step / steps_per_epoch)
                    tick = time.perf_counter()
                    last_evaluated = step
                if step >= total_steps:
                    break
                if (evaluates or (every and step % every == 0)) and consumed < len(train_loader):
                    save_checkpoint(consumed)  # the epoch's last batch is saved after its evaluation
            train_seconds += time.perf_counter() - tick
            epoch += 1
            if last_evaluated != step:
                run_evaluation(min(epoch, step / steps_per_epoch))
            tick = time.perf_counter()
            save_checkpoint(0)
    except BaseException:
        tracker.end()  # a failed run's tracker is closed too; what it logged is kept
        raise
    finally:
        progress.close()
    tokens = all_tokens()
    cost = {
        "wall_s": round(time.perf_counter() - started, 3),
        "train_s": round(train_seconds, 3),
        "steps": step,
        "samples": samples,
        "resumed_from_step": counters["step"] if resumed else None,
        "samples_per_s": round(samples / train_seconds, 2) if train_seconds else None,
        "tokens_per_s": round(tokens / train_seconds, 1) if train_seconds else None,
        "peak_memory_mb": memory.peak(),
        "avg_memory_mb": memory.mean(),
        "device": device_name(accelerator.device),
        "precision": accelerator.mixed_precision,
        **placement(cfg, ranks, accelerator.device),
    }
    tracker.log(scalars("cost", cost), step)
    tracker.end()
    return FitResult(state.best, state.last, state.best_epoch, state.best_step, state.best_state, state.history, cost)


def placement(cfg, ranks: World, device) -> dict:
    """Where the run trained: its processes, the rows each collates of a global batch, the
    strategy (None alone) and every rank's device."""
    return {
        "world_size": ranks.size,
        "per_rank_batch": per_rank_batch(cfg.batch_size, ranks),
        "strategy": cfg.strategy if ranks.distributed else None,
        "devices": device_names(device),
    }


def optimizer_steps(batches_per_epoch: int, cfg) -> int:
    """The optimiser steps a run takes: ``max_steps``, else ``epochs`` × the epoch's steps (one per
    ``grad_accum`` batches)."""
    return cfg.max_steps or math.ceil(batches_per_epoch / cfg.grad_accum) * cfg.epochs


def evaluate_once(
    model, evaluate: Callable[[torch.nn.Module], Metrics], cfg, on_evaluation: Callable[[dict], None] = lambda entry: None
) -> FitResult:
    """No training (a method that trains nothing: in-context learning): one evaluation on the
    run's device and precision, with the same cost figures as ``fit`` (no training samples)."""
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    precision = resolve_precision(cfg.precision, device)
    started = time.perf_counter()
    model.to(device).eval()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    with torch.inference_mode(), autocast if precision != "no" else contextlib.nullcontext():
        metrics = evaluate(model)
    memory = MemorySamples(device)
    memory.sample()  # one sample, after the evaluation: there are no steps
    entry = {"epoch": 0.0, "step": 0, "metrics": metrics, "elapsed_s": time.perf_counter() - started}
    on_evaluation(entry)
    cost = {
        "wall_s": round(entry["elapsed_s"], 3), "train_s": 0.0, "steps": 0, "samples": 0, "resumed_from_step": None,
        "samples_per_s": None, "tokens_per_s": None, "peak_memory_mb": memory.peak(), "avg_memory_mb": memory.mean(),
        "device": device_name(device), "precision": precision,
        **placement(cfg, world() if joined() else World(), device),
    }  # fmt: skip
    return FitResult(metrics, metrics, 0.0, 0, {}, [entry], cost)


def gradient_pass(model, loader, loss: Callable[[torch.nn.Module, dict], torch.Tensor], cfg, on_batch: Callable[[dict], None]) -> None:
    """One pass over ``loader`` with no optimiser, the model in evaluation mode (no dropout) on the
    run's device and precision: each batch's ``loss`` is back-propagated, then ``on_batch(batch)``
    reads (and clears) the gradients it wants. Nothing is updated. Michel et al.'s head
    importance (methods/head_pruning.py) is estimated so, on the training data."""
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    model.to(device).eval()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    for batch in loader:
        batch = {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}
        with autocast if precision != "no" else contextlib.nullcontext():
            value = loss(model, batch)
        value.backward()
        on_batch(batch)


def _frozen_linear_weights_to_bf16(model) -> None:
    """Halve the frozen backbone's weight memory: bf16 autocast multiplies in bf16 anyway, so
    storing frozen Linear weights in bf16 changes no product, and trained parameters stay fp32."""
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and not module.weight.requires_grad:
            module.weight.data = module.weight.data.to(torch.bfloat16)


def _warn(problem) -> None:
    print(f"warning: skipping checkpoint {problem.path}: {problem.reason}", file=sys.stderr)


def _snapshot(trainable: dict, optimizer, sampler, consumed: int) -> tuple[dict, dict]:
    """The training state as (tensors, JSON-able document); FSDP shards gathered whole (on every
    rank: a collective), so that any world size resumes from it."""
    import numpy as np

    tensors = {f"param.{name}": full(p.detach()) for name, p in trainable.items()}
    optimizer_state = optimizer.state_dict()
    for index, values in optimizer_state["state"].items():
        tensors.update({f"optimizer.{index}.{key}": full(value) for key, value in values.items() if torch.is_tensor(value)})
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    sampler_state = sampler.state_dict(consumed)
    tensors["sampler.generator"] = sampler_state.pop("generator")
    python_state, numpy_state = random.getstate(), np.random.get_state()
    # The Mersenne Twister words go with the tensors, so that state.json stays small and quick to
    # check (``peftbench table`` checks every run's checkpoints).
    tensors["rng.python"] = torch.tensor(python_state[1], dtype=torch.int64)
    tensors["rng.numpy"] = torch.from_numpy(numpy_state[1].astype(np.int64))
    document = {
        "optimizer_groups": optimizer_state["param_groups"],
        "sampler": sampler_state,
        "python_rng": [python_state[0], python_state[2]],
        "numpy_rng": [numpy_state[0], *numpy_state[2:]],
    }
    return tensors, document


def _restore(resumed, trainable: dict, optimizer, scheduler, sampler, progress: "_Progress") -> dict:
    """Put a checkpoint's state back; returns its counters (RNGs are set when training resumes)."""
    tensors, document, best = resumed
    with torch.no_grad():
        for name, p in trainable.items():
            p.copy_(place(tensors[f"param.{name}"], p))
    groups = [{**group, "betas": tuple(group["betas"])} if "betas" in group else group for group in document["optimizer_groups"]]
    in_order = [p for group in optimizer.param_groups for p in group["params"]]  # the state's indices
    per_param: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            p = in_order[int(index)]
            per_param.setdefault(int(index), {})[name] = place(value, p) if value.shape == p.shape else value
    optimizer.load_state_dict({"state": per_param, "param_groups": groups})
    scheduler.load_state_dict(document["scheduler"])
    sampler.load_state_dict({**document["sampler"], "generator": tensors["sampler.generator"]})
    saved = document["progress"]
    progress.best, progress.last, progress.best_epoch = saved["best"], saved["last"], saved["best_epoch"]
    progress.history, progress.best_step = saved["history"], document["best_step"]
    progress.best_state = {name: best[f"param.{name}"].clone() for name in trainable}
    return {
        **document["counters"], "step": document["step"], "epoch": document["epoch"], "consumed": document["consumed"],
        "python_rng": document["python_rng"], "numpy_rng": document["numpy_rng"],
    }  # fmt: skip


def _set_rng_states(tensors: dict, python_rng: list, numpy_rng: list) -> None:
    import numpy as np

    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(tensors["rng.cuda"]))
    random.setstate((python_rng[0], tuple(tensors["rng.python"].tolist()), python_rng[1]))
    np.random.set_state((numpy_rng[0], tensors["rng.numpy"].numpy().astype(np.uint32), *numpy_rng[1:]))


class _Progress:
    """The evaluations so far, and a copy of the trainable weights at the best one."""

    def __init__(self, select: tuple[str, str]):
        self.split, self.metric = select
        self.best: Metrics = {}
        self.last: Metrics = {}
        self.best_epoch = 0.0
        self.best_step: int | None = None
        self.best_state: dict = {}
        self.history: list[dict] = []

    def update(self, entry: dict, trainable: dict) -> None:
        self.history.append(entry)
        self.last = entry["metrics"]
        score = self.last[self.split][self.metric]
        best = self.best.get(self.split, {}).get(self.metric)
        if best is None or score > best or (math.isnan(best) and not math.isnan(score)):
            self.best, self.best_epoch, self.best_step = self.last, entry["epoch"], entry["step"]
            self.best_state = {name: full(p.detach()).to("cpu", copy=True).contiguous() for name, p in trainable.items()}
