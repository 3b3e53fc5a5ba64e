"""Mask tuning: a learned real-valued mask, thresholded at τ, over frozen pre-trained weights.

Zhao, Lin, Mi, Jaggi & Schütze, EMNLP 2020, "Masking as an Efficient Alternative to Finetuning
for Pretrained Language Models", §3, after Mallya, Davis & Lazebnik, ECCV 2018, "Piggyback":
each masked weight matrix W has a real-valued mask M^real of its shape, binarised by a threshold,

    m_i = 1 if m_i^real ≥ τ, 0 otherwise;        the layer computes with W ⊙ M,

and trained with the straight-through estimator, ∂L/∂M^real := ∂L/∂M = ∂L/∂(W ⊙ M) ⊙ W (the
survey, seed 004, "Supermasks in Pre-trained Models": "∇b can be used as a noisy estimate of
∇b^real"). The pre-trained weights never change; one mask (one bit per weight) is kept per task.

* **Defaults** (the authors' released code, ``parameters.py`` and ``masking/maskers.py``
  ``MaskedLinear1``, as in its fork llyx97/sparse-and-robust-PLM@c2172fd): τ = 1e-2
  (``method.threshold``); M^real ~ U(−α, (α + τ)/p − α) with α = 2e-2 (``method.init_scale``), so
  that a fraction p = ``method.init_sparsity`` of the mask starts below τ (their
  ``get_init_scales``), p = 5% as their runs start; learning rate 5e-3 (their default ``lr``,
  masks and classifier alike). Piggyback's own are τ = 5e-3 with M^real = 1e-2 everywhere (a
  dense start). The code binarises with m^real > τ, the paper with ≥ (equal only on a tie).
* **Initialisation** (``method.controlled_init``, the code's option): null (the default above:
  which weights start masked is random) | ``magnitude``, the code's ``controlled_init="magnitude"``
  (``MaskedLinearX.controlled_init._magnitude``): m^real = 2τ for every weight but the fraction p
  of smallest |W| in its matrix, m^real = 0 for those, so the first mask is magnitude pruning's at
  sparsity p. Liu et al., NeurIPS 2022 ("A Win-win Deal: Towards Sparse and Robust Pre-trained
  Language Models", §3.2, App. A.1.2; their scripts ``mask_train/mask_on_plm_pt/*/0.5.sh`` …
  ``0.9.sh``: ``--controlled_init magnitude --zero_rate`` 0.5–0.9) train masks on the pre-trained
  BERT this way at 50–90% sparsity, where a uniform start removes a random half (or more) of
  every matrix and the network it starts from no longer computes anything the task can use.
  The k = round(p · n) smallest |W| are chosen as ``magnitude_pruning`` chooses them (the code:
  every |W| at or below the int(p · n)-th smallest, so ties may remove a few more).
* **What is masked**: the linear weight matrices of every transformer block (W_K, W_Q, W_V, W_AO,
  W_I, W_O; ``binary_mask.eligible_tensors``); "the embedding layer is not masked" (the seed; the
  paper's §3), nor biases and norms. The authors' code also masks the pooler W_P; here it stays
  fixed (a difference).
* **The classifier** trains, as the task head does with every method (the authors' code's
  default, ``classifier_req_grad``; the paper also reports masking a randomly initialised one).

Counted: no float parameters of the method (the real-valued masks train but are not kept,
``training_only``); the binary masks are ``params.mask_bits``; the record's ``sparsity`` is the
measured fraction of removed weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from peftbench.methods import register
from peftbench.methods.base import MethodConfig, require
from peftbench.methods.binary_mask import eligible_tensors
from peftbench.methods.delta import add_delta
from peftbench.methods.learned_mask import LearnedMaskMethod, ScoredMask
from peftbench.methods.magnitude_pruning import magnitude_masks

CONTROLLED_INITS = (None, "magnitude")


@dataclass
class MaskTuningConfig(MethodConfig):
    threshold: float = 1e-2  # τ: m = 1 where m^real ≥ τ
    init_scale: float = 2e-2  # α: m^real ~ U(−α, (α + τ)/p − α)
    init_sparsity: float = 0.05  # p: the fraction of the mask below τ at the start
    controlled_init: Optional[str] = None  # None: U(−α, (α + τ)/p − α) | magnitude: 0 for the p smallest |W|, 2τ elsewhere

    def check(self) -> None:
        require(
            self.controlled_init in CONTROLLED_INITS,
            f"method.controlled_init must be null (a uniform start) or magnitude, got '{self.controlled_init}'",
        )
        require(
            self.controlled_init != "magnitude" or self.threshold > 0,
            f"method.controlled_init=magnitude starts masked weights at 0 and kept ones at 2τ, so method.threshold must be positive, "
            f"got {self.threshold}",
        )
        require(self.init_scale > 0, f"method.init_scale must be positive (α of U(−α, ·)), got {self.init_scale}")
        require(
            0 < self.init_sparsity < 1,
            f"method.init_sparsity must be in (0, 1) (the fraction of weights masked at the start), got {self.init_sparsity}; "
            "e.g. method.init_sparsity=0.05",
        )
        require(
            self.threshold > -self.init_scale,
            f"method.threshold must lie above −init_scale ({-self.init_scale}) so that the initial masks can reach it, "
            f"got {self.threshold}",
        )


class ThresholdMask(ScoredMask):
    """m = 1[m^real ≥ τ]."""

    def __init__(self, scores: torch.Tensor, threshold: float, zeros: int):
        super().__init__(scores, zeros)
        self.threshold = threshold

    def delivered(self) -> torch.Tensor:
        return self.scores.detach() >= self.threshold


@register
class MaskTuning(LearnedMaskMethod):
    name = "mask_tuning"
    Config = MaskTuningConfig

    def apply(self, model, anatomy) -> None:
        c = self.config
        tensors = eligible_tensors(model)
        if c.controlled_init == "magnitude":
            masks, zeros = magnitude_masks(tensors, c.init_sparsity, "layer")
            starts = [(torch.where(mask, 2 * c.threshold, 0.0).float(), count) for mask, count in zip(masks, zeros)]
        else:
            high = (c.init_scale + c.threshold) / c.init_sparsity - c.init_scale
            starts = [
                (torch.empty(p.shape, dtype=torch.float32, device=p.device).uniform_(-c.init_scale, high), round(c.init_sparsity * p.numel()))
                for _, p, _ in tensors
            ]
        for (_, _, owners), (scores, count) in zip(tensors, starts):
            add_delta(owners, ThresholdMask(scores, c.threshold, zeros=count))

    def parameter_names(self, model) -> list[str]:
        return []
