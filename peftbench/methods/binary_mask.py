"""Binary masks over backbone weights: the subnetworks of the sparse methods, W ↦ W ⊙ b.

The survey's "Sparse Subnetworks" (seed 004): pruning applies a binary mask b ∈ {0, 1}^|θ| that
keeps or removes each connection and produces a subnetwork; a pruned model re-trained on a task is

    f'_θ = f_{θ∘b} + φ,    φ_i = 0 where b_i = 0,

and a supermask is the mask alone over fixed weights, f'_θ = f_{θ∘b} (Zhou, Lan, Liu & Yosinski,
NeurIPS 2019, "Deconstructing Lottery Tickets"; Zhao, Lin, Jaggi & Schütze, EMNLP 2020, "Masking
as an Efficient Alternative to Finetuning", Eq. 1–2). This module is what every method that masks
weights shares; the methods differ in how they choose b (magnitude, rewinding, learned scores).

* **Which tensors** (``eligible_tensors``): the weight matrix of every linear projection inside
  the transformer blocks (``nn.Linear``, GPT-2's ``Conv1D``; each tensor once, with every module
  that holds it); ``embeddings=True`` adds the embedding tables. By default embeddings are not
  masked, as in Zhao et al. 2020 (the seed: "the embedding layer is not masked") and Chen et al.
  2020 (NeurIPS, "The Lottery Ticket Hypothesis for Pre-trained BERT Networks", whose released
  code, VITA-Group/BERT-Tickets ``LT_glue.py``, prunes the encoder's six matrices per layer and
  the pooler's); biases, norms, the pooler (outside the blocks: a difference from that code) and
  the task head are never masked.
* **The mask** (``BinaryMask``): a ``torch.nn.utils.parametrize`` parametrisation computing
  W_eff = where(b, W, 0) at every forward from the stored W (``parametrizations.weight.original``),
  so a removed entry is exactly +0.0 whatever happens to its stored value, and the stored W is
  never written (a frozen backbone stays bit-identical). ``merge`` writes W ⊙ b into the stored
  tensor, remembering the removed values; ``unmerge`` puts them back, bit-exact.
* **Storage**: a mask's persistent buffers are its bits packed eight to a byte (``packed_mask``,
  uint8, numpy.packbits' order: row-major, first entry in the high bit, zero-padded) and its shape
  (``mask_shape``, int64): 1 bit per entry in the run's ``method.safetensors`` (``saved_buffers``).
  The unpacked bool mask the forward uses is a non-persistent cache, rebuilt whenever the packed
  bits change (a load, a warm start's copy).
* **Counting** (``MaskedMethod.binary_masks``, read by ``peftbench.counting``): mask entries are
  bits (``params.mask_bits``), never parameters; a removed entry of a trained tensor is not a
  trainable parameter either.
* **Measured sparsity** (``MaskedMethod.measured``): after training, the fraction of exact zeros
  in the masked tensors of the merged model, recorded as the run's ``sparsity``.

A method that masks weights subclasses ``MaskedMethod``, chooses its masks and calls
``put_masks(tensors, masks)`` (again with new masks to change them). A learned mask (supermask,
mask tuning) subclasses ``BinaryMask`` and overrides ``current()`` (b from its scores, with the
straight-through estimator in ``forward``) and ``zeros``; saving packs ``current()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from peftbench.methods.base import Method
from peftbench.methods.delta import add_delta, deltas, merge, unmerge

_BIT_VALUES = (128, 64, 32, 16, 8, 4, 2, 1)  # the first of eight entries is the byte's high bit


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` (bool) as uint8, eight entries a byte in row-major order, first entry in the high
    bit, the last byte zero-padded: ``numpy.packbits(mask.reshape(-1))``."""
    flat = mask.reshape(-1)
    flat = torch.cat([flat, flat.new_zeros((-flat.numel()) % 8)]).view(-1, 8).to(torch.uint8)
    return (flat * torch.tensor(_BIT_VALUES, dtype=torch.uint8, device=mask.device)).sum(1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, shape: list[int]) -> torch.Tensor:
    """The bool mask of ``shape`` that ``pack_bits`` packed into ``packed``."""
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=packed.device)
    bits = (packed.unsqueeze(1) >> shifts) & 1
    return bits.reshape(-1)[: math.prod(shape)].view(shape).bool()


class BinaryMask(nn.Module):
    """Parametrisation W ↦ W ⊙ b of one tensor, b a fixed bool mask of its shape.

    ``zeros`` (the entries b removes) must be given for a mask on the meta device, where counts
    come from configs alone and no entry can be read.
    """

    def __init__(self, mask: torch.Tensor, zeros: int | None = None):
        super().__init__()
        self.merged = False
        self._folded: tuple[torch.Tensor, torch.Tensor] | None = None  # (mask, removed values) while merged
        self.register_buffer("packed_mask", pack_bits(mask))
        self.register_buffer("mask_shape", torch.tensor(list(mask.shape), dtype=torch.long))
        self.register_buffer("mask", mask.bool(), persistent=False)
        self._planned_zeros = zeros
        self._unpacked_version = self.packed_mask._version

    def set(self, mask: torch.Tensor, zeros: int | None = None) -> None:
        """Replace b (same shape): a new pruning round."""
        self.packed_mask = pack_bits(mask)
        self.mask = mask.bool()
        self._planned_zeros = zeros
        self._unpacked_version = self.packed_mask._version

    def current(self) -> torch.Tensor:
        """b as this forward applies it (bool, the tensor's shape): the stored bits, unpacked again
        after they were loaded or copied in place."""
        if self.packed_mask._version != self._unpacked_version:
            self.mask = unpack_bits(self.packed_mask, self.mask_shape.tolist())
            self._unpacked_version = self.packed_mask._version
        return self.mask

    @property
    def entries(self) -> int:
        return self.mask.numel()

    @property
    def zeros(self) -> int:
        """Entries b removes (on the meta device: as planned when the mask was made)."""
        mask = self.current()
        return self._planned_zeros if mask.is_meta else mask.numel() - int(mask.count_nonzero())

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.merged:
            return weight
        return torch.where(self.current(), weight, 0.0)

    def fold_into(self, original: torch.Tensor) -> None:
        mask = self.current().clone()
        self._folded = (mask, original[~mask].clone())
        original.masked_fill_(~mask, 0.0)

    def unfold_from(self, original: torch.Tensor) -> None:
        mask, removed = self._folded
        original[~mask] = removed  # the stored values, bit-exact
        self._folded = None


