"""(IA)³ (Liu et al., NeurIPS 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and
Cheaper than In-Context Learning", arXiv 2205.05638, the T-Few recipe): learned rescaling vectors.

Three vectors l_k, l_v ∈ R^{d_k}, R^{d_v} and l_ff ∈ R^{d_ff} rescale the keys, the values and
the feed-forward inner activation of every block (§3.3):

    softmax( Q (l_k ⊙ K)ᵀ / √d_k ) (l_v ⊙ V)        and        (l_ff ⊙ γ(W_1 x)) W_2

initialised to ones, so the adapted model starts as the pretrained one. In an encoder–decoder
they also rescale the keys and values of the cross-attention: L(d_k + d_v + d_ff) parameters in
the encoder and L(2d_k + 2d_v + d_ff) in the decoder. In roles: ``targets`` are projections
whose *output* is scaled (attn.k, attn.v, xattn.k, xattn.v; the ``xattn`` roles apply where the
model has cross-attention) and ``feedforward`` those whose *input* is scaled (ffn.out: its input
is the inner activation, γ(W_1 x), or γ(W_gate x) ⊙ W_up x in Llama's gated FFN).

Both fold into the weights: l ⊙ (W x + b) = (diag(l) W) x + l ⊙ b, and W (l ⊙ x) = (W diag(l)) x
(the input columns of ffn.out), so the method merges with no inference cost, and unmerges by
dividing (as HF peft does, with its 1e-8 guard). On GPT-2's fused ``c_attn`` = [q; k; v] only
the k and v slices are scaled; peft scales all of ``c_attn`` (d more parameters per layer).
This matches HF peft's ``IA3Config(target_modules=[k, v, ffn-out], feedforward_modules=[ffn-out])``;
``to_peft`` exports a fused projection's full vector, ones on the unscaled slices (exact).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from peftbench.errors import UserError
from peftbench.methods import register
from peftbench.methods.base import Method, MethodConfig, require, require_roles
from peftbench.methods.wrapped import WrappedProjection, projection_sites, replace_module
from peftbench.models.anatomy import ROLES, locate

EPSILON = 1e-8  # peft's guard against division by zero when unmerging


@dataclass
class IA3Config(MethodConfig):
    targets: list[str] = field(default_factory=lambda: ["attn.k", "attn.v", "xattn.k", "xattn.v"])
    feedforward: list[str] = field(default_factory=lambda: ["ffn.out"])

    def check(self) -> None:
        require(self.targets or self.feedforward, "method.targets and method.feedforward are both empty; e.g. method.targets=[attn.k,attn.v]")
        for key in ("targets", "feedforward"):
            unknown = sorted(set(getattr(self, key)) - set(ROLES))
            require(not unknown, f"method.{key} has unknown roles {unknown}; known: {', '.join(ROLES)}")
        both = sorted(set(self.targets) & set(self.feedforward))
        require(not both, f"roles {both} are in both method.targets and method.feedforward; keep each in one")


class IA3Layer(WrappedProjection):
    """A frozen linear (``nn.Linear`` or GPT-2's ``Conv1D``) whose output or input is rescaled by ``ia3_l``.

    ``feedforward`` scales the input (``ia3_l`` has the input width), else the output: all of it
    (``parts`` None) or the given equal slices of ``count`` (``ia3_l`` then holds the slices'
    vectors one after the other).
    """

    def __init__(self, base: nn.Module, feedforward: bool, parts=None, count: int = 1):
        super().__init__(base, parts, count)
        self.feedforward = feedforward
        if feedforward:
            size = self.in_features
        else:
            size = self.part_size * len(self.parts) if self.parts is not None else self.out_features
        weight = base.weight
        self.ia3_l = nn.Parameter(torch.ones(size, dtype=weight.dtype, device=weight.device))

    def scale(self) -> torch.Tensor:
        """The full scaling vector: over the input if feedforward, else over the output (ones elsewhere)."""
        if self.feedforward or self.parts is None:
            return self.ia3_l
        pieces = list(self.ia3_l.new_ones(self.count, self.part_size).unbind(0))
        for j, index in enumerate(self.parts):
            pieces[index] = self.ia3_l[j * self.part_size : (j + 1) * self.part_size]
        return torch.cat(pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            return self.base(x)
        if self.feedforward:
            return self.base((x * self.scale()).to(x.dtype))
        out = self.base(x)
        return (out * self.scale()).to(out.dtype)

    def fold(self, inverse: bool) -> None:
        """Scale W's rows (output) or columns (input) by l, or by 1/l to undo it."""
        s = 1 / (self.scale() + EPSILON) if inverse else self.scale()
        weight = self.base.weight
        s = s.to(weight.dtype)
        # W as stored: Linear (out, in), Conv1D (in, out)
        scales_rows = self.feedforward == self.transposed
        weight.mul_(s[:, None] if scales_rows else s[None, :])
        if not self.feedforward and self.base.bias is not None:
            self.base.bias.mul_(s.to(self.base.bias.dtype))


@register
class IA3(Method):
    name = "ia3"
    Config = IA3Config
    mergeable = True
    in_peft = True

    def check_model(self, anatomy, arch_config) -> None:
        super().check_model(anatomy, arch_config)
        present = anatomy.roles()
        wanted = set(self.config.targets) | set(self.config.feedforward)
        require_roles(anatomy, wanted, arch_config.model_type, "method roles", optional=("xattn.",))
        if not wanted & present:
            raise UserError(f"none of the method's roles exist in {arch_config.model_type}")
        fused = sorted(
            r for stack in anatomy.stacks for r, site in stack.roles.items()
            if r in self.config.feedforward and not isinstance(site, str)
        )  # fmt: skip
        if fused:
            raise UserError(f"method.feedforward roles {fused} are slices of a fused projection; their input cannot be scaled alone")

    def apply(self, model, anatomy) -> None:
        outputs = projection_sites(model, anatomy, self.config.targets)
        inputs = {path for role in self.config.feedforward for path, _ in locate(model, anatomy, role)}
        clash = sorted(inputs & set(outputs))
        if clash:
            raise UserError(f"modules {clash[:2]} would be scaled at both input and output; separate the roles")
        if not outputs and not inputs:
            raise UserError("method.targets and method.feedforward match no module of this model")
        for path, slices in outputs.items():
            self._wrap(model, path, IA3Layer(model.get_submodule(path), feedforward=False, **slices))
        for path in sorted(inputs):
            self._wrap(model, path, IA3Layer(model.get_submodule(path), feedforward=True))

    @staticmethod
    def _wrap(model, path: str, layer: IA3Layer) -> None:
        replace_module(model, path, layer)
        layer.ia3_l.requires_grad_(True)

    def layers(self, model) -> list[IA3Layer]:
        return [m for m in model.modules() if isinstance(m, IA3Layer)]

    def parameter_names(self, model) -> list[str]:
        return [n for n, _ in model.named_parameters() if n.endswith(".ia3_l")]

    def to_peft(self, model) -> tuple[object, dict]:
        """peft's IA3Config on the same modules (input-scaled ones as ``feedforward_modules``), and the vectors.

        A fused projection's vector is exported whole (``IA3Layer.scale``: ones on the slices the
        run does not scale, e.g. GPT-2's q in ``c_attn``), since peft scales the whole output.
        """
        from peft import IA3Config

        paths = {name: module for name, module in model.named_modules() if isinstance(module, IA3Layer)}
        if any(layer.merged for layer in paths.values()):
            raise UserError("the (IA)³ vectors are merged into the weights; unmerge before exporting")
        config = IA3Config(
            target_modules=sorted(paths),
            feedforward_modules=sorted(name for name, layer in paths.items() if layer.feedforward),
            fan_in_fan_out=any(layer.transposed for layer in paths.values()),
        )  # fmt: skip
        state = {f"base_model.model.{name}.ia3_l.default": layer.scale().detach() for name, layer in paths.items()}
        return config, state
