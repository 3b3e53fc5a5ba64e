"""Compacter and Compacter++ (Karimi Mahabadi, Henderson & Ruder, NeurIPS 2021, "Compacter: Efficient
Low-Rank Hypercomplex Adapter Layers", arXiv 2106.04647): bottleneck adapters whose down and up
projections are low-rank parameterised hypercomplex multiplication (LPHM) layers.

Each adapter is the bottleneck of Houlsby et al. with its two linear maps replaced by PHM layers
(the paper's PHM layer, with shared A_i and low-rank B_i):

    y = PHM(x) = x W + b,      W = Σ_{i=1..n} A_i ⊗ B_i ∈ R^{k×d},      B_i = s_i t_iᵀ

with A_i ∈ R^{n×n} the "shared slow weights" — one set {A_i} for *every* adapter layer of the
model (both projections, every block, encoder and decoder) — and B_i ∈ R^{(k/n)×(d/n)} the
"adapter-specific fast weights", a rank-r product of s_i ∈ R^{(k/n)×r}, t_i ∈ R^{r×(d/n)}
(r = 1 in the paper). n must divide both k and d. The adapter is

    o = h + PHM_up(f(PHM_down(h)))      (h the output of the adapted sublayer)

Parameters: each PHM layer k → d has n·r·(k/n + d/n) + d = r(k + d) + d, so an adapter of width m
on hidden size d has 2r(d + m) + m + d (O(k + d) per layer, the paper's complexity), and the whole
model n³ more for the shared A. T5-base, m = 768/32 = 24, n = 4, r = 1: 2376 per adapter.

Placement (reusing the bottleneck adapters' machinery, peftbench.methods.adapters):
``compacter`` — Houlsby placement, after the self-attention output projection and after the FFN
    output projection, before the residual add (roles attn.o and ffn.out; in T5 the adapter
    follows the sublayer, before its dropout and the residual, exactly as in the authors'
    ``T5LayerSelfAttention`` / ``T5LayerFF``; no adapter on the decoder's cross-attention).
``compacter_pp`` — Compacter++: one adapter per block, after the FFN only (the authors'
    compacter++.json: ``add_adapter_in_self_attention: false``).
AdapterDrop (``drop_layers``) works as for the other adapters.

Everything else as in the authors' code and configs (rabeehk/compacter, seq2seq/configs/
compacter.json and compacter++.json, both for T5-base; modeling_t5.py; utils/utils.py; its
hypercomplex/layers.py and inits.py as mirrored in anonymousxzy/compacter):
``hypercomplex_division: 4`` (n = 4), ``task_reduction_factor: 32`` (m = d/32), ``non_linearity:
gelu_new`` (GELU, tanh approximation), ``factorized_phm: true`` with ``phm_rank = 1`` (B_i = s_i t_iᵀ),
``shared_phm_rule: true`` (one A for the model), ``hypercomplex_nonlinearity: glorot-uniform``:
each s_i and t_i Xavier-uniform with gain √2 (their ``glorot_uniform``), ``phm_c_init: normal``
with ``phm_init_range: 0.0001``: A ~ N(0, 1e-4²) (so the adapter starts near the identity), PHM
biases zero, and ``unfreeze_layer_norms: true``: *every* layer norm of the backbone trains (all
T5LayerNorm / nn.LayerNorm modules, the cross-attention and final norms included — the
authors' ``freeze_model_params``). We train the same: every LayerNorm / RMSNorm module of the
base model (except those in blocks AdapterDrop leaves out). The authors' PHMLinear has a
``phm_clamp`` switch (clamping outputs to [0, 4]) that is not in the paper's equations; we follow
the equations (no clamp). Its PHMLinear computes y = x H + b with H of shape (in, out), as here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
from torch import nn

from peftbench.errors import UserError
from peftbench.methods import register
from peftbench.methods.adapters import ACTIVATIONS, AdapterConfig, _Adapters
from peftbench.methods.base import require
from peftbench.models.anatomy import blocks, head_parameter_names

SHARED = "compacter_shared"  # the child of the base model holding the shared A_i (counted once)
INITS = ("glorot-uniform", "glorot-normal")  # for s_i, t_i (the authors' hypercomplex_nonlinearity)


@dataclass
class CompacterConfig(AdapterConfig):
    bottleneck: Optional[int] = None
    reduction_factor: Optional[float] = 32.0  # task_reduction_factor: 32 (T5-base, m = 24)
    activation: str = "gelu_new"
    init: str = "glorot-uniform"
    train_layer_norms: bool = True  # every layer norm of the backbone (unfreeze_layer_norms)
    phm_dim: int = 4  # n, hypercomplex_division
    phm_rank: int = 1  # r, the rank of B_i = s_i t_iᵀ
    phm_init_range: float = 1e-4  # std of A's normal initialisation

    inits: ClassVar[tuple[str, ...]] = INITS

    def check(self) -> None:
        super().check()
        require(self.phm_dim >= 1, f"method.phm_dim must be ≥ 1, got {self.phm_dim}; e.g. 4")
        require(self.phm_rank >= 1, f"method.phm_rank must be ≥ 1, got {self.phm_rank}; e.g. 1")
        require(self.phm_init_range > 0, f"method.phm_init_range must be positive, got {self.phm_init_range}")
        if self.bottleneck is not None:
            require(
                self.bottleneck % self.phm_dim == 0,
                f"method.phm_dim={self.phm_dim} must divide method.bottleneck={self.bottleneck}; "
                f"choose a bottleneck that is a multiple of {self.phm_dim}",
            )


class SharedRule(nn.Module):
    """The shared slow weights A_1..A_n ∈ R^{n×n}, stored as one (n, n, n) tensor: A[i] = A_i."""

    def __init__(self, n: int, like: torch.Tensor, init_range: float):
        super().__init__()
        self.A = nn.Parameter(torch.empty(n, n, n, device=like.device, dtype=like.dtype))
        if like.device.type != "meta":
            with torch.no_grad():
                self.A.normal_(mean=0.0, std=init_range)

    @property
    def n(self) -> int:
        return self.A.shape[0]


class PHMLinear(nn.Module):
    """y = x W + b, W = Σ_i A_i ⊗ (s_i t_iᵀ) ∈ R^{in×out}; the A_i are the model's shared ones.

    ``rule`` is referenced, not registered: it is a parameter of the base model, once.
    """

    def __init__(self, in_features: int, out_features: int, rule: SharedRule, rank: int, like: torch.Tensor):
        super().__init__()
        n = rule.n
        factory = {"device": like.device, "dtype": like.dtype}
        self.in_features, self.out_features = in_features, out_features
        self.s = nn.Parameter(torch.empty(n, in_features // n, rank, **factory))
        self.t = nn.Parameter(torch.empty(n, rank, out_features // n, **factory))
        self.bias = nn.Parameter(torch.empty(out_features, **factory))
        self.__dict__["rule"] = rule  # plain attribute: not a submodule, so not counted or saved again

    @torch.no_grad()
    def reset(self, init: str) -> None:
        fill = nn.init.xavier_uniform_ if init == "glorot-uniform" else nn.init.xavier_normal_
        for i in range(self.s.shape[0]):  # per i, gain √2, as the authors' glorot_uniform / glorot_normal
            fill(self.s[i], gain=math.sqrt(2))
            fill(self.t[i], gain=math.sqrt(2))
        nn.init.zeros_(self.bias)

    def weight(self) -> torch.Tensor:
        """W = Σ_i A_i ⊗ B_i as (in, out), with B_i = s_i t_i."""
        b = self.s @ self.t  # (n, in/n, out/n)
        n, p, q = b.shape
        # kron(A_i, B_i)[a·p + k, c·q + l] = A_i[a, c] · B_i[k, l], summed over i
        return torch.einsum("iac,ikl->akcl", self.rule.A, b).reshape(n * p, n * q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight() + self.bias


class PHMBottleneck(nn.Module):
    """A(h) = PHM_up(f(PHM_down(h))) — the residual is the caller's (SequentialAdapter)."""

    def __init__(self, d: int, m: int, activation: str, init: str, rule: SharedRule, rank: int, like: torch.Tensor):
        super().__init__()
        self.down = PHMLinear(d, m, rule, rank, like)
        self.act = ACTIVATIONS[activation]()
        self.up = PHMLinear(m, d, rule, rank, like)
        if like.device.type != "meta":
            self.down.reset(init)
            self.up.reset(init)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(h.to(self.down.s.dtype)))).to(h.dtype)


