"""LoRA (Hu et al., ICLR 2022, arXiv 2106.09685): low-rank updates of frozen weight matrices.

For a frozen W0 ∈ R^{d×k} (Eq. 3):

    h = W0 x + ΔW x = W0 x + (α / r) · B A x,      B ∈ R^{d×r}, A ∈ R^{r×k}, r ≪ min(d, k)

B = 0, so ΔW = 0 at the start, and A is random (§4.1): ``init`` says how.

* ``kaiming`` (default): A as a linear layer's weight, ``kaiming_uniform_(a=√5)``, as the paper's
  released code does (microsoft/LoRA@c4593f06 ``loralib/layers.py``, ``Linear.reset_parameters``, whose
  comment notes that this "is different than what is described in the paper") and as HF peft
  does by default (``init_lora_weights=True``);
* ``gaussian``: A ~ N(0, σ²), the paper's "random Gaussian initialization for A" (§4.1). The
  paper gives no σ; σ = 1/r is HF peft's ``init_lora_weights="gaussian"``.

The run's record keeps the choice (``method_config.init``). Dropout applies to the input of the
A–B path. The paper adapts the attention projections W_q and W_v (``targets: [attn.q, attn.v]``;
§7.1 studies other sets). Because ΔW has the shape of W0, it merges into the weight for inference (W = W0 + ΔW)
with no extra latency, and unmerges exactly back.

A role inside a fused projection (GPT-2's ``c_attn`` = [q; k; v]) gets its own A, B on its
slice of the output, as the paper's ``MergedLinear`` does: the parameter count is that of one
LoRA per role.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from peftbench.errors import UserError
from peftbench.methods import register
from peftbench.methods.base import Method, MethodConfig, require, require_roles
from peftbench.methods.wrapped import WrappedProjection, projection_sites, replace_module
from peftbench.models.anatomy import ROLES

INITS = ("kaiming", "gaussian")


@dataclass
class LoRAConfig(MethodConfig):
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.1
    targets: list[str] = field(default_factory=lambda: ["attn.q", "attn.v"])
    init: str = "kaiming"  # A's initialisation: kaiming (the released code) | gaussian (the paper's text)

    def check(self) -> None:
        require(self.r >= 1, f"method.r must be a positive integer, got {self.r}; e.g. method.r=8")
        require(self.alpha > 0, f"method.alpha must be positive, got {self.alpha}; e.g. method.alpha=16")
        require(0 <= self.dropout < 1, f"method.dropout must be in [0, 1), got {self.dropout}")
        require(len(self.targets) > 0, "method.targets is empty; e.g. method.targets=[attn.q,attn.v]")
        unknown = sorted(set(self.targets) - set(ROLES))
        require(not unknown, f"method.targets has unknown roles {unknown}; known: {', '.join(ROLES)}")
        require(self.init in INITS, f"method.init '{self.init}' is unknown; choose one of {', '.join(INITS)}")


class LoRALayer(WrappedProjection):
    """A frozen projection plus (α/r)·B A on its output, or on some slices of a fused output.

    ``parts`` is None for the whole output, else the indices of the equal output slices (of
    ``count``) that get an update. ``lora_A`` holds one A per part stacked (parts·r × k) and
    ``lora_B`` one B per part (parts × d_part × r).
    """

    def __init__(self, base: nn.Module, r: int, alpha: float, dropout: float, parts=None, count=1, init="kaiming"):
        super().__init__(base, parts, count)
        n = len(self.parts) if self.parts is not None else 1
        d = self.part_size if self.parts is not None else self.out_features
        in_features = self.in_features
        self.scaling = alpha / r
        self.r = r
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        weight = base.weight
        self.lora_A = nn.Parameter(torch.empty(n * r, in_features, dtype=weight.dtype, device=weight.device))
        self.lora_B = nn.Parameter(torch.zeros(n, d, r, dtype=weight.dtype, device=weight.device))
        if weight.device.type != "meta" and init == "gaussian":
            nn.init.normal_(self.lora_A, std=1 / r)
        elif weight.device.type != "meta":
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def delta_weight(self) -> torch.Tensor:
        """ΔW = (α/r)·B A as (out, in), zero outside the adapted slices."""
        A = self.lora_A.view(-1, self.r, self.lora_A.shape[-1])  # (n, r, k)
        per_part = torch.bmm(self.lora_B, A) * self.scaling  # (n, d, k)
        if self.parts is None:
            return per_part[0]
        delta = torch.zeros_like(self.weight_out_in())
        for j, index in enumerate(self.parts):
            delta[index * self.part_size : (index + 1) * self.part_size] = per_part[j]
        return delta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.merged:
            return out
        return out + self.update(x)

    def update(self, x: torch.Tensor) -> torch.Tensor:
        """ΔW x = (α/r)·B A x on the projection's output (zero outside the adapted slices); the
        routing methods mix the updates of several LoRAs of one projection (``methods/routing.py``)."""
        hidden = F.linear(self.dropout(x), self.lora_A)  # (..., n·r)
        if self.parts is None:
            return F.linear(hidden, self.lora_B[0]) * self.scaling
        hidden = hidden.unflatten(-1, (len(self.parts), self.r))
        updates = torch.einsum("...nr,ndr->...nd", hidden, self.lora_B) * self.scaling
        delta = updates.new_zeros(*x.shape[:-1], self.count, self.part_size)
        delta[..., self.parts, :] = updates
        return delta.flatten(-2)

    def fold(self, inverse: bool) -> None:
        """W0 ± ΔW."""
        delta = self.delta_weight()
        self.add_to_weight(-delta if inverse else delta)


@register
class LoRA(Method):
    name = "lora"
    Config = LoRAConfig
    mergeable = True
    in_peft = True

    def check_model(self, anatomy, arch_config) -> None:
        super().check_model(anatomy, arch_config)
        require_roles(anatomy, self.config.targets, arch_config.model_type, "method.targets")
        width = getattr(arch_config, anatomy.hidden_size_key)
        if self.config.r > width:
            raise UserError(f"method.r={self.config.r} exceeds the layer width {width}; choose r ≤ {width}")

    def apply(self, model, anatomy) -> None:
        for path, slices in projection_sites(model, anatomy, self.config.targets).items():
            c = self.config
            layer = LoRALayer(model.get_submodule(path), c.r, c.alpha, c.dropout, init=c.init, **slices)
            replace_module(model, path, layer)
            layer.lora_A.requires_grad_(True)
            layer.lora_B.requires_grad_(True)

    def parameter_names(self, model) -> list[str]:
        return [n for n, _ in model.named_parameters() if n.endswith((".lora_A", ".lora_B"))]

    def to_peft(self, model) -> tuple[object, dict]:
        """peft's LoraConfig with the same r, alpha, dropout on the same modules, and the weights.

        A fused projection with n adapted slices becomes one peft LoRA of rank n·r whose B is
        block-diagonal over the slices (and alpha n·α, so the scale α/r is unchanged): the same ΔW.
        """
        from peft import LoraConfig

        paths = {name: module for name, module in model.named_modules() if isinstance(module, LoRALayer)}
        fused = {name: len(m.parts) for name, m in paths.items() if m.parts is not None}
        config = LoraConfig(
            r=self.config.r, lora_alpha=self.config.alpha, lora_dropout=self.config.dropout,
            target_modules=sorted(paths), fan_in_fan_out=any(m.transposed for m in paths.values()),
            rank_pattern={f"^{name}$": n * self.config.r for name, n in fused.items()},
            alpha_pattern={f"^{name}$": n * self.config.alpha for name, n in fused.items()},
        )  # fmt: skip
        state = {}
        for name, layer in paths.items():
            prefix = f"base_model.model.{name}"
            B = layer.lora_B.detach()
            if layer.parts is not None:
                blocks = torch.zeros(layer.out_features, B.shape[0] * layer.r, dtype=B.dtype)
                for j, index in enumerate(layer.parts):
                    rows = slice(index * layer.part_size, (index + 1) * layer.part_size)
                    blocks[rows, j * layer.r : (j + 1) * layer.r] = B[j]
                B = blocks
            else:
                B = B[0]
            state[f"{prefix}.lora_A.default.weight"] = layer.lora_A.detach()
            state[f"{prefix}.lora_B.default.weight"] = B
        return config, state
