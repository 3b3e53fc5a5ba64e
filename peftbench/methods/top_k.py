"""Top-k fine-tuning: only the last k transformer blocks (and the head) train.

The "FT-Top2" baseline of the LoRA paper (Hu et al. 2022, Table 3: GPT-2 medium, last two
layers, 25.19M) after Li & Liang (2021), and the "variable fine-tuning" of Houlsby et al. (2019,
§3.4: fine-tune the top k layers). Defined for a single stack of blocks (encoders, decoders); for
an encoder-decoder "the top layers" is ambiguous and the method refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftbench.errors import UserError
from peftbench.methods import register
from peftbench.methods.base import Method, MethodConfig, require
from peftbench.models.anatomy import blocks


@dataclass
class TopKConfig(MethodConfig):
    k: int = 2

    def check(self) -> None:
        require(self.k >= 1, f"method.k must be ≥ 1, got {self.k}; e.g. method.k=2")


@register
class TopK(Method):
    name = "top_k"
    Config = TopKConfig
    families = frozenset({"encoder", "decoder"})

    def check_model(self, anatomy, arch_config) -> None:
        super().check_model(anatomy, arch_config)
        layers = getattr(arch_config, anatomy.layers_key)
        if self.config.k > layers:
            raise UserError(f"method.k={self.config.k} exceeds the {layers} layers of {arch_config.model_type}; choose k ≤ {layers}")

    def apply(self, model, anatomy) -> None:
        self._top = blocks(model, anatomy)[-self.config.k :]
        for path in self._top:
            model.get_submodule(path).requires_grad_(True)

    def parameter_names(self, model) -> list[str]:
        prefixes = tuple(f"{path}." for path in self._top)
        return [name for name, _ in model.named_parameters() if name.startswith(prefixes)]
