"""The training loop: one for every method, on accelerate.

AdamW (decoupled weight decay on matrices only, not on biases and norms), linear warm-up then
linear decay, gradient accumulation, gradient clipping, mixed precision where the device has it
(bf16 autocast on GPUs that support it; fp32 on CPU), evaluation at each epoch end (and every N
steps if asked), the best evaluation kept by the task's main metric as the papers do, a progress
bar, and cost figures. The loss is read back from the device only every ``log_every`` steps, so
the step loop makes no host-device synchronisation.

It imports neither methods nor tasks: the run hands it the model (with its trainable parameters
marked), the training loader and an evaluation callback.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from peftbench.train.cost import device_name, peak_memory_mb

Metrics = dict[str, dict[str, float]]  # split -> metric -> value


@dataclass
class FitResult:
    best: Metrics
    last: Metrics
    best_epoch: float
    best_state: dict  # trainable parameters at the best evaluation (CPU tensors)
    history: list[dict] = field(default_factory=list)
    cost: dict = field(default_factory=dict)


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
) -> FitResult:
    """Train ``model``'s trainable parameters; return the best and last evaluations and the cost.

    ``select`` is (split, metric) of the task's main metric (higher is better); ``loss(model,
    batch)`` is the format's training loss.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    device = resolve_device(cfg.device)
    AcceleratorState._reset_state(reset_partial_state=True)  # accelerate keeps global state
    accelerator = Accelerator(
        mixed_precision=resolve_precision(cfg.precision, device),
        gradient_accumulation_steps=cfg.grad_accum,
        cpu=device.type == "cpu",
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(accelerator.device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        fused=accelerator.device.type == "cuda",
    )
    steps_per_epoch = math.ceil(len(train_loader) / cfg.grad_accum)
    total_steps = cfg.max_steps or steps_per_epoch * cfg.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, round(cfg.warmup_ratio * total_steps), total_steps)
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)

    state = _Progress(select)
    started = time.perf_counter()
    train_seconds, samples, step = 0.0, 0, 0
    running_loss = torch.zeros((), device=accelerator.device)
    tokens = torch.zeros((), dtype=torch.long, device=accelerator.device)
    bar = tqdm(total=total_steps, disable=not cfg.progress, desc="train", unit="step", dynamic_ncols=True)

    def run_evaluation(epoch: float) -> None:
        model.eval()
        with torch.inference_mode():
            metrics = evaluate(accelerator.unwrap_model(model))
        model.train()
        entry = {"epoch": round(epoch, 4), "step": step, "metrics": metrics, "elapsed_s": time.perf_counter() - started}
        state.update(entry, accelerator.unwrap_model(model))
        on_evaluation(entry)
        bar.set_postfix_str(f"{select[1]}={metrics[select[0]][select[1]]:.4f}")

    model.train()
    epoch = 0
    while step < total_steps:
        last_evaluated = None
        tick = time.perf_counter()
        for batch in train_loader:
            with accelerator.accumulate(model):
                value = loss(model, batch)
                accelerator.backward(value)
                if accelerator.sync_gradients:
                    if cfg.max_grad_norm:
                        accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
            running_loss += value.detach()
            samples += batch["input_ids"].shape[0]
            tokens += batch["attention_mask"].sum()
            if not accelerator.sync_gradients:
                continue
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0:
                bar.set_postfix_str(f"loss={running_loss.item() / (cfg.log_every * cfg.grad_accum):.4f}")
                running_loss.zero_()
            if cfg.eval_every_steps and step % cfg.eval_every_steps == 0:
                train_seconds += time.perf_counter() - tick
                run_evaluation(step / steps_per_epoch)
                tick = time.perf_counter()
                last_evaluated = step
            if step >= total_steps:
                break
        train_seconds += time.perf_counter() - tick
        epoch += 1
        if last_evaluated != step:
            run_evaluation(min(epoch, step / steps_per_epoch))
    bar.close()
    tokens = int(tokens)
    cost = {
        "wall_s": round(time.perf_counter() - started, 3),
        "train_s": round(train_seconds, 3),
        "steps": step,
        "samples": samples,
        "samples_per_s": round(samples / train_seconds, 2) if train_seconds else None,
        "tokens_per_s": round(tokens / train_seconds, 1) if train_seconds else None,
        "peak_memory_mb": round(peak_memory_mb(accelerator.device), 1),
        "device": device_name(accelerator.device),
        "precision": accelerator.mixed_precision,
    }
    return FitResult(state.best, state.last, state.best_epoch, state.best_state, state.history, cost)


class _Progress:
    """The evaluations so far, and a copy of the trainable weights at the best one."""

    def __init__(self, select: tuple[str, str]):
        self.split, self.metric = select
        self.best: Metrics = {}
        self.last: Metrics = {}
        self.best_epoch = 0.0
        self.best_state: dict = {}
        self.history: list[dict] = []

    def update(self, entry: dict, model) -> None:
        from peftbench.train.weights import trainable_state

        self.history.append(entry)
        self.last = entry["metrics"]
        score = self.last[self.split][self.metric]
        best = self.best.get(self.split, {}).get(self.metric)
        if best is None or score > best or (math.isnan(best) and not math.isnan(score)):
            self.best, self.best_epoch = self.last, entry["epoch"]
            self.best_state = trainable_state(model)
