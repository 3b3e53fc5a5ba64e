"""Diff pruning: a task's difference δ = z ⊙ w over the frozen pretrained weights, learned with a
relaxed L0 penalty, projected onto a fixed budget by magnitude and fine-tuned with that mask.

Guo, Rush & Kim, ACL 2021, "Parameter-Efficient Transfer Learning with Diff Pruning", §3:

    θ_τ = θ0 + δ_τ,     δ_τ = z_τ ⊙ w_τ,

z_τ ∈ [0, 1]^d drawn from the hard-concrete distribution (Louizos, Welling & Kingma, ICLR 2018,
"Learning Sparse Neural Networks through L0 Regularization", §3), one location α per entry:

    u ~ U(0, 1),   s = σ((log u − log(1 − u) + α) / β),   s̄ = s (r − l) + l,   z = min(1, max(0, s̄)),

and the expected L0 norm of δ, differentiable in α, added to the task loss with weight λ:

    E[‖δ_τ‖₀] = Σ_i P(z_i ≠ 0) = Σ_i σ(α_i − β log(−l / r)).

After training, δ is projected onto the target budget by magnitude (the k = ``density`` · d
entries of largest |δ|, all others 0) and fine-tuned with that mask fixed.

What this implementation does, in one run of the run's trainer (``search``, then the run's own
training):

* **Phase 1** (``search``): every eligible backbone tensor (as ``sparse``: every backbone
  parameter; ``embeddings`` / ``layer_norms`` may leave those out) is parametrised θ0 + z ⊙ w
  (``HardConcreteDelta``; θ0 never written), w = 0 and α = ``alpha_init``; w and the task head train
  at ``search_lr``, α at ``alpha_lr``, with λ · E[L0] added to every loss (``Method.penalty``). A fresh z is drawn
  at each forward while training; evaluation uses Louizos et al.'s test-time gate
  ẑ = min(1, max(0, σ(α)(r − l) + l)).
* **Projection**: δ̂ = ẑ ⊙ w; the k entries of largest |δ̂| (one global ranking, as the release's
  threshold search over every tensor) are kept, exactly k.
* **Phase 3** (the run's training): the gates are removed (θ0 back as it was), δ becomes LT-SFT's
  fixed-mask sparse difference (``sparse.SparseDelta``: k values on k flat indices) starting at δ̂ on
  those entries, and it trains with the head, which keeps its phase-1 weights, at the run's
  ``trainer.lr``. The run saves δ in LT-SFT's format: ``method=sparse method.reference=<run>``
  rebuilds it, and ``sparse_sum`` adds it to other sparse differences.

Defaults (``conf/method/diff_pruning.yaml``) are those of the release (dguo98/DiffPruning,
``examples/run_glue_diffpruning.py`` and its README command): l = −1.5, r = 1.5, β = 1,
λ = 1.25e-7, α initialised to 5, w's rate 1e-5, α's 0.1 (its own ``alpha_optimizer``), the
fixed-mask phase at 5e-5 (``run_glue_fixmask_finetune.py``), the paper's budget 0.5%. The paper's
structured variant (a shared z per parameter group) is not implemented.

Where it departs from the release: α trains at its own rate ``alpha_lr`` in the run's one optimiser
(``Method.learning_rates``), so it follows the run's warm-up and decay where the release keeps 0.1
constant (its ``scheduler2`` is never stepped), and one clipping norm spans w, α and the head where
the release clips each group apart. u is
drawn in [1e-4, 1 − 1e-4] as the release does. The release projects the δ of the last sampled z and
starts its fixed-mask phase from w; we project and start from δ̂ = ẑ ⊙ w, the deterministic gate.

Counted: the k values of δ are the method's parameters, its mask bits (``sparse``'s counting);
``diff_pruning`` in the record keeps phase 1's E[L0] and open gates (ẑ > 0) as fractions of d.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.nn.utils import parametrize

from peftbench.errors import UserError
from peftbench.methods import register
from peftbench.methods.base import MethodConfig, require
from peftbench.methods.delta import add_delta, deltas
from peftbench.methods.sparse import SparseDelta, SparseFineTuning, check_budget, split_by_tensor

U_MARGIN = 1e-4  # u ∈ [1e-4, 1 − 1e-4]: concrete_stretched's clamp in the release


@dataclass
class DiffPruningConfig(MethodConfig):
    density: Optional[float] = None  # the budget: a fraction of the eligible backbone parameters (paper: 0.005)
    k: Optional[int] = None  # or the number of them
    search_lr: float = 1e-5  # phase 1: w's rate
    alpha_lr: float = 0.1  # phase 1: α's rate
    alpha_init: float = 5.0
    l0: float = 1.25e-7  # λ, the weight of E[L0]
    lower: float = -1.5  # l
    upper: float = 1.5  # r
    temperature: float = 1.0  # β
    embeddings: bool = True
    layer_norms: bool = True

    def check(self) -> None:
        check_budget(self.density, self.k, "diff_pruning")
        require(self.search_lr > 0 and self.alpha_lr > 0,
                f"method.search_lr and method.alpha_lr must be positive, got {self.search_lr} and {self.alpha_lr}")  # fmt: skip
        require(self.l0 >= 0, f"method.l0 (λ) must be ≥ 0, got {self.l0}; e.g. 1.25e-7")
        require(
            self.lower < 0 and self.upper > 1,
            f"the hard-concrete stretch needs method.lower < 0 and method.upper > 1, got {self.lower} and {self.upper}",
        )
        require(self.temperature > 0, f"method.temperature (β) must be positive, got {self.temperature}")


class HardConcreteDelta(nn.Module):
    """Parametrisation W = W0 + z ⊙ w, z hard-concrete with location α (``alpha``: Louizos et al.'s
    log α, one per entry)."""

    def __init__(self, like: torch.Tensor, config: DiffPruningConfig):
        super().__init__()
        self.w = nn.Parameter(torch.zeros_like(like))
        self.alpha = nn.Parameter(torch.full_like(like, config.alpha_init))
        self.lower, self.upper, self.temperature = config.lower, config.upper, config.temperature

    def gate(self) -> torch.Tensor:
        """z: drawn while training, Louizos et al.'s test-time ẑ otherwise."""
        alpha = self.alpha
        if self.training:
            u = torch.rand_like(alpha).clamp(U_MARGIN, 1 - U_MARGIN)
            s = torch.sigmoid((u.log() - (1 - u).log() + alpha) / self.temperature)
        else:
            s = torch.sigmoid(alpha)
        return (s * (self.upper - self.lower) + self.lower).clamp(0.0, 1.0)

    def expected_l0(self) -> torch.Tensor:
        """Σ P(z ≠ 0) = Σ σ(α − β log(−l / r))."""
        return torch.sigmoid(self.alpha - self.temperature * math.log(-self.lower / self.upper)).sum()

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        return original + (self.gate() * self.w).to(original.dtype)


