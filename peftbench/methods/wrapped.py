"""A frozen projection wrapped by a method (LoRA, IA3, adapters), and how to swap it into a model.

The wrapper keeps the original layer as ``base`` and its ``weight`` / ``bias`` visible, since model
code reads them (T5's feed-forward checks ``wo.weight.dtype``). It handles both storages of a
projection: ``nn.Linear`` (W as out × in) and GPT-2's ``Conv1D`` (W as in × out), and a role that
is one of ``count`` equal output slices of a fused projection (``parts``: the adapted slices).
"""

from __future__ import annotations

import torch
from torch import nn

from peftbench.models.anatomy import locate


class WrappedProjection(nn.Module):
    def __init__(self, base: nn.Module, parts=None, count: int = 1):
        super().__init__()
        self.base = base
        self.transposed = not isinstance(base, nn.Linear)  # Conv1D stores W as (in, out)
        self.out_features, self.in_features = self.weight_out_in().shape
        self.parts = sorted(parts) if parts is not None else None
        self.count = count
        self.part_size = self.out_features // count
        self.merged = False

    @property
    def weight(self) -> torch.Tensor:
        """The frozen W, for model code that reads ``layer.weight``."""
        return self.base.weight

    @property
    def bias(self):
        return self.base.bias

    def weight_out_in(self) -> torch.Tensor:
        """W as (out, in), whatever the storage."""
        return self.base.weight.T if self.transposed else self.base.weight

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the method into the frozen weights (once); outputs stay the same."""
        if not self.merged:
            self.fold(inverse=False)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the method back out of the weights (once)."""
        if self.merged:
            self.fold(inverse=True)
            self.merged = False

    def fold(self, inverse: bool) -> None:
        """Change the frozen weights by the method (``inverse``: undo it); mergeable methods define it."""
        raise NotImplementedError

    def add_to_weight(self, delta: torch.Tensor) -> None:
        """W += delta, with ``delta`` given as (out, in) (merging a method into the weights)."""
        self.base.weight += (delta.T if self.transposed else delta).to(self.base.weight.dtype)


def replace_module(model: nn.Module, path: str, module: nn.Module) -> None:
    """Put ``module`` at ``path`` (a name in ``model.named_modules()``) in place of what is there."""
    parent, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def projection_sites(model: nn.Module, anatomy, roles) -> dict[str, dict]:
    """Each module that ``roles`` name in ``model``, once, with the keyword arguments that tell its
    wrapper which output slices to adapt (``parts`` and ``count`` for a fused projection, such as
    GPT-2's q and v in one ``c_attn``; none for a whole one)."""
    grouped: dict[str, list] = {}
    for role in roles:
        for path, part in locate(model, anatomy, role):
            grouped.setdefault(path, []).append(part)
    return {
        path: {"parts": [part.index for part in parts], "count": parts[0].count} if parts[0] is not None else {}
        for path, parts in grouped.items()
    }
