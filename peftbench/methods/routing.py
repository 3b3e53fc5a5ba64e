"""Routing over modules: what the three routing methods share.

The routing section of the survey deck (seed 004, "Introduction to Routing" to "Routing - Hybrids",
after Ruder, Pfeiffer & Vulić's EMNLP 2022 tutorial "Modular and Parameter-Efficient Fine-Tuning for
NLP Models"): an inventory of modules F = {f_φ1, …, f_φ|F|} at a site of the network, and a
routing function r(·) → α_i that decides which of them process an input and how their outputs
combine. The three methods differ only in r:

- fixed routing (``task_routing``): r(task_id) → the task's module, decided a priori;
- hard learned routing (``gumbel_routing``): per-task, per-site binary allocations learned through
  a Gumbel-sigmoid relaxation (Polytropon, Ponti et al. 2022);
- soft learned routing (``moe_adapters``): a learned router's distribution over the modules per
  token or per example, with top-k selection (mixture of experts).

The modules are those of an existing method (``method.module``): the bottleneck adapters
(``houlsby``, ``pfeiffer``, ``parallel``, ``lin``) or ``lora``, with that method's preset and
``method.settings`` over it (``+method.settings.reduction_factor=16``). The module method is put on
the model as it always is; then every module it placed (an adapter's ``Bottleneck``, a projection's
LoRA) is replaced by a ``Routed`` site holding K independently initialised copies (``experts``)
and the routing method's router. A routed adapter returns the routed combination of its experts'
outputs where the single adapter returned its own (the site adds its residual as before); a routed
LoRA projection returns W₀x plus the routed combination of its LoRAs' updates (α/r)·B_j A_j x,
computing W₀x once. What the module method trains outside its modules (Houlsby's layer norms, an
invertible adapter) it still trains, shared by all experts.

Every run writes, with its best weights, each site's module usage per task into its record
(``routing``: per task, per site, the share of each module and the entropy of those shares in nats,
log K when the modules are used evenly, 0 when one takes everything: module collapse), which
``peftbench plot routing RUN`` draws.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from peftbench.errors import UserError
from peftbench.methods import build_method, registered
from peftbench.methods.adapters import ADAPTER, Bottleneck
from peftbench.methods.base import Method, MethodConfig, require
from peftbench.methods.lora import LoRALayer
from peftbench.methods.wrapped import WrappedProjection, replace_module
from peftbench.models.anatomy import blocks, locate

EPS = 1e-12  # Polytropon's guard against dividing by an empty allocation (src/adapters.py)


def routable() -> list[str]:
    """The methods whose modules can be routed: the bottleneck adapters and LoRA."""
    return sorted([name for name, cls in registered().items() if cls.fusion_stage] + ["lora"])


@dataclass
class RoutingConfig(MethodConfig):
    module: str = "pfeiffer"
    settings: dict[str, Any] = field(default_factory=dict)  # the module's settings over its preset
    module_config: dict[str, Any] = field(default_factory=dict)  # its preset with them (peftbench.config.with_parts)

    def check(self) -> None:
        modules = routable()
        require(self.module in modules, f"method.module must be one of {', '.join(modules)}, got '{self.module}'")
        if self.module_config.get("name") != self.module:
            raise ValueError("a routing method is built from peftbench.config.with_parts(node), which reads the "
                             "module's preset")  # fmt: skip
        try:
            build_method(self.module_config)
        except UserError as error:  # the module's own check names its fields as method.<field>
            raise UserError(str(error).replace("method.", "method.settings.")) from None


class LoRAExpert(LoRALayer):
    """One LoRA of a routed projection: its update (α/r)·B A x alone. The routed projection runs the
    frozen projection once for all its experts, so the expert does not hold it (``base`` is None)."""

    def __init__(self, layer: LoRALayer, config):
        super().__init__(layer.base, config.r, config.alpha, config.dropout, layer.parts, layer.count, config.init)
        self.base = None

    forward = LoRALayer.update


class RoutingState:
    """What every site of one model reads: the current task (``select_task``), the batch's
    attention mask and token ids (a forward pre-hook on the model), each site's load-balancing term
    of the last training forward pass (by site, so that a forward pass recomputed for activation
    checkpointing replaces, not adds), and, while ``recording``, the routing statistics per task."""

    def __init__(self):
        self.task = 0
        self.mask = None
        self.input_ids = None
        self.balance: dict[int, torch.Tensor] = {}  # site -> its load-balancing term of the last training forward
        self.recording = False
        self.counts: dict[tuple[int, int], torch.Tensor] = {}  # (task, site) -> tokens per module
        self.tokens: dict[int, dict[int, torch.Tensor]] = {}  # site -> module -> counts per token id

    def capture(self, module, args, kwargs) -> None:
        self.mask, self.input_ids = kwargs.get("attention_mask"), kwargs.get("input_ids")

    def fitting(self, tensor, x: torch.Tensor, stack: int):
        """``tensor`` (the mask or the ids) where it is the one of ``x``'s tokens: a site of the
        input's stack (not a decoder reading other tokens) with the same batch and length."""
        if tensor is None or stack != 0 or tuple(tensor.shape) != tuple(x.shape[:2]):
            return None
        return tensor

    def record(self, site: int, chosen: torch.Tensor, experts: int, x: torch.Tensor, stack: int) -> None:
        """Count, per module, the tokens (``chosen``: batch × length) or examples (batch) whose top
        choice it is, padding left out; per token id too, where the site reads the input tokens."""
        tokens = chosen.dim() == 2
        mask = self.fitting(self.mask, x, stack) if tokens else None
        keep = mask.bool() if mask is not None else torch.ones_like(chosen, dtype=torch.bool)
        key = (self.task, site)
        self.counts[key] = self.counts.get(key, 0) + torch.bincount(chosen[keep], minlength=experts).cpu()
        ids = self.fitting(self.input_ids, x, stack) if tokens else None
        if ids is None:
            return
        per_module = self.tokens.setdefault(site, {})
        for j in range(experts):
            picked = ids[keep & (chosen == j)]
            if picked.numel():
                per_module[j] = _added(per_module.get(j), torch.bincount(picked.cpu()))