def is_norm(module: nn.Module) -> bool:
    """LayerNorm-like: nn.LayerNorm, T5LayerNorm, LlamaRMSNorm, ..."""
    return isinstance(module, nn.LayerNorm) or type(module).__name__.endswith(("LayerNorm", "RMSNorm"))


class _Compacter(_Adapters):
    Config = CompacterConfig

    def check_model(self, anatomy, arch_config) -> None:
        super().check_model(anatomy, arch_config)  # roles, bottleneck < hidden, drop_layers
        d = getattr(arch_config, anatomy.hidden_size_key)
        m, n = self.config.size(d), self.config.phm_dim
        if d % n or m % n:
            raise UserError(
                f"method.phm_dim={n} must divide the hidden size {d} and the bottleneck {m} of "
                f"{arch_config.model_type}; choose a phm_dim dividing both (e.g. 4 for d = 768, m = 24)"
            )

    def apply(self, model, anatomy) -> None:
        like = next(model.base_model.parameters())
        rule = SharedRule(self.config.phm_dim, like, self.config.phm_init_range)
        setattr(model.base_model, SHARED, rule)
        super().apply(model, anatomy)  # adapters at the sites (via _bottleneck), layer norms
        rule.A.requires_grad_(True)

    def parameter_names(self, model) -> list[str]:
        shared = [name for name, _ in model.named_parameters() if f"{SHARED}." in name]
        return shared + super().parameter_names(model)

    def _bottleneck(self, model, anatomy, like: nn.Module, layer_norm: bool = False) -> PHMBottleneck:
        d = getattr(model.config, anatomy.hidden_size_key)
        c = self.config
        rule = getattr(model.base_model, SHARED)
        return PHMBottleneck(d, c.size(d), c.activation, c.init, rule, c.phm_rank, next(like.parameters()))

    def _layer_norms(self, model, anatomy) -> list[str]:
        """Every norm of the backbone (not the head's), but none in a block AdapterDrop leaves out."""
        head = set(head_parameter_names(model))
        dropped = [b for b in blocks(model, anatomy) if int(b.rsplit(".", 1)[1]) < self.config.drop_layers]
        paths = []
        for path, module in model.named_modules():
            if not is_norm(module) or any(path.startswith(block + ".") for block in dropped):
                continue
            own = [f"{path}.{name}" for name, _ in module.named_parameters()]
            if own and not any(name in head for name in own):
                paths.append(path)
        return paths


@register
class Compacter(_Compacter):
    name = "compacter"
    sites = ("attn.o", "ffn.out")
    needs = ("attn.o", "ffn.out")


@register
class CompacterPP(_Compacter):
    name = "compacter_pp"
    sites = ("ffn.out",)
    needs = ("ffn.out",)
