"""Intrinsic-dimension fine-tuning, DID and SAID (Aghajanyan, Zettlemoyer & Gupta, ACL 2021).

Aghajanyan et al. ("Intrinsic Dimensionality Explains the Effectiveness of Language Model
Fine-Tuning", arXiv 2012.13255, §3) fine-tune in a random d-dimensional subspace, after Li et al.
(2018):

    DID  (Eq. 2):  θ^D = θ0^D + P(θ^d)
    SAID (Eq. 3):  θ_i^D = θ0_i^D + λ_i · P(θ^{d−m})_i

P: R^d → R^D is a fixed random Fastfood projection (``peftbench.methods.fastfood``: H G Π H B,
columns scaled to unit length); only θ^d (and λ) train. SAID ("structure-aware") gives each of
the m parameter tensors one trainable scale λ_i, taken *out of* the budget d: the projected
vector has d − m entries, so both variants train exactly d numbers (the d in the paper's d90
figures). ``structured: false`` is DID.

As the authors' released implementation does (``IntrinsicDimensionLight``): every parameter tensor
of the backbone (embeddings, matrices, biases, layer norms) is in θ^D; each tensor i gets its own
Fastfood P_i ∈ R^{D_i×d} (independent random factors, D_i its size), reshaped to the tensor;
θ^d starts at 0 and λ at 1, so the model starts exactly at θ0. The projection is fixed by
``seed``; θ0 is never written (the update is a ``torch.nn.utils.parametrize`` parametrisation:
W = W0 + λ P θ computed at each forward), so the frozen weights stay bit-identical.

What differs, and why:

* the classifier head trains directly, outside the subspace, as the run does for every method
  (the head is counted apart); in the authors' code the whole model (head included) is projected;
* their code subtracts m + 1 from d for SAID (one number of the budget is unused); we follow
  Eq. 3 (d − m);
* a tensor smaller than d: their Fastfood crops θ^d to the tensor's padded size, ours pads to
  cover d (every component of θ^d reaches every tensor; see ``fastfood.py``).

Because ΔW has the shape of W, it merges into the weights (W0 += λ P θ) and unmerges (W0 −= λ P θ,
equal up to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from peftbench.errors import UserError
from peftbench.methods import register
from peftbench.methods.base import Method, MethodConfig, require
from peftbench.methods.delta import add_delta, backbone_tensors, merge, unmerge
from peftbench.methods.fastfood import Fastfood


@dataclass
class SAIDConfig(MethodConfig):
    dim: int = 1000  # d: trainable numbers of the method (θ^{d−m} and the m λ's for SAID)
    structured: bool = True  # SAID (one λ per parameter tensor); false: DID
    seed: int = 0  # fixes the random projection

    def check(self) -> None:
        require(self.dim >= 1, f"method.dim must be a positive integer, got {self.dim}; e.g. method.dim=1000")


class IntrinsicVector(nn.Module):
    """The trainable θ (d or d − m entries, zeros) and, for SAID, λ (m entries, ones)."""

    def __init__(self, size: int, tensors: int, structured: bool, device=None):
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(size, device=device))
        self.lam = nn.Parameter(torch.ones(tensors, device=device)) if structured else None


class SubspaceDelta(nn.Module):
    """Parametrisation W = W0 + λ_i · reshape(P_i θ); ``merged``: W0 already holds the update."""

    def __init__(self, source: IntrinsicVector, index: int, shape, generator, device):
        super().__init__()
        self._source = (source,)  # a tuple: θ and λ are registered once, on the base model
        self.index = index
        self.shape = tuple(shape)
        self.projection = Fastfood(source.theta.numel(), int(torch.Size(shape).numel()), generator, device)
        self.merged = False

    def delta(self) -> torch.Tensor:
        source = self._source[0]
        update = self.projection(source.theta)
        if source.lam is not None:
            update = update * source.lam[self.index]
        return update.view(self.shape)

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        if self.merged:
            return original
        return original + self.delta().to(original.dtype)

    def fold_into(self, original: torch.Tensor) -> None:
        original += self.delta().to(original.dtype)

    def unfold_from(self, original: torch.Tensor) -> None:
        original -= self.delta().to(original.dtype)


@register
class SAID(Method):
    name = "said"
    Config = SAIDConfig
    mergeable = True

    def apply(self, model, anatomy) -> None:
        targets = backbone_tensors(model)
        m = len(targets)
        d = self.config.dim
        if self.config.structured and d <= m:
            raise UserError(
                f"method.dim={d} leaves nothing to project: SAID spends {m} of it on one λ per parameter "
                f"tensor of this model; choose method.dim > {m}, or method.structured=false (DID)"
            )
        size = d - m if self.config.structured else d
        device = targets[0][1].device
        base = _base_module(model)
        base.said = IntrinsicVector(size, m, self.config.structured, device)
        generator = torch.Generator().manual_seed(self.config.seed)
        for index, (_, param, owners) in enumerate(targets):
            add_delta(owners, SubspaceDelta(base.said, index, param.shape, generator, param.device))
        for param in base.said.parameters():
            param.requires_grad_(True)

    def parameter_names(self, model) -> list[str]:
        return [n for n, _ in model.named_parameters() if n.split(".")[-2:] in (["said", "theta"], ["said", "lam"])]

    def evaluating(self, model):
        """Evaluation changes no weight, so each W0 + λ P θ is computed once for all its batches
        (P θ is a Fastfood transform of the tensor's size; per batch it dominated evaluation)."""
        return parametrize.cached()

    def merge(self, model) -> None:
        merge(model, SubspaceDelta)

    def unmerge(self, model) -> None:
        unmerge(model, SubspaceDelta)


def _base_module(model) -> nn.Module:
    """The backbone (``model.bert``, ``model.transformer``…), where the method's vector lives.

    Parameters outside it are the head's (``head_parameter_names``), so θ and λ must sit inside.
    """
    prefix = getattr(model, "base_model_prefix", "")
    return getattr(model, prefix) if prefix and hasattr(model, prefix) else model