def _added(a: torch.Tensor | None, b: torch.Tensor) -> torch.Tensor:
    """Two count vectors added, the shorter padded with zeros."""
    if a is None:
        return b
    size = max(len(a), len(b))
    return nn.functional.pad(a, (0, size - len(a))) + nn.functional.pad(b, (0, size - len(b)))


class Routed(nn.Module):
    """One site's K experts (modules of one kind) and its router; a subclass's ``forward`` returns
    their routed combination (``output_mixture`` or ``parameter_mixture``). ``site`` numbers it
    among the model's sites, ``stack`` is the index of its stack (0: the one reading the input
    tokens)."""

    def __init__(self, experts: list[nn.Module], state: RoutingState, site: int, stack: int):
        super().__init__()
        self.experts = nn.ModuleList(experts)
        self.state, self.site, self.stack = state, site, stack

    def output_mixture(self, weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Σ_j w_j f(x; φ_j), weights (..., K) over x's leading dimensions; an expert no token uses
        is not run (the deck's MoE sum, seed 004 "Soft Learned Routing")."""
        used = [j for j in range(len(self.experts)) if bool(weights[..., j].ne(0).any())]
        return sum(weights[..., j].unsqueeze(-1).to(x.dtype) * self.experts[j](x) for j in used)

    def parameter_mixture(self, weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """f(x; Σ_j w_j φ_j), weights (K,): one module whose parameters are the weighted sum of the
        experts' (Polytropon's combination of skills, Ponti et al. 2022 §3)."""
        names = [name for name, _ in self.experts[0].named_parameters()]
        stacked = {name: torch.stack([expert.get_parameter(name) for expert in self.experts]) for name in names}
        mixed = {name: torch.tensordot(weights.to(value.dtype), value, dims=1) for name, value in stacked.items()}
        return torch.func.functional_call(self.experts[0], mixed, (x,))


class RoutedProjection(WrappedProjection):
    """A projection whose LoRAs are routed: W₀x + the routed combination of (α/r)·B_j A_j x."""

    def __init__(self, base: nn.Module, routed: Routed, parts=None, count: int = 1):
        super().__init__(base, parts, count)
        self.routed = routed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.routed(x)


class RoutingMethod(Method):
    """A method routing over K modules of ``method.module`` at every site that method puts one.

    Subclasses give ``count``: how many modules a site holds, ``routed(experts, site, stack,
    width)``: the site's ``Routed`` module (``width``: the width of the site's input), and
    ``usage``: the share of each module per task and site, for the record."""

    composable = False  # it rebuilds another method's modules (method.module)

    def module_method(self) -> Method:
        module = build_method(self.config.module_config)
        module.tasks = self.tasks
        return module

    def check_model(self, anatomy, arch_config) -> None:
        super().check_model(anatomy, arch_config)
        self.module_method().check_model(anatomy, arch_config)

    @property
    def count(self) -> int:
        """The modules at each site."""
        raise NotImplementedError

    def expert_names(self) -> list[str]:
        """How the record names the modules (task routing: by task)."""
        return [str(j) for j in range(self.count)]

    def routed(self, experts: list[nn.Module], site: int, stack: int, width: int) -> Routed:
        raise NotImplementedError

    def apply(self, model, anatomy) -> None:
        self.state = RoutingState()
        model.register_forward_pre_hook(self.state.capture, with_kwargs=True)
        self._module = self.module_method()
        labels = _site_labels(model, anatomy, getattr(self._module.config, "targets", anatomy.roles()))
        self._module.apply(model, anatomy)
        self.sites: list[str] = []
        for path, module in list(model.named_modules()):
            if isinstance(module, Bottleneck) and path.endswith(ADAPTER):
                self._route_adapter(model, path, module, labels)
            elif isinstance(module, LoRALayer):
                self._route_lora(model, path, module, labels)
        for routed in self._routed(model).values():
            routed.requires_grad_(True)

    def _route_adapter(self, model, path: str, adapter: Bottleneck, labels: dict) -> None:
        experts = []
        for _ in range(self.count):
            expert = copy.deepcopy(adapter)
            if next(adapter.parameters()).device.type != "meta":
                expert.reset(self._module.config.init)
            experts.append(expert)
        label, stack = labels[path.rpartition(".")[0]]
        replace_module(model, path, self.routed(experts, len(self.sites), stack, adapter.down.in_features))
        self.sites.append(label)

    def _route_lora(self, model, path: str, layer: LoRALayer, labels: dict) -> None:
        experts = [LoRAExpert(layer, self._module.config) for _ in range(self.count)]
        label, stack = labels[path]
        routed = self.routed(experts, len(self.sites), stack, layer.in_features)
        replace_module(model, path, RoutedProjection(layer.base, routed, layer.parts, layer.count))
        self.sites.append(label)

    def _routed(self, model) -> dict[str, Routed]:
        return {path: module for path, module in model.named_modules() if isinstance(module, Routed)}

    def parameter_names(self, model) -> list[str]:
        routed = [f"{path}." for path in self._routed(model)]
        own = [name for name, _ in model.named_parameters() if name.startswith(tuple(routed))]
        return list(dict.fromkeys(own + self._module.parameter_names(model)))

    def select_task(self, name: str) -> None:
        if name not in self.tasks:
            raise UserError(f"method '{self.name}' routes the tasks {', '.join(self.tasks)}, not '{name}'")
        self.state.task = self.tasks.index(name)

    def usage(self, model, evaluate) -> dict[str, list[list[float]]]:
        """Per task, per site: the share of each module (rows sum to 1, or to 0 where none is used);
        ``evaluate(model)`` runs the run's evaluation, for a router that needs data."""
        raise NotImplementedError

    def reports(self, model, evaluate) -> dict:
        """The module usage with the best weights, kept for the record (``measured``)."""
        usage = self.usage(model, evaluate)
        self._summary = {
            "module": self.config.module,
            "module_config": dict(self.config.module_config),  # what AdapterFusion rebuilds the modules from (MT-A)
            "modules": self.expert_names(),
            "sites": list(self.sites),
            "usage": usage,
            "entropy": {task: [entropy(row) for row in rows] for task, rows in usage.items()},
        }
        return {}

    def measured(self, model) -> dict:
        return {"routing": self._summary}


def entropy(shares: list[float]) -> float:
    """−Σ p log p in nats over the shares (0 log 0 = 0); 0 for no use at all."""
    total = sum(shares)
    return 0.0 - sum(p / total * math.log(p / total) for p in shares if p > 0) if total > 0 else 0.0


def _site_labels(model, anatomy, roles) -> dict[str, tuple[str, int]]:
    """Every module path a method may adapt → (its label, its stack's index): ``layer 3 ffn.out``
    for the module of a role among ``roles`` (``layer 3 attn.q+attn.v`` for a fused projection),
    ``layer 3 block`` for a block (an adapter on its output); in an encoder-decoder, ``encoder …``
    and ``decoder …``."""
    stacks = {
        block: next(i for i, stack in enumerate(anatomy.stacks) if f".{stack.path}." in f".{block}.")
        for block in blocks(model, anatomy)
    }

    def label(block: str, where: str) -> tuple[str, int]:
        stack = stacks[block]
        prefix = f"{anatomy.stacks[stack].path.split('.')[0]} " if len(anatomy.stacks) > 1 else ""
        return f"{prefix}layer {block.rsplit('.', 1)[1]} {where}", stack

    labels = {block: label(block, "block") for block in stacks}
    at: dict[str, list[str]] = {}
    for role in sorted(set(roles)):
        for path, _ in locate(model, anatomy, role):
            at.setdefault(path, []).append(role)
    for path, names in at.items():
        block = max((b for b in stacks if path.startswith(b + ".")), key=len)
        labels[path] = label(block, "+".join(names))
    return labels
