"""Two or more methods on one backbone at once: ``method=[lora,bitfit]``.

The combinations the literature studies: LoRA with BitFit, adapters with BitFit or prefixes (He et
al., ICLR 2022, arXiv 2110.04366, §4.4's "MAM adapter" mixes prefix tuning and a parallel adapter;
Mao et al., ACL 2022, arXiv 2110.07577, UniPELT, combines LoRA, prefix tuning and adapters).
Each part is built from its own ``conf/method/<name>.yaml`` (settings of a part:
``+method.settings.lora.r=4``) and applied in the order given, so a later method sees the
earlier one's modules (BitFit after LoRA also trains the wrapped projections' biases). Parameters
are counted once: a tensor two parts train (BitFit's and Houlsby's layer-norm biases) is one
parameter of the combination. UniPELT's learned gates are not implemented.

Methods that do not compose say so (``Method.composable``) and are refused: ``full`` and ``head``
(nothing left to add to), ``icl`` (trains nothing), ``sparse`` (searches its parameters by
training first), ``adapter_fusion`` (builds on finished runs), and another combination.
"""

from __future__ import annotations

import contextlib

from dataclasses import dataclass, field
from typing import Any

from peftbench.errors import UserError
from peftbench.methods import build_method, register, registered
from peftbench.methods.base import Method, MethodConfig, require

@dataclass
class ComposedConfig(MethodConfig):
    methods: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    parts: list[Any] = field(default_factory=list)  # each part's config node (``peftbench.config.with_parts``)

    def check(self) -> None:
        require(len(self.methods) >= 2, f"a combination needs two methods or more, e.g. method=[lora,bitfit]; got {self.methods}")
        require(len(set(self.methods)) == len(self.methods), f"method=[…] names a method twice: {self.methods}")
        for name in self.settings:
            require(name in self.methods, f"method.settings names {name}, which the combination {self.methods} lacks")
        if len(self.parts) != len(self.methods):
            raise ValueError("a combination is built from peftbench.config.with_parts(node), which reads each part's preset")


@register
class Composed(Method):
    name = "composed"
    Config = ComposedConfig

    composable = False  # a combination of combinations is one combination: name its parts

    def __init__(self, config: ComposedConfig):
        super().__init__(config)
        self.parts = [build_method(node) for node in config.parts]
        for part in self.parts:
            if not part.composable:
                refused = ", ".join(name for name, cls in registered().items() if not cls.composable)
                raise UserError(f"method {part.name} does not combine with others ({refused} do not)")
        self.name = "+".join(config.methods)  # the record's and the run id's method: lora+bitfit
        self.generates = frozenset.intersection(*(part.generates for part in self.parts))

    def check_model(self, anatomy, arch_config) -> None:
        for part in self.parts:
            part.check_model(anatomy, arch_config)

    def preferred_format(self, task, family: str) -> str | None:
        """The first part's preference (P-tuning's cloze), if a part has one."""
        return next(filter(None, (part.preferred_format(task, family) for part in self.parts)), None)

    def check_format(self, task, format_name: str) -> None:
        for part in self.parts:
            part.check_format(task, format_name)

    def check_tokenizer(self, load) -> None:
        for part in self.parts:
            part.class_labels = self.class_labels
            part.check_tokenizer(load)

    def prompt_task(self, task, train_rows: list[dict], seed: int, tokenizer, max_length: int):
        """The task as each part in turn rewrites it (P-tuning's template)."""
        for part in self.parts:
            task = part.prompt_task(task, train_rows, seed, tokenizer, max_length)
        return task

    def record_entry(self) -> dict:
        return {key: value for part in self.parts for key, value in part.record_entry().items()}

    def apply(self, model, anatomy) -> None:
        owned: set[int] = set()
        for part in self.parts:
            part.tokenizer, part.tasks, part.class_labels = self.tokenizer, self.tasks, self.class_labels
            part.apply(model, anatomy)
            own = set(part.parameter_names(model))
            owned |= {id(param) for name, param in model.named_parameters() if name in own}
        # names once every part is on: a later part may have wrapped an earlier one's module
        self._names = [name for name, param in model.named_parameters() if id(param) in owned]

    def parameter_names(self, model) -> list[str]:
        """Every part's parameters, each tensor once, by its name in the combined model."""
        return list(self._names)

    def evaluating(self, model):
        stack = contextlib.ExitStack()
        for part in self.parts:
            stack.enter_context(part.evaluating(model))
        return stack

    def saved_buffers(self, model) -> dict:
        return {name: tensor for part in self.parts for name, tensor in part.saved_buffers(model).items()}
