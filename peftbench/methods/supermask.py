"""Supermasks: the module is only a binary mask over frozen weights, f'_θ = f_{θ∘b}.

The survey (seed 004, "Beyond Lottery Tickets: Supermasks"): masks that reach non-random
performance over fixed weights exist [Zhou et al., 2019], "the module parameters only consist of
the binary mask", and "a fixed model can accommodate a potentially unlimited number of
task-specific binary masks" [Wortsman et al., 2020]. Every backbone weight stays as it is (bit for
bit); what trains are real-valued scores s, one per masked weight, through the straight-through
estimator (``learned_mask``), and what the run keeps is b, one bit per weight.

``method.sampling`` — how b comes from s:

* ``bernoulli`` (default; the deck's supermask paper): Zhou, Lan, Liu & Yosinski, NeurIPS 2019,
  "Deconstructing Lottery Tickets: Zeros, Signs, and the Supermask", §5: every training forward
  samples b_i ~ Bernoulli(σ(s_i)), and the gradient goes straight through the sample to σ(s):
  ∂L/∂s = (∂L/∂W' ⊙ W) · σ(s)(1 − σ(s)) (their ``masked_networks.get_effective_mask``: the sample
  plus σ(s) − stop_gradient(σ(s)), uber-research/deconstructing-lottery-tickets@4303acc). s
  starts at the constant ``method.score_init`` (their ``sigmoid_bias``, 0: σ = ½).
  Evaluation, and the mask the run saves, use the Bernoulli's mode, b_i = 1[σ(s_i) > ½] = 1[s_i > 0]
  (their ``round_mask`` rule at test time): where their default samples at test time too, a
  saved supermask has to be one mask.
* ``topk`` — edge-popup: Ramanujan, Wortsman, Kembhavi, Farhadi & Rastegari, CVPR 2020, "What's
  Hidden in a Randomly Weighted Neural Network?", §3: per tensor, b keeps the weights of the top
  k% scores |s| (k = 1 − ``method.sparsity``; ``round(sparsity · n)`` removed, ties to the earlier
  entry), the gradient straight through to |s|; s ~ kaiming_uniform(a = √5) as their
  ``SubnetConv`` (allenai/hidden-networks@2ebdc7c ``utils/conv_type.py``; they remove int((1 − k)·n)).
  Wortsman et al. 2020 ("Supermasks in Superposition", NeurIPS) learn each task's mask this way.
  ``method.init`` (topk): ``kaiming`` (theirs, above: for random weights, where any first mask is
  as good as another) | ``magnitude``, s = |W|, so the first mask is the magnitude mask at that
  sparsity: Zhou et al.'s "large final" criterion (§2, their best mask criterion, the one whose
  variant gives their supermasks; for a pre-trained network its weights are the final ones), and
  the real-valued mask of Zhao et al. 2020's code's ``controlled_init="magnitude_soft"`` (m^real =
  |W| thresholded at the p-th smallest, llyx97/sparse-and-robust-PLM@c2172fd
  ``masking/maskers.py``), with which Liu et al. (NeurIPS 2022, "A Win-win Deal", §3.2, App.
  A.1.2) train masks on the pre-trained BERT at 50–90% sparsity. Over pre-trained weights a random
  first mask removes a random half (or 90%) of every matrix and leaves nothing the task can use.

**One mask per task** (Wortsman et al.): the backbone never changes, so every task's supermask is
learned on its own, as in their setting where the weights are fixed and each task's mask is trained
in turn: here one run per task (``-m task=rte,mrpc``), each run saving its task's bits (and its
head); loading a run's ``method.safetensors`` into the one backbone switches it to that task. A
multi-task run (``task=[a,b]``) is refused, since it would train one mask shared by the tasks.

What is masked: the transformer blocks' linear weight matrices (``binary_mask.eligible_tensors``;
``method.embeddings=true`` adds the embedding tables, as Zhou et al. mask every layer). Biases,
norms and the pooler stay fixed and unmasked; the task head trains as with every method (Zhou et
al. mask their randomly initialised output layer instead: a difference).

Counted: no float parameters of the method (``parameter_names`` is empty; the scores train but are
not kept, ``training_only``); the masks are ``params.mask_bits``; the record's ``sparsity`` is
measured on the merged weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from peftbench.methods import register
from peftbench.methods.base import MethodConfig, require
from peftbench.methods.binary_mask import eligible_tensors
from peftbench.methods.delta import add_delta
from peftbench.methods.learned_mask import LearnedMaskMethod, ScoredMask, top_k

SAMPLINGS = ("bernoulli", "topk")
INITS = ("kaiming", "magnitude")


@dataclass
class SupermaskConfig(MethodConfig):
    sampling: str = "bernoulli"  # bernoulli (Zhou et al. 2019) | topk (edge-popup, Ramanujan et al. 2020)
    sparsity: float = 0.5  # topk: the fraction of each tensor removed (Ramanujan et al.'s k = 50% kept)
    score_init: float = 0.0  # bernoulli: the constant every score starts at (Zhou et al.'s sigmoid_bias)
    init: str = "kaiming"  # topk: kaiming (Ramanujan et al.) | magnitude (s = |W|: the first mask is magnitude pruning's)
    embeddings: bool = False  # the embedding tables are masked too

    def check(self) -> None:
        require(self.sampling in SAMPLINGS, f"method.sampling must be one of {', '.join(SAMPLINGS)}, got '{self.sampling}'")
        require(self.init in INITS, f"method.init must be one of {', '.join(INITS)}, got '{self.init}'")
        require(
            0 <= self.sparsity < 1,
            f"method.sparsity must be in [0, 1) (the fraction of weights removed), got {self.sparsity}; e.g. method.sparsity=0.5",
        )
        require(math.isfinite(self.score_init), f"method.score_init must be a finite number, got {self.score_init}")


class BernoulliMask(ScoredMask):
    """Zhou et al.: b ~ Bernoulli(σ(s)) while training, its mode 1[s > 0] delivered."""

    def delivered(self) -> torch.Tensor:
        return self.scores.detach() > 0

    def training_mask(self) -> torch.Tensor:
        return torch.rand_like(self.scores) < torch.sigmoid(self.scores.detach())

    def surrogate(self) -> torch.Tensor:
        return torch.sigmoid(self.scores)


class EdgePopupMask(ScoredMask):
    """Ramanujan et al.: b keeps the top of |s|, ``zeros`` entries removed."""

    def delivered(self) -> torch.Tensor:
        return top_k(self.scores.abs(), self.scores.numel() - self._planned_zeros)

    def surrogate(self) -> torch.Tensor:
        return self.scores.abs()


@register
class Supermask(LearnedMaskMethod):
    name = "supermask"
    Config = SupermaskConfig

    def apply(self, model, anatomy) -> None:
        for _, param, owners in eligible_tensors(model, self.config.embeddings):
            add_delta(owners, self._mask(param))

    def _mask(self, param) -> ScoredMask:
        c = self.config
        scores = torch.empty(param.shape, dtype=torch.float32, device=param.device)
        if c.sampling == "bernoulli":
            return BernoulliMask(scores.fill_(c.score_init), zeros=0 if c.score_init > 0 else param.numel())
        if c.init == "magnitude":
            scores.copy_(param.detach().abs())
        else:
            torch.nn.init.kaiming_uniform_(scores, a=math.sqrt(5))
        return EdgePopupMask(scores, zeros=round(c.sparsity * param.numel()))

    def parameter_names(self, model) -> list[str]:
        return []