@register
class DiffPruning(SparseFineTuning):
    name = "diff_pruning"
    Config = DiffPruningConfig

    _projected: Optional[dict[str, torch.Tensor]] = None  # δ̂ = ẑ ⊙ w after phase 1, flat, by tensor name
    _phase_one = False
    _summary: dict = {}

    @property
    def searches(self) -> bool:
        return True

    def search(self, model, head: list[str], train) -> None:
        """Phase 1: θ0 + z ⊙ w on every eligible tensor, trained with λ · E[L0]; then δ̂ = ẑ ⊙ w is
        kept and the gates removed (θ0 back, untouched)."""
        tensors = self._eligible(model)
        model.requires_grad_(False)
        gates = {}
        for name, param, owners in tensors:
            gates[name] = HardConcreteDelta(param.detach(), self.config)
            add_delta(owners, gates[name])
        parameters = dict(model.named_parameters())
        for param in [p for gate in gates.values() for p in gate.parameters()] + [parameters[n] for n in head]:
            param.requires_grad_(True)
        self._phase_one = True
        try:
            train(self.config.search_lr)
        finally:
            self._phase_one = False
        with torch.no_grad():
            for gate in gates.values():
                gate.eval()
            self._projected = {name: (gate.gate() * gate.w).reshape(-1).float().cpu() for name, gate in gates.items()}
            entries = sum(gate.w.numel() for gate in gates.values())
            self._summary = {
                "expected_l0": float(sum(gate.expected_l0() for gate in gates.values())) / entries,
                "open_gates": sum(int((gate.gate() > 0).sum()) for gate in gates.values()) / entries,
            }
        for _, _, owners in tensors:
            for module, attribute in owners:
                parametrize.remove_parametrizations(module, attribute, leave_parametrized=False)
        model.requires_grad_(False)

    def learning_rates(self, model) -> dict[str, float]:
        """α at ``alpha_lr`` while phase 1 trains (w and the head at ``search_lr``)."""
        return {name: self.config.alpha_lr for name, _ in model.named_parameters() if name.endswith(".alpha")}

    def penalty(self, model):
        """λ · E[‖δ‖₀] in phase 1; nothing once the mask is fixed."""
        if not self._phase_one or not self.config.l0:
            return None
        return self.config.l0 * torch.stack([gate.expected_l0() for _, _, _, gate in deltas(model, HardConcreteDelta)]).sum()

    def apply(self, model, anatomy) -> None:
        """Phase 3: the projected δ on its k entries (LT-SFT's SparseDelta), starting at δ̂ there."""
        self._put_deltas(model)
        if self._projected is None:  # counting from configs: no values to start from
            return
        with torch.no_grad():
            for name, _, _, delta in deltas(model, SparseDelta):
                start = self._projected[name].to(delta.sparse_values.device)[delta.indices]
                delta.sparse_values.copy_(start.to(delta.sparse_values.dtype))

    def _select(self, tensors, k: int) -> list[torch.Tensor]:
        """The projection: per tensor, the sorted flat indices of its share of the global top-k |δ̂|."""
        if any(p.is_meta for _, p, _ in tensors):  # counting from configs: only how many matters
            return super()._select(tensors, k)
        if self._projected is None:
            raise UserError(
                "method=diff_pruning learns its mask in the run (peftbench run); to rebuild a finished run's δ, "
                "apply method=sparse with method.reference=<its run folder> and the same method.k or density"
            )
        scores = torch.cat([self._projected[name].abs() for name, _, _ in tensors])
        chosen = torch.topk(scores, k, sorted=False).indices
        return split_by_tensor(chosen.sort().values, [p.numel() for _, p, _ in tensors])

    def measured(self, model) -> dict:
        """Phase 1's expected L0 and open gates, as fractions of the eligible entries."""
        return {"diff_pruning": dict(self._summary)} if self._summary else {}
