"""Magnitude pruning: remove the lowest-|θ| weights, keep training the rest.

Han, Pool, Tran & Dally, NeurIPS 2015, "Learning both Weights and Connections for Efficient
Neural Networks", §3: (1) train the network, which learns which connections matter; (2) prune the
connections whose weights have small magnitude; (3) retrain the remaining sparse network; steps 2–3
may be iterated ("iterative pruning"), a pruned connection never coming back. It is the survey's
"Pruning" slide (seed 004, after [Han et al., 2017]): a fraction of the lowest-magnitude weights is
removed and the non-pruned weights are re-trained, over several iterations more commonly
[Frankle & Carbin, 2019]. The pruned, re-trained model is f'_θ = f_{θ∘b} + φ (``binary_mask``) with

    b_i = 0  for the k = round(s · n) entries of smallest |θ_i|,  b_i = 1 otherwise,

θ the weights after the previous training, n the entries ranked, s = ``method.sparsity``.

What this implementation does, in one run of the run's trainer (``search``, then the run's own
training):

* **Round 0**: every backbone weight and the head train densely (the run's schedule at
  ``trainer.lr``; the YAML's rate is full fine-tuning's).
* **Rounds i = 1 … n** (n = ``method.iterations``; 1 is one-shot): prune to sparsity s_i, then
  retrain every kept weight and the head; the last round's pruning is ``apply`` and its retraining
  is the run's training (what the record scores and saves). Each round is a full trainer schedule
  with a fresh optimiser. The schedule (``method.schedule``) ends at s_n = s:
  ``geometric``, s_i = 1 − (1 − s)^{i/n}: every round removes the same fraction of the weights
  left (Frankle & Carbin, ICLR 2019, §1: "each round prunes p^{1/n}% of the weights that survive
  the previous round"); ``linear``, s_i = s · i / n: the same share of the original weights each
  round (Chen et al., NeurIPS 2020, whose code, BERT-Tickets ``LT_glue.py``, removes 10% of the
  original weights per round).
* **What is ranked** (``method.scope``): ``layer``, each tensor on its own (k = round(s · n_t) per
  tensor, as Han et al. prune each layer against its own threshold; they set it as a quality
  parameter times the layer's standard deviation, we take the fraction directly); ``global``, one
  ranking over all eligible tensors (``torch.nn.utils.prune.global_unstructured``, as
  BERT-Tickets). k rounds as ``torch.nn.utils.prune`` does (Python ``round``).
* **Ties, and what stays pruned**: weights already pruned rank first (they stay pruned), then
  ascending |θ|, equal magnitudes in the order of the flattened tensors (row-major, tensors in
  model order): a stable sort, so the same weights give the same mask.
* **Eligible**: the transformer blocks' linear weight matrices; ``method.embeddings=true`` adds the
  embedding tables (``binary_mask.eligible_tensors``). Every other backbone weight (embeddings,
  biases, norms, pooler) and the head train densely; a pruned weight computes as exactly 0
  throughout (``BinaryMask``: where(b, W, 0)).

Counted: the kept weights and every unmasked backbone weight are the method's parameters (the
head apart); the mask is ``params.mask_bits``; the record's ``sparsity`` is measured on the merged
weights after training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from peftbench.methods import register
from peftbench.methods.base import MethodConfig, require
from peftbench.methods.binary_mask import MaskedMethod, eligible_tensors, mask_of, put_masks
from peftbench.methods.delta import proportional

SCOPES = ("layer", "global")
SCHEDULES = ("geometric", "linear")


@dataclass
class MagnitudePruningConfig(MethodConfig):
    sparsity: float = 0.5  # fraction of the eligible weights removed in the end
    iterations: int = 1  # prune–retrain rounds; 1 = one-shot
    schedule: str = "geometric"  # geometric | linear: the sparsity of each round
    scope: str = "layer"  # layer | global: what one ranking covers
    embeddings: bool = False  # the embedding tables are pruned too

    def check(self) -> None:
        require(
            0 <= self.sparsity < 1,
            f"method.sparsity must be in [0, 1) (the fraction of weights removed), got {self.sparsity}; e.g. method.sparsity=0.5",
        )
        require(self.iterations >= 1, f"method.iterations must be ≥ 1 (1 = one-shot pruning), got {self.iterations}")
        require(self.schedule in SCHEDULES, f"method.schedule must be one of {', '.join(SCHEDULES)}, got '{self.schedule}'")
        require(self.scope in SCOPES, f"method.scope must be one of {', '.join(SCOPES)}, got '{self.scope}'")


def schedule(sparsity: float, iterations: int, kind: str) -> list[float]:
    """The sparsity after each of ``iterations`` rounds, the last exactly ``sparsity``:
    geometric 1 − (1 − s)^{i/n}, or linear s · i / n."""
    steps = [
        sparsity * i / iterations if kind == "linear" else 1 - (1 - sparsity) ** (i / iterations)
        for i in range(1, iterations)
    ]
    return [*steps, sparsity]


def magnitude_masks(tensors, sparsity: float, scope: str) -> tuple[list[torch.Tensor], list[int]]:
    """For each of ``tensors`` (``eligible_tensors``' entries), its mask b and how many entries b
    removes: round(sparsity · n) lowest-|θ| entries per ranking (all tensors at once for
    ``global``, each alone for ``layer``), masked entries first, ties in flattened order."""
    sizes = [param.numel() for _, param, _ in tensors]
    groups = [list(range(len(tensors)))] if scope == "global" else [[i] for i in range(len(tensors))]
    masks: list[torch.Tensor] = [torch.empty(0)] * len(tensors)
    zeros = [0] * len(tensors)
    for group in groups:
        k = round(sparsity * sum(sizes[i] for i in group))
        if any(tensors[i][1].is_meta for i in group):  # counting from configs: only how many matters
            for i, count in zip(group, proportional([sizes[i] for i in group], k)):
                masks[i], zeros[i] = torch.empty(tensors[i][1].shape, dtype=torch.bool, device="meta"), count
            continue
        scores = torch.cat([_score(*tensors[i]) for i in group])
        keep = torch.ones_like(scores, dtype=torch.bool)
        keep[torch.sort(scores, stable=True).indices[:k]] = False
        for i, part in zip(group, keep.split([sizes[i] for i in group])):
            masks[i], zeros[i] = part.view(tensors[i][1].shape), part.numel() - int(part.count_nonzero())
    return masks, zeros


def _score(_name: str, param, owners) -> torch.Tensor:
    """|θ| flattened, −∞ where the tensor is masked already (those stay pruned)."""
    score = param.detach().abs().float().reshape(-1)
    mask = mask_of(*owners[0])
    return score if mask is None else score.masked_fill(~mask.current().reshape(-1), float("-inf"))


def train_backbone(model, head: list[str]) -> None:
    """Every backbone parameter and the ``head`` trainable, nothing else (a language model's own
    output layer, outside the base model, stays frozen)."""
    from peftbench.models.anatomy import head_parameter_names

    outside = set(head_parameter_names(model)) - set(head)
    for name, param in model.named_parameters():
        param.requires_grad_(name not in outside)


@register
class MagnitudePruning(MaskedMethod):
    name = "magnitude_pruning"
    Config = MagnitudePruningConfig
    composable = False  # it trains (searches) before it is applied

    @property
    def searches(self) -> bool:
        return True

    def sparsities(self) -> list[float]:
        return schedule(self.config.sparsity, self.config.iterations, self.config.schedule)

    def search(self, model, head: list[str], train) -> None:
        """Round 0 (dense training), then every round but the last: prune, retrain."""
        train_backbone(model, head)
        self._train_dense(model, train)
        for sparsity in self.sparsities()[:-1]:
            self._prune(model, sparsity)
            self._restart(model)
            train()
        model.requires_grad_(False)

    def _train_dense(self, model, train) -> None:
        train()

    def _restart(self, model) -> None:
        """Where each retraining starts: from the pruned weights as they are (Han et al.)."""

    def apply(self, model, anatomy) -> None:
        """The last round's pruning (on the weights the search left, or on the pretrained ones
        when nothing was searched: a reload, a count from configs); every backbone weight trains."""
        self._prune(model, self.sparsities()[-1])
        self._restart(model)
        train_backbone(model, [])

    def _prune(self, model, sparsity: float) -> None:
        tensors = eligible_tensors(model, self.config.embeddings)
        masks, zeros = magnitude_masks(tensors, sparsity, self.config.scope)
        put_masks(tensors, masks, zeros)

    def parameter_names(self, model) -> list[str]:
        from peftbench.models.anatomy import head_parameter_names

        head = set(head_parameter_names(model))
        return [name for name, _ in model.named_parameters() if name not in head]
