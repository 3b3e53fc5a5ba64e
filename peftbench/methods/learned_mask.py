"""Learned binary masks: b chosen by real-valued scores s trained with the straight-through estimator.

The survey's "Supermasks in Pre-trained Models" (seed 004): a real-valued mask b^real is learned
and binarised, and "∇b can be used as a noisy estimate of ∇b^real (also known as straight-through
estimator [Bengio et al., 2013])". With W' = W ⊙ b the weight a forward computes with,

    ∂L/∂b = ∂L/∂W' ⊙ W        and the estimator passes it on:  ∂L/∂s = ∂L/∂b · ∂g(s)/∂s,

g(s) the surrogate that the binarisation replaces: s itself for a threshold or a top-k (Mallya et
al. 2018, "Piggyback"; Zhao et al. 2020; Sanh et al. 2020; Ramanujan et al. 2020 rank |s|, so g =
|s|), σ(s) for Bernoulli sampling (Zhou et al. 2019, whose code adds σ(s) − stop_gradient(σ(s)) to
the sample). Every method here shares that gradient; they differ in the rule b(s).

``ScoredMask`` is a ``binary_mask.BinaryMask`` whose b comes from its scores (a parameter of the
tensor's shape) instead of stored bits:

* ``delivered()``: the mask the run evaluates with, saves (bit-packed, ``MaskedMethod.saved_buffers``)
  and merges; deterministic.
* ``training_mask()``: the mask a training forward uses; the delivered one unless the rule differs
  while training (a Bernoulli sample; movement pruning's scheduled sparsity).
* The forward computes where(b, W, 0) + W̄ ⊙ (g(s) − ḡ(s)) (a bar: no gradient): the value is
  exactly where(b, W, 0), a removed entry exactly +0.0 and the stored W never written, and
  autograd gives ∂L/∂s = (∂L/∂W' ⊙ W) · g'(s), the estimator above.
* **A loaded mask is fixed**: once bits are written into the mask from outside (a saved run
  loaded, ``load_weights``), they decide b and the scores no longer do: the scores are training
  state (checkpoints keep them for resume), not the result, so the run does not save them
  (``Method.training_only``) and a reload rebuilds the delivered mask from its bits alone.

A method built on it subclasses ``LearnedMaskMethod``: it names its scores as training-only and
counts mask entries as bits (``params.mask_bits``), never the scores as parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from peftbench.methods.binary_mask import BinaryMask, MaskedMethod


def top_k(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """The bool mask keeping the ``keep`` largest of ``scores``; among equal scores the earlier in
    flattened (row-major) order is kept: a stable sort, so the same scores give the same mask."""
    order = torch.sort(scores.detach().reshape(-1), descending=True, stable=True).indices
    mask = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    mask[order[:keep]] = True
    return mask.view(scores.shape)


class ScoredMask(BinaryMask):
    """W ↦ W ⊙ b(s), s the trained ``scores``; subclasses give ``delivered`` (and, where training
    differs, ``training_mask`` and ``surrogate``). ``zeros``: the entries the delivered mask is
    planned to remove, for a mask on the meta device (counting from configs)."""

    def __init__(self, scores: torch.Tensor, zeros: int = 0):
        super().__init__(torch.ones_like(scores, dtype=torch.bool), zeros)
        self.scores = nn.Parameter(scores)
        self.fixed = False  # bits were loaded: they decide b, not the scores
        self.train(False)  # until the model it joins sets its mode (``attach``)

    def delivered(self) -> torch.Tensor:
        """b as the run evaluates and saves it (bool, the tensor's shape), from the scores."""
        raise NotImplementedError

    def training_mask(self) -> torch.Tensor:
        return self.delivered()

    def surrogate(self) -> torch.Tensor:
        """g(s), whose gradient the straight-through estimator multiplies ∂L/∂b by."""
        return self.scores

    def loaded(self) -> bool:
        """Whether bits were written into the mask from outside (a load): from then on they decide b."""
        self.fixed = self.fixed or self.packed_mask._version != self._unpacked_version
        return self.fixed

    def current(self) -> torch.Tensor:
        if self.loaded():
            return super().current()
        return self.delivered()  # computed each time: a fused optimiser step leaves no version count to cache by

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.merged:
            return weight
        if self.loaded() or not (self.training and torch.is_grad_enabled()):
            return torch.where(self.current(), weight, 0.0)
        g = self.surrogate()
        return torch.where(self.training_mask(), weight, 0.0) + weight.detach() * (g - g.detach())


class LearnedMaskMethod(MaskedMethod):
    """A method whose masks are ``ScoredMask``s: their scores train, their bits are the result."""

    composable = False  # its scores need hooks a combination (methods/composed.py) does not carry
    multitask = False  # one mask per task, learned per run (a multi-task run would share one mask)

    def training_only(self, model) -> list[str]:
        return [f"{path}.scores" for path, module in model.named_modules() if isinstance(module, ScoredMask)]
