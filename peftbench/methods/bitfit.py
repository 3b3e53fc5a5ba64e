"""BitFit (Ben Zaken, Ravfogel & Goldberg, ACL 2022): train only the bias terms.

Every linear and layer-norm output is ``y = W x + b``; BitFit freezes every W (and LayerNorm γ)
and trains every b — in BERT-large about 0.08% of the weights; in the LoRA paper's Table 2,
0.1M for RoBERTa-base. The paper's smaller variant trains only the query bias b_q and the bias
b_m2 of the second MLP layer of its §3.1 equations, h4 = GELU(W_m2 h3 + b_m2) — the FFN's input
projection, our ``ffn.in`` (m1 is the attention output, m3 the FFN output): ``roles: [attn.q,
ffn.in]``, about 0.04% of BERT-large.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from peftbench.errors import UserError
from peftbench.methods import register
from peftbench.methods.base import Method, MethodConfig, require
from peftbench.models.anatomy import ROLES, Part, locate


@dataclass
class BitFitConfig(MethodConfig):
    roles: Optional[list[str]] = None  # None: every bias of the backbone

    def check(self) -> None:
        if self.roles is not None:
            require(len(self.roles) > 0, "method.roles is empty; pass null for all biases or e.g. [attn.q,ffn.out]")
            unknown = sorted(set(self.roles) - set(ROLES))
            require(not unknown, f"method.roles has unknown roles {unknown}; known: {', '.join(ROLES)}")


@register
class BitFit(Method):
    name = "bitfit"
    Config = BitFitConfig

    def check_model(self, anatomy, arch_config) -> None:
        super().check_model(anatomy, arch_config)
        if not anatomy.has_bias:
            raise UserError(
                f"bitfit trains bias terms, and {arch_config.model_type} has none; choose another method"
            )
        for role in self.config.roles or ():
            sites = [stack.roles[role] for stack in anatomy.stacks if role in stack.roles]
            if not sites:
                raise UserError(f"role {role} does not exist in {arch_config.model_type}; drop it from method.roles")
            if any(isinstance(site, Part) for site in sites):
                raise UserError(
                    f"role {role} is a slice of a fused projection in {arch_config.model_type}; "
                    "bitfit cannot train part of a bias: use method.roles=null (all biases)"
                )

    def apply(self, model, anatomy) -> None:
        self._names = self._select(model, anatomy)
        parameters = dict(model.named_parameters())
        for name in self._names:
            parameters[name].requires_grad_(True)

    def parameter_names(self, model) -> list[str]:
        return list(self._names)

    def _select(self, model, anatomy) -> list[str]:
        from peftbench.models.anatomy import head_parameter_names

        head = set(head_parameter_names(model))
        if self.config.roles is None:
            return [n for n, p in model.named_parameters() if n.endswith("bias") and n not in head]
        # by the tensor, not the path: a method applied before (LoRA in method=[lora,bitfit_qm2]) may
        # have wrapped the projection, whose bias then sits at ``<path>.base.bias``
        names = {id(param): name for name, param in model.named_parameters()}
        return [names[id(model.get_submodule(path).bias)] for role in self.config.roles for path, _ in locate(model, anatomy, role)]