@dataclass(frozen=True)
class MaskCount:
    """A mask as counting reads it where no ``BinaryMask`` holds it (a sparse difference's indices,
    a head mask): ``entries`` bits, ``zeros`` the entries of its tensor that it removes."""

    entries: int
    zeros: int


def stored(module: nn.Module, attribute: str) -> nn.Parameter:
    """The parameter ``module.<attribute>`` is computed from: the parametrisation's ``original``
    where the tensor is parametrised, else the parameter itself."""
    if parametrize.is_parametrized(module, attribute):
        return module.parametrizations[attribute].original
    return module._parameters[attribute]


def eligible_tensors(model, embeddings: bool = False) -> list[tuple[str, nn.Parameter, list[tuple[nn.Module, str]]]]:
    """The tensors a mask covers, in model order, each once as (its name before parametrisation,
    its stored parameter, every (module, attribute) holding it): the linear projections' weight
    matrices inside the transformer blocks, and with ``embeddings`` the embedding tables (a tied
    table with every holder, a tied LM head included). Masked already or not, the same list."""
    from transformers.pytorch_utils import Conv1D

    from peftbench.models.anatomy import anatomy_of, blocks, head_parameter_names

    block_prefixes = tuple(f"{path}." for path in blocks(model, anatomy_of(model.config.model_type)))
    head = set(head_parameter_names(model))
    holders: dict[int, list[tuple[nn.Module, str]]] = {}
    for module in model.modules():
        if isinstance(module, parametrize.ParametrizationList):
            continue  # its ``original`` is found through the module it parametrises
        attributes = [name for name, param in module._parameters.items() if param is not None]
        if parametrize.is_parametrized(module):
            attributes += list(module.parametrizations)
        for attribute in attributes:
            holders.setdefault(id(stored(module, attribute)), []).append((module, attribute))
    chosen: dict[int, tuple[str, nn.Parameter, list]] = {}
    for path, module in model.named_modules():
        name = f"{path}.weight"
        matrix = isinstance(module, (nn.Linear, Conv1D)) and path.startswith(block_prefixes)
        table = embeddings and isinstance(module, nn.Embedding) and name not in head
        if matrix or table:
            param = stored(module, "weight")
            chosen.setdefault(id(param), (name, param, holders[id(param)]))
    return list(chosen.values())


def mask_of(module: nn.Module, attribute: str) -> BinaryMask | None:
    """The BinaryMask on ``module.<attribute>``, or None."""
    if not parametrize.is_parametrized(module, attribute):
        return None
    return next((p for p in module.parametrizations[attribute] if isinstance(p, BinaryMask)), None)


def put_masks(tensors, masks: list[torch.Tensor], zeros: list[int] | None = None) -> None:
    """Mask each of ``tensors`` (``eligible_tensors``' entries) with its bool mask: a BinaryMask on
    every holder the first time, its bits replaced after. ``zeros``: each mask's removed count,
    needed on the meta device."""
    for i, ((_, _, owners), mask) in enumerate(zip(tensors, masks)):
        count = zeros[i] if zeros is not None else None
        existing = mask_of(*owners[0])
        if existing is None:
            add_delta(owners, BinaryMask(mask, count))
        else:
            existing.set(mask, count)


class MaskedMethod(Method):
    """A method that masks backbone weights with ``BinaryMask``s: saves them packed, counts them
    as bits, merges them into the weights and measures the sparsity they leave."""

    mergeable = True

    def binary_masks(self, model) -> dict[str, BinaryMask]:
        names = {id(param): name for name, param in model.named_parameters()}
        found = {}
        for name, module, attribute, mask in deltas(model, BinaryMask):
            found[names.get(id(module.parametrizations[attribute].original), name)] = mask
        return found

    def saved_buffers(self, model) -> dict[str, torch.Tensor]:
        """Each mask's packed bits and shape, as ``b`` stands now."""
        out = {}
        for path, module in model.named_modules():
            if isinstance(module, BinaryMask):
                out[f"{path}.packed_mask"] = pack_bits(module.current())  # a learned mask: the b it has now
                out[f"{path}.mask_shape"] = module.mask_shape
        return out

    def measured(self, model) -> dict:
        """``sparsity``: exact zeros over the entries of the masked tensors of the merged model."""
        self.merge(model)
        try:
            weights = [module.parametrizations[attribute].original for _, module, attribute, _ in deltas(model, BinaryMask)]
            entries = sum(w.numel() for w in weights)
            zeros = sum(w.numel() - int(w.count_nonzero()) for w in weights)
        finally:
            self.unmerge(model)
        return {"sparsity": {"measured": zeros / entries if entries else 0.0, "zeros": zeros, "entries": entries}}

    def merge(self, model) -> None:
        merge(model, BinaryMask)

    def unmerge(self, model) -> None:
        unmerge(model, BinaryMask)
