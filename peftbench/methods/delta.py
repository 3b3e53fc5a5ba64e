"""Fine-tuning frozen tensors as θ = θ0 + δ through ``torch.nn.utils.parametrize``.

Sparse fine-tuning (δ non-zero on a mask; Ansell et al. 2022) and intrinsic-dimension fine-tuning
(δ = λ P θ; Aghajanyan et al. 2021) never write θ0: each tensor gets a parametrisation computing
θ0 + δ at every forward, so the pretrained weights stay bit-identical. Shared here: which tensors
(every backbone tensor once, with each module that holds it, so that a tied tensor is changed
alike everywhere), putting δ on them, finding the parametrisations of one kind, and folding δ
into θ0 and back (``merge``/``unmerge``; each δ module provides ``fold_into(θ0)`` and
``unfold_from(θ0)`` and keeps its ``merged`` flag).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


def backbone_tensors(model) -> list[tuple[str, nn.Parameter, list[tuple[nn.Module, str]]]]:
    """Every backbone parameter once: (its name, it, every (module, attribute) that holds it).

    A tied tensor (T5's ``shared`` and ``encoder.embed_tokens``) has several holders; all of them
    must be parametrised alike.
    """
    from peftbench.models.anatomy import head_parameter_names

    head = set(head_parameter_names(model))
    holders: dict[int, list] = {}
    for module in model.modules():
        for attribute, param in module._parameters.items():
            if param is not None:
                holders.setdefault(id(param), []).append((module, attribute))
    return [(name, p, holders[id(p)]) for name, p in model.named_parameters() if name not in head]


def tensor_name(key: str) -> str:
    """The tensor a parametrisation's entry belongs to, by its name before parametrisation:
    ``a.b.parametrizations.weight.original`` and ``a.b.parametrizations.weight.0.indices`` are
    ``a.b.weight``'s; any other name is its own."""
    module, found, rest = key.partition(".parametrizations.")
    return f"{module}.{rest.split('.')[0]}" if found else key


def proportional(sizes: list[int], k: int) -> list[int]:
    """k split over tensors in proportion to their sizes (largest remainders), summing to k."""
    total = sum(sizes)
    exact = [k * n / total for n in sizes]
    counts = [int(x) for x in exact]
    order = sorted(range(len(sizes)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in order[: k - sum(counts)]:
        counts[i] += 1
    return counts


def add_delta(owners: list[tuple[nn.Module, str]], delta: nn.Module) -> None:
    """Parametrise the tensor that every (module, attribute) of ``owners`` holds as θ0 + ``delta``."""
    for module, attribute in owners:
        parametrize.register_parametrization(module, attribute, delta)


def deltas(model, kind: type) -> list[tuple[str, nn.Module, str, nn.Module]]:
    """Each parametrisation of type ``kind`` once (a tied tensor's holders share one), as
    (the tensor's name before parametrisation, a module holding it, its attribute, the δ module)."""
    found, seen = [], set()
    for path, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for attribute, stack in module.parametrizations.items():
                for delta in stack:
                    if isinstance(delta, kind) and id(delta) not in seen:
                        seen.add(id(delta))
                        found.append((f"{path}.{attribute}" if path else attribute, module, attribute, delta))
    return found


@torch.no_grad()
def merge(model, kind: type) -> None:
    """θ0 ← θ0 + δ for every δ of ``kind`` not merged yet (the forward then returns θ0 as it is)."""
    for _, module, attribute, delta in deltas(model, kind):
        if not delta.merged:
            delta.fold_into(module.parametrizations[attribute].original)
            delta.merged = True


@torch.no_grad()
def unmerge(model, kind: type) -> None:
    """Undo ``merge``: θ0 as it was."""
    for _, module, attribute, delta in deltas(model, kind):
        if delta.merged:
            delta.unfold_from(module.parametrizations[attribute].original)
            delta.merged = False
