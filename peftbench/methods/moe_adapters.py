"""Mixture-of-experts modules: soft learned routing by a router over K modules.

Seed 004, "Soft Learned Routing": the router learns a distribution over the modules,
p(F) = r_ρ(·). Here, at every site of the module method (``method.module``, K = ``method.experts``
copies), a linear router W_r (no bias) maps the site's input to p = softmax(x W_r) over the K
modules, and the site's output combines the modules as the deck writes it (``method.router``):

- ``soft`` — every module, weighted (mixture of experts): f'(x) = Σ_j p_j f(x; φ_j);
- ``top_k`` — only the k = ``method.k`` most probable, their probabilities renormalised over the
  chosen k (the deck's r(φ_j) / Σ r(φ); Shazeer et al. 2017's Softmax(KeepTopK(·, k))):
  f'(x) = Σ_{j ∈ top_k(p)} p_j / Σ_{i ∈ top_k(p)} p_i · f(x; φ_j);
- ``top_1`` — the most probable module alone (Switch Transformer, Fedus et al. 2021, Eq. 2:
  y = p_i(x) E_i(x)): it is scaled by its gate value p_i, which is how the task loss reaches the
  router; the deck's top-1 formula, Σ_j f(x; φ_j) 1_j(argmax p), leaves the gate out, and so would
  ``top_k`` with k = 1, whose renormalised weight is always 1.

``method.level``: ``token`` routes every token on its own hidden state (the deck's "Token Level
Routing"); ``example`` routes all tokens of an example to the same modules, from the mean of the
site's input over the example's tokens, padding left out (the deck's "Example Level Routing" on
pooled token representations; routing on metadata alone is ``task_routing``).

``method.hybrid=true`` (the deck's "Routing - Hybrids": "combine the concepts of fixed and learned
routing", learned routing (MoE) for heterogeneous data beside fixed routing on metadata such as
the language id): each site also holds one module per task, and the current task's module, chosen
by the task id (fixed routing, r(task_id) → φ_task, as ``task_routing``), runs beside the learned
combination of the K shared modules, their outputs added:

    f'(x) = f(x; φ_task) + Σ_j w_j(x) f(x; φ_j)

i.e. the MoE sum over K + T modules whose T fixed weights are the task's one-hot. The slide gives
no formula; the sum is the deck's MoE combination with the fixed module's weight set to 1. The
record's usage, entropy and token table are the learned modules' (the fixed ones' use is decided
a priori). A multi-task run only (``task=multi``), as ``task_routing``.

``method.noisy_gating=true``: Shazeer et al. 2017's noisy top-k gating (§2.1, Eqs. 3–5),

    H(x)_i = (x·W_g)_i + StandardNormal() · Softplus((x·W_noise)_i)
    G(x)   = Softmax(KeepTopK(H(x), k)),   KeepTopK(v, k)_i = v_i if v_i is among the top k of v, else −∞

with a second linear map W_noise (no bias) learning the noise scale per module; noise in training
only (evaluation routes on x·W_g, as the paper's tensor2tensor code, ``noisy_top_k_gating``, with
``train``); W_noise starts at zero, as there, so the noise starts at Softplus(0) = log 2. The
routers above then read H: Softmax(KeepTopK(H, k)) is ``top_k``'s softmax renormalised over the k
chosen. Off by default (runs before the option keep their ids). Shazeer's own balancing losses
(importance and the smooth load estimator) are not used: the balancing loss is Switch's, as above.

Load balancing (the deck's "Token Level Routing - Load Balancing", Shazeer et al. 2017; here
Switch Transformer's auxiliary loss, Fedus et al. 2021, Eqs. 4–6), added to the training loss
through ``Method.penalty``, summed over the sites:

    loss_aux = α · N · Σ_i f_i · P_i

with N = K modules, f_i the fraction of the batch's tokens (examples, at example level) whose
most probable module is i, and P_i the mean router probability of module i over them (padding
left out); α = ``method.balance`` (Switch's 10⁻²). Only P carries gradients. With hard choices
(f = P) it is α · N Σ f_i², least (α) when the modules share the tokens evenly.

The router runs in float32 (Switch's selective precision) and starts as Switch initialises its
weights: a truncated normal, σ = √(0.1 / d). Module collapse (the deck's "Learned Routing -
Challenges") shows in the record's per-site usage and its entropy (``routing``); at token level,
``peftbench routing-table RUN`` lists the tokens each module receives most (the deck's expert-token
table after Lewis et al. 2021), from ``routing_tokens.json``.

``method.capacity_factor=c`` (default null: no limit, every token reaches its modules): Switch
Transformer's expert capacity (Fedus et al. 2021, §2.2, Eq. 3),

    expert capacity = (tokens per batch / number of experts) × capacity factor

rounded up, over the batch's routed units (real tokens, or examples at example level) at each
site: a module takes the units routed to it in batch order until it is full; the rest overflow,
their weight for that module set to 0 ("the token representation is passed directly to the next
layer through the residual connection": the adapter adds nothing there), not renormalised. Applied
in training and evaluation alike; ``soft`` routing sends every unit to every module, so it is
refused there. The balancing loss reads the router's choices before any overflow, as Switch's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from peftbench.errors import UserError
from peftbench.methods import register
from peftbench.methods.base import require
from peftbench.methods.routing import Routed, RoutingConfig, RoutingMethod

ROUTERS = ("soft", "top_k", "top_1")
LEVELS = ("token", "example")
TOKENS_FILE = "routing_tokens.json"
TOP_TOKENS = 20  # tokens kept per module and site in TOKENS_FILE


@dataclass
class MoEConfig(RoutingConfig):
    module: str = "pfeiffer"
    experts: int = 4
    router: str = "top_k"
    k: int = 2
    level: str = "token"
    balance: float = 0.01
    hybrid: bool = False
    noisy_gating: bool = False
    capacity_factor: Optional[float] = None

    def check(self) -> None:
        super().check()
        require(self.experts >= 2, f"method.experts must be ≥ 2, got {self.experts}")
        require(self.router in ROUTERS, f"method.router must be one of {', '.join(ROUTERS)}, got '{self.router}'")
        require(self.level in LEVELS, f"method.level must be one of {', '.join(LEVELS)}, got '{self.level}'")
        if self.router == "top_k":
            require(1 <= self.k <= self.experts, f"method.k must be in [1, method.experts={self.experts}], got {self.k}")
        require(self.balance >= 0, f"method.balance must be ≥ 0, got {self.balance}; e.g. 0.01")
        if self.capacity_factor is not None:
            require(self.capacity_factor > 0, f"method.capacity_factor must be > 0 (Switch: 1.0-2.0), got {self.capacity_factor}")
            require(self.router != "soft", "method.capacity_factor limits the tokens each module takes, but "
                    "method.router=soft sends every token to every module; use top_k or top_1, or drop the capacity")  # fmt: skip


def capacity_limited(weights: torch.Tensor, units: torch.Tensor, factor: float) -> torch.Tensor:
    """``weights`` (…, K) with each module's assignments past its capacity ⌈units / K × factor⌉ set
    to 0, units taken in batch order; ``units`` (…) marks the routed units (False: padding, dropped)."""
    flat, real = weights.reshape(-1, weights.shape[-1]), units.reshape(-1, 1).bool()
    capacity = math.ceil(int(real.sum()) / flat.shape[-1] * factor)
    assigned = flat.ne(0) & real
    kept = assigned & (assigned.long().cumsum(0) <= capacity)
    return (flat * kept).reshape(weights.shape)


def route(probabilities: torch.Tensor, router: str, k: int) -> torch.Tensor:
    """The modules' weights (…, K) from the router's probabilities, as ``router`` combines them."""
    if router == "soft":
        return probabilities
    top = probabilities.topk(1 if router == "top_1" else k, dim=-1)
    values = top.values if router == "top_1" else top.values / top.values.sum(-1, keepdim=True)
    return torch.zeros_like(probabilities).scatter(-1, top.indices, values)


def balance_loss(probabilities: torch.Tensor) -> torch.Tensor:
    """N · Σ_i f_i · P_i over routed units (rows of ``probabilities``, (units, N))."""
    n = probabilities.shape[-1]
    f = torch.bincount(probabilities.argmax(-1), minlength=n).to(probabilities.dtype) / probabilities.shape[0]
    return n * (f * probabilities.mean(0)).sum()


class MoERouted(Routed):
    """A linear router over this site's ``learned`` modules and the routed combination of their
    outputs; with ``hybrid``, the modules after them are the tasks' own, the current task's added."""

    def __init__(self, experts, state, site: int, stack: int, width: int, config: MoEConfig):
        super().__init__(experts, state, site, stack)
        like = next(experts[0].parameters())
        self.learned = config.experts
        factory = {"device": like.device, "dtype": torch.float32}
        self.router = nn.Linear(width, self.learned, bias=False, **factory)
        self.noise = nn.Linear(width, self.learned, bias=False, **factory) if config.noisy_gating else None
        self.kind, self.k, self.level, self.capacity_factor = config.router, config.k, config.level, config.capacity_factor
        if like.device.type != "meta":
            std = math.sqrt(0.1 / width)
            nn.init.trunc_normal_(self.router.weight, std=std, a=-2 * std, b=2 * std)
            if self.noise is not None:
                nn.init.zeros_(self.noise.weight)

    def logits(self, reads: torch.Tensor) -> torch.Tensor:
        """x·W_g, plus in training with noisy gating StandardNormal()·Softplus(x·W_noise) (Shazeer Eq. 4)."""
        clean = self.router(reads)
        if self.noise is None or not self.training:
            return clean
        return clean + torch.randn_like(clean) * nn.functional.softplus(self.noise(reads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = self.state.fitting(self.state.mask, x, self.stack)
        reads = x.float()
        if self.level == "example":
            keep = (mask if mask is not None else torch.ones(x.shape[:2], device=x.device)).unsqueeze(-1).float()
            reads = (reads * keep).sum(1) / keep.sum(1).clamp(min=1)  # (batch, d)
        with torch.autocast(x.device.type, enabled=False):
            probabilities = torch.softmax(self.logits(reads), dim=-1)
        if self.training:
            units = probabilities if self.level == "example" or mask is None else probabilities[mask.bool()]
            self.state.balance[self.site] = balance_loss(units.reshape(-1, units.shape[-1]))
        if self.state.recording:
            self.state.record(self.site, probabilities.argmax(-1), self.learned, x, self.stack)
        weights = route(probabilities, self.kind, self.k)
        if self.capacity_factor is not None:
            units = mask if self.level == "token" and mask is not None else torch.ones(weights.shape[:-1], device=x.device)
            weights = capacity_limited(weights, units, self.capacity_factor)
        if len(self.experts) > self.learned:  # hybrid: the current task's own module, weight 1
            fixed = nn.functional.one_hot(torch.tensor(self.state.task), len(self.experts) - self.learned)
            weights = torch.cat([weights, fixed.to(weights).expand(*weights.shape[:-1], -1)], dim=-1)
        return self.output_mixture(weights.unsqueeze(1) if self.level == "example" else weights, x)


@register
class MoEAdapters(RoutingMethod):
    name = "moe_adapters"
    Config = MoEConfig

    @property
    def count(self) -> int:
        """The K learned modules, and with ``hybrid`` one more per task (after them)."""
        return self.config.experts + (len(self.tasks) if self.config.hybrid else 0)

    def expert_names(self) -> list[str]:
        """The learned modules (the record's usage is theirs)."""
        return [str(j) for j in range(self.config.experts)]

    def check_model(self, anatomy, arch_config) -> None:
        if self.config.hybrid and len(self.tasks) < 2:
            raise UserError("method.hybrid=true adds a module per task, routed by the task id; train two tasks "
                            "or more at once (task=multi task.tasks=[rte,mrpc]) or drop method.hybrid")  # fmt: skip
        super().check_model(anatomy, arch_config)

    def check_format(self, task, format_name: str) -> None:
        if self.config.level == "example" and format_name == "generation":
            raise UserError(f"method.level=example routes a whole example from all its tokens, which decoding "
                            f"does not have at once; task {task.name} generates: use method.level=token")  # fmt: skip

    def routed(self, experts, site: int, stack: int, width: int) -> Routed:
        return MoERouted(experts, self.state, site, stack, width, self.config)

    def penalty(self, model):
        """α · Σ over the sites of the forward pass just run of N Σ_i f_i P_i (Switch's auxiliary loss)."""
        terms, self.state.balance = self.state.balance, {}
        if not terms or not self.config.balance:
            return None
        return self.config.balance * torch.stack(list(terms.values())).sum()

    def usage(self, model, evaluate) -> dict[str, list[list[float]]]:
        """The share of each module among the evaluation splits' tokens (examples) it is the top
        choice for, per task and site, with the best weights."""
        state = self.state
        state.recording, state.counts, state.tokens = True, {}, {}
        try:
            with torch.no_grad():
                evaluate(model)
        finally:
            state.recording = False
        usage = {}
        for t, task in enumerate(self.tasks):
            rows = []
            for site in range(len(self.sites)):
                counts = state.counts.get((t, site))
                used = counts is not None and bool(counts.sum())
                rows.append((counts / counts.sum()).tolist() if used else [0.0] * self.config.experts)
            usage[task] = rows
        return usage

    def reports(self, model, evaluate) -> dict:
        """The usage for the record (``routing``) and, at token level, ``routing_tokens.json``: per
        site and module, the tokens it was the top choice for most often, with their counts and the
        share of that token's occurrences it received."""
        super().reports(model, evaluate)
        if self.config.level != "token" or not self.state.tokens:
            return {}
        return {TOKENS_FILE: {"modules": self.expert_names(), "sites": list(self.sites),
                              "tokens": [self._top_tokens(site) for site in range(len(self.sites))]}}  # fmt: skip

    def _top_tokens(self, site: int) -> list[list[list]]:
        per_module = self.state.tokens.get(site, {})
        size = max((len(counts) for counts in per_module.values()), default=0)
        counts = torch.zeros(self.config.experts, size, dtype=torch.long)
        for j, found in per_module.items():
            counts[j, : len(found)] = found
        totals = counts.sum(0)
        table = []
        for j in range(self.config.experts):
            top = counts[j].topk(min(TOP_TOKENS, size))
            table.append([[self.tokenizer.convert_ids_to_tokens(int(i)), int(c), round(float(c) / float(totals[i]), 4)]
                          for c, i in zip(top.values, top.indices) if c > 0])  # fmt: skip
        return table
