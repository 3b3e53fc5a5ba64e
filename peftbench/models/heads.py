"""One task head per task: a multi-task run on a model whose formats train a head (encoders).

A single-task run trains the fresh sequence-classification head its format puts on the backbone.
A multi-task run on such a model gives every task a head of its own, as multi-task BERT does
(Stickland & Murray 2019, "BERT and PALs", §2: shared BERT, "a task-specific output layer" per
task; AdapterFusion's MT-A setting, Pfeiffer et al. 2021 §2.2.2): each head module of the model
(the modules outside the base model: BERT's ``classifier``, RoBERTa's two-layer head, DeBERTa's
``pooler`` and ``classifier``, GPT-2's ``score``) becomes a ``PerTask`` module holding one copy per
task, with that task's number of outputs (``Format.head_size``: its classes, one for regression
and for multiple choice). The first task keeps the head the model was built with; the others are
those of a twin of the model's class and config (with the task's outputs) built on the meta
device, initialised by the model's own ``_init_weights`` as ``from_config`` initialises a head.

``select_head(model, task)`` switches every head to the task's, and the loss fields HF's
forward reads (``num_labels``, ``problem_type``) with it. The heads' parameters stay outside the
base model, so the run trains, saves and counts them as the head (``head_parameter_names``):
``classifier.heads.<task>.weight``.
"""

from __future__ import annotations

import copy
import functools

import torch
from torch import nn

from peftbench.models.load import head_settings


class PerTask(nn.Module):
    """A head module with one copy per task; runs the selected task's."""

    def __init__(self, heads: dict[str, nn.Module]):
        super().__init__()
        self.heads = nn.ModuleDict(heads)
        self.current = next(iter(heads))

    def forward(self, *args, **kwargs):
        return self.heads[self.current](*args, **kwargs)


def add_task_heads(model, sizes: dict[str, int]) -> None:
    """Give every task of ``sizes`` (task → its head's outputs, the first task's head being the
    model's own) a head of its own, selected with ``select_head``."""
    names = _head_modules(model)
    first, *others = sizes
    copies = {name: {first: getattr(model, name)} for name in names}
    for task in others:
        config = copy.deepcopy(model.config)
        for key, value in head_settings(sizes[task]).items():
            setattr(config, key, value)
        with torch.device("meta"):
            twin = type(model)(config)
        for name in names:
            like = next(getattr(model, name).parameters())
            head = getattr(twin, name).to_empty(device=like.device).to(like.dtype)
            with torch.no_grad():
                head.apply(twin._init_weights)
            copies[name][task] = head
    heads = [PerTask(copies[name]) for name in names]
    for name, head in zip(names, heads):
        setattr(model, name, head)
    model.register_forward_pre_hook(functools.partial(_head_settings, selected=heads[0], sizes=dict(sizes)))


def select_head(model, task: str) -> None:
    """Make ``task``'s head the one every ``PerTask`` module of ``model`` runs (none: nothing to do)."""
    for module in model.modules():
        if isinstance(module, PerTask):
            module.current = task


def _head_modules(model) -> list[str]:
    """The model's children that hold head parameters: every child with parameters but the base model."""
    base = getattr(model, "base_model_prefix", "")
    return [name for name, child in model.named_children() if name != base and any(True for _ in child.parameters())]


def _head_settings(model, args, selected: PerTask, sizes: dict[str, int]) -> None:
    """Forward pre-hook: the loss fields of the selected task's head (its outputs, regression or not)."""
    settings = head_settings(sizes[selected.current])
    for key, value in settings.items():
        setattr(model.config, key, value)
    if hasattr(model, "num_labels"):
        model.num_labels = settings["num_labels"]
