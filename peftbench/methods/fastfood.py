"""The Fastfood transform (Le, Sarlós & Smola 2013) as Li et al. (2018) use it for random subspaces.

Li et al., "Measuring the Intrinsic Dimension of Objective Landscapes" (ICLR 2018, §2 and App.
S7), train θ^(D) = θ0^(D) + P θ^(d) with P ∈ R^{D×d} a random projection whose columns have
(about) unit length, never stored: P is the Fastfood product

    P x = (1 / σ) · H G Π H B · pad(x)   truncated to its first D entries,

with, for the padded size L = 2^⌈log2 max(D, d)⌉,

    B  diagonal, i.i.d. ±1 entries             (the ``sign`` buffer)
    H  the (unnormalised) L×L Walsh–Hadamard matrix, H_ij = (−1)^{popcount(i & j)}
    Π  a random permutation, (Π v)_i = v_{π(i)} (the ``permutation`` buffer)
    G  diagonal, i.i.d. N(0, 1) entries         (the ``gaussian`` buffer)
    σ  = sqrt(L · Σ G²) · sqrt(D / L) = sqrt(D · Σ G²)

H B has orthogonal columns of norm √L, and G Π H B then H scale every column to norm
√(L·ΣG²); dividing by √(L·ΣG²) makes the L-dim columns unit vectors, and √(D/L) corrects for
keeping D of the L rows. This is the normalisation of Li et al.'s code and of Aghajanyan et al.'s
(2021) ``fastfood_torched``. H is applied by the fast Walsh–Hadamard transform in O(L log L)
(``fwht``); no D×d matrix is ever built. One deviation in a corner case: their code pads x to
L = 2^⌈log2 D⌉ and so crops x when d > L (a bias smaller than d sees only the first L entries
of θ^d); here L also covers d, so every P has all d columns.
"""

from __future__ import annotations

import math

import torch
from scipy.linalg import hadamard
from torch import nn


BLOCK = 16  # the Hadamard factor applied per pass (measured on CPU: 16 beat 64, 256 and one-bit butterflies)


def fwht(x: torch.Tensor) -> torch.Tensor:
    """The unnormalised Walsh–Hadamard transform H x along the last dimension (a power of two).

    H is Sylvester's ordering (``scipy.linalg.hadamard``): H_2n = [[H_n, H_n], [H_n, −H_n]].
    H is symmetric and H H = n·I, so ``fwht(fwht(x)) == n · x``.

    Computed as Kronecker factors: H_n = H_{s_1} ⊗ … ⊗ H_{s_m} (each s ≤ ``BLOCK``), and H_s
    applied to one binary digit group of the index at a time, as one batched matrix product per
    group, so a 2^24-long transform (a word embedding's) takes 6 passes over memory, not 24.
    """
    n = x.shape[-1]
    if n & (n - 1):
        raise ValueError(f"the Walsh–Hadamard transform needs a power-of-two length, got {n}")
    lead = x.shape[:-1]
    stride = 1
    while stride < n:
        size = min(BLOCK, n // stride)
        x = torch.from_numpy(hadamard(size)).to(x) @ x.reshape(-1, size, stride)  # H_size on this digit group
        stride *= size
    return x.reshape(*lead, n)


class _WalshHadamard(torch.autograd.Function):
    """H x with backward H g (H is symmetric): nothing is saved for the backward pass."""

    @staticmethod
    def forward(ctx, x):
        return fwht(x)

    @staticmethod
    def backward(ctx, grad):
        return fwht(grad)


def walsh_hadamard(x: torch.Tensor) -> torch.Tensor:
    """Differentiable ``fwht`` that keeps no intermediate tensors for the backward pass."""
    return _WalshHadamard.apply(x)


def padded_size(D: int, d: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(D, d, 1))))


class Fastfood(nn.Module):
    """A fixed random map R^d → R^D, x ↦ (1/σ) (H G Π H B pad(x))[:D] (see the module docstring).

    The random factors are buffers drawn from ``generator`` (on the CPU, so a seed gives the same
    P on every device) and are not saved in state dicts: they are rebuilt from the seed.
    """

    def __init__(self, d: int, D: int, generator: torch.Generator | None = None, device=None):
        super().__init__()
        self.d, self.D = d, D
        self.L = L = padded_size(D, d)
        if torch.device(device or "cpu").type == "meta":  # shapes only (parameter counting)
            sign = torch.empty(L, dtype=torch.int8, device="meta")
            permutation = torch.empty(L, dtype=torch.long, device="meta")
            gaussian = torch.empty(L, device="meta")
            scale = torch.empty((), device="meta")
        else:
            sign = (torch.randint(0, 2, (L,), generator=generator) * 2 - 1).to(torch.int8)
            permutation = torch.randperm(L, generator=generator)
            gaussian = torch.randn(L, generator=generator)
            scale = 1.0 / torch.sqrt(D * gaussian.double().square().sum()).float()
        self.register_buffer("sign", sign.to(device), persistent=False)
        self.register_buffer("permutation", permutation.to(device), persistent=False)
        self.register_buffer("gaussian", gaussian.to(device), persistent=False)
        self.register_buffer("scale", scale.to(device), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """P x for a d-vector x (computed in float32), as a D-vector."""
        x = x.float()
        if self.L > self.d:
            x = torch.cat((x, x.new_zeros(self.L - self.d)))
        x = walsh_hadamard(x * self.sign)  # H B x
        x = x[self.permutation] * self.gaussian  # G Π H B x
        x = walsh_hadamard(x)  # H G Π H B x
        return x[: self.D] * self.scale

    def extra_repr(self) -> str:
        return f"d={self.d}, D={self.D}, L={self.L}"
