"""Gumbel routing: hard learned routing of tasks to subsets of modules (Polytropon).

Ponti, Sordoni, Bengio & Reddy, "Combining Modular Skills in Multitask Learning" (arXiv
2202.13914, 2022), as the survey deck presents it (seed 004, "Hard Learned Routing"). Each site
(every place the module method puts a module) holds an inventory of K modules ("skills",
``method.modules``) and a routing matrix of logits α ∈ R^{T×K}, one row per task. Discrete
decisions cannot be learned by plain gradient descent, so the binary allocation Z ∈ {0, 1}^{T×K}
is relaxed with the Gumbel-sigmoid (the deck's "Stochastic Reparametrization", after Jang et al.
2017):

    α̂_{i,j} = sigmoid[ log( sigmoid(α_{i,j}) u / ((1 − sigmoid(α_{i,j})) (1 − u)) ) ]^{1/τ},   u ~ Uniform(0, 1)

where the exponent 1/τ scales the log-odds, i.e. α̂ = sigmoid((α + log u − log(1 − u)) / τ) since
log(sigmoid(α) / (1 − sigmoid(α))) = α; τ is ``method.temperature``. With ``straight_through``
(the default) the forward pass uses the hard sample z = 1[α̂ > ½] ∈ {0, 1} and the backward pass
the gradient of α̂ (straight-through estimator), so the modules a task uses are a discrete subset
while gradients reach the logits; ``straight_through: false`` uses α̂ itself, as the authors'
released code does (``RelaxedBernoulli(temperature=1.0, logits).rsample()``,
McGill-NLP/polytropon ``src/adapters.py``). The task's module is the normalised combination of
the active ones' parameters (the released code's ``skill_logits / (skill_logits.sum() + EPS)``):

    φ_t = Σ_j z_{t,j} φ_j / (Σ_j z_{t,j} + ε)

one module f(x; φ_t) per site (``Routed.parameter_mixture``). At evaluation the allocation is
deterministic: 1[α > 0] (the mode of the hard sample) with ``straight_through``, else
sigmoid(α) as in the released code. Logits start uniform in [−1e-3, 1e-3] (released code), so every
module starts used with probability ½. The default module is LoRA (Polytropon's skills are LoRA
adapters); K = 4 is HF peft's ``PolyConfig.n_skills`` default.

Departures: one Gumbel draw per site and batch (a batch holds one task's rows), where the released
code draws one per example; the Indian-buffet-process prior on Z (``add_prior``) is not applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from peftbench.methods import register
from peftbench.methods.base import require
from peftbench.methods.routing import EPS, Routed, RoutingConfig, RoutingMethod


@dataclass
class GumbelRoutingConfig(RoutingConfig):
    module: str = "lora"
    modules: int = 4
    temperature: float = 1.0
    straight_through: bool = True

    def check(self) -> None:
        super().check()
        require(self.modules >= 2, f"method.modules must be ≥ 2 (the inventory routed over), got {self.modules}")
        require(self.temperature > 0, f"method.temperature must be positive, got {self.temperature}; e.g. 1")


def gumbel_sigmoid(logits: torch.Tensor, temperature: float, straight_through: bool) -> torch.Tensor:
    """A relaxed Bernoulli sample per logit (the deck's α̂); hard 0/1 values in the forward pass and
    α̂'s gradient in the backward pass with ``straight_through``."""
    u = torch.rand_like(logits).clamp(EPS, 1 - EPS)
    soft = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / temperature)
    if not straight_through:
        return soft
    return (soft > 0.5).to(soft.dtype) + soft - soft.detach()


class GumbelRouted(Routed):
    """Per-task logits over this site's modules; the module of the current task's allocation."""

    def __init__(self, experts, state, site: int, stack: int, tasks: int, config: GumbelRoutingConfig):
        super().__init__(experts, state, site, stack)
        like = next(experts[0].parameters())
        self.logits = torch.nn.Parameter(torch.empty(tasks, len(experts), device=like.device))
        self.temperature, self.straight_through = config.temperature, config.straight_through
        if like.device.type != "meta":
            torch.nn.init.uniform_(self.logits, -1e-3, 1e-3)

    def weights(self, sample: bool) -> torch.Tensor:
        """The current task's allocation z (a Gumbel-sigmoid sample, else the evaluation choice),
        normalised over the modules: z / (Σ z + ε)."""
        logits = self.logits[self.state.task]
        if sample:
            z = gumbel_sigmoid(logits, self.temperature, self.straight_through)
        else:
            z = (logits > 0).to(logits.dtype) if self.straight_through else torch.sigmoid(logits)
        return z / (z.sum() + EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.parameter_mixture(self.weights(sample=self.training), x)


@register
class GumbelRouting(RoutingMethod):
    name = "gumbel_routing"
    Config = GumbelRoutingConfig

    @property
    def count(self) -> int:
        return self.config.modules

    def routed(self, experts, site: int, stack: int, width: int) -> Routed:
        return GumbelRouted(experts, self.state, site, stack, len(self.tasks), self.config)

    def usage(self, model, evaluate) -> dict[str, list[list[float]]]:
        """The evaluation allocation of every task, normalised: the share of each module in φ_t."""
        sites = sorted(self._routed(model).values(), key=lambda routed: routed.site)
        usage = {}
        with torch.no_grad():
            for t, task in enumerate(self.tasks):
                self.state.task = t
                usage[task] = [site.weights(sample=False).tolist() for site in sites]
        return usage
