"""Sparse fine-tuning with a fixed-size mask: LT-SFT (Ansell et al., ACL 2022) / diff pruning's δ.

Both papers fine-tune a sparse difference vector on top of the frozen pretrained weights:

    θ = θ0 + δ,     δ = μ ⊙ φ,   μ ∈ {0, 1}^D a fixed mask with |μ| = k

(Guo, Rush & Kim, ACL 2021, "Parameter-Efficient Transfer Learning with Diff Pruning", Eq. 1–2;
Ansell, Ponti, Korhonen & Vulić, ACL 2022, "Composable Sparse Fine-Tuning for Cross-Lingual
Transfer", §3). What differs between them is how μ is found:

* **LT-SFT (the paper's procedure)**: (1) fine-tune *every* parameter, θ0 → θ1; (2) μ = the k
  parameters with the largest |θ1 − θ0| (one global threshold); (3) reset to θ0 and fine-tune
  only the masked parameters, giving δ. Their code also offers an L1 penalty on θ − θ0 (a
  coefficient, 0 by default in the original release) and a random mask (``Random``) as baseline.
* **Diff pruning**: learns δ = z ⊙ w with a relaxed-L0 (hard-concrete) mask z, projects δ onto
  the target sparsity by magnitude, then fine-tunes δ with that mask fixed: ``diff_pruning``
  (methods/diff_pruning.py), whose last stage is this module's δ.

What this implementation does. The mask is chosen when the method is applied (``mask_from``):

* ``change`` (the default) — LT-SFT exactly, in one run of our single trainer: before the method
  is applied, the run calls ``search``, which fine-tunes every eligible parameter and the head
  (phase 1, the run's trainer schedule at ``search_lr``, full fine-tuning's rate; LT-SFT's code
  uses one schedule for both phases), takes the k largest |θ1 − θ0| (phase 2, one global
  threshold) and puts *every* weight, the head's too, back to θ0, as LT-SFT's code does; the run
  then trains δ (phase 3). ``reference`` instead names a finished ``method=full`` run (its folder
  or ``method.safetensors``) to serve as phase 1, or a finished sparse run whose saved mask is
  reused as it is.
* ``random`` — k positions uniformly at random (seeded): the LT-SFT code's random baseline.
* ``magnitude`` — the k pretrained weights of largest |θ0|: a data-free baseline, in no paper.

``k`` is given directly or as ``density`` × (eligible backbone parameters, rounded). Eligible:
every backbone parameter tensor (embeddings, matrices, biases, norms; not the head, which trains
densely as with every method); ``embeddings: false`` / ``layer_norms: false`` leave those out
(LT-SFT's ``freeze_embeddings`` / ``freeze_layer_norm`` switches). Not reproduced: LT-SFT's
iterated variant (``n_ft_iterations``).

L1 penalty (LT-SFT's ``full_l1_reg`` / ``sparse_l1_reg``, both 0 by default as in the release,
``sft_args.py`` of cambridgeltl/composable-sft): ``method.full_l1`` in phase 1 and
``method.sparse_l1`` in phase 3 add, through ``Method.penalty``,

    λ · Σ_i |θ_i − θ0_i| / N

to every training loss, the sum over the parameters that train (phase 1: every eligible one and
the head; phase 3: the k values φ = θ − θ0 and the head, against its initialisation) and N the
model's parameter count, as the release's ``training_step`` normalises it (``_num_params``;
``apply_reg_to_sparse_only`` off, its default); the gradient of θ_i gains λ · sign(θ_i − θ0_i) / N.

Counting: the k values are the method's parameters; the mask is reported as bits over the
eligible entries (``params.mask_bits``, as ``binary_mask`` counts masks), though the file keeps it
as LT-SFT's k flat indices.

Storage: for each tensor with masked entries, its flat ``indices`` (a buffer, sorted) and the
trainable ``sparse_values`` φ (k in all), applied by a ``torch.nn.utils.parametrize``
parametrisation W = W0 + scatter(indices, φ); W0 is never written, φ starts at 0 (the model starts
at θ0). The run saves the indices beside φ (``saved_buffers``), so a searched mask is kept with
its values. ``merge`` writes W0[μ] += φ (and remembers the k original values); ``unmerge`` puts
those values back, bit-exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from peftbench.errors import UserError
from peftbench.methods import register
from peftbench.methods.base import Method, MethodConfig, require
from peftbench.methods.binary_mask import MaskCount
from peftbench.methods.delta import add_delta, backbone_tensors, deltas, merge, proportional, tensor_name, unmerge

MASK_SOURCES = ("change", "random", "magnitude")


@dataclass
class SparseConfig(MethodConfig):
    density: Optional[float] = None  # fraction of the eligible backbone parameters
    k: Optional[int] = None  # or the number of them
    mask_from: str = "change"  # change (LT-SFT) | random | magnitude
    reference: Optional[str] = None  # instead of searching: a finished full run, or a sparse run's mask
    search_lr: float = 2e-5  # LT-SFT phase 1 (dense fine-tuning): full fine-tuning's rate
    embeddings: bool = True  # embedding tables are eligible
    layer_norms: bool = True  # layer-norm weights and biases are eligible
    seed: int = 0  # the random mask
    full_l1: float = 0.0  # LT-SFT's full_l1_reg: L1 on θ − θ0 in phase 1 (dense)
    sparse_l1: float = 0.0  # LT-SFT's sparse_l1_reg: L1 on θ − θ0 in phase 3 (sparse)

    def check(self) -> None:
        check_budget(self.density, self.k, "sparse")
        require(self.full_l1 >= 0 and self.sparse_l1 >= 0,
                f"method.full_l1 and method.sparse_l1 must be ≥ 0, got {self.full_l1} and {self.sparse_l1}")  # fmt: skip
        require(
            self.mask_from in MASK_SOURCES,
            f"method.mask_from must be one of {', '.join(MASK_SOURCES)}, got '{self.mask_from}'",
        )
        require(self.search_lr > 0, f"method.search_lr must be positive, got {self.search_lr}; e.g. 2e-5")
        if self.reference:
            require(self.mask_from == "change", "method.reference is read only with method.mask_from=change")
            path = _reference_file(self.reference)
            require(
                path.is_file(),
                f"method.reference: {path} does not exist; point it at a finished full or sparse run, "
                "or set method.reference=null to search the mask in this run",
            )


def check_budget(density: Optional[float], k: Optional[int], yaml: str) -> None:
    """Refuse a budget that is not exactly one of a fraction ``density`` and a count ``k``."""
    require(
        (density is None) != (k is None),
        "give exactly one of method.density (a fraction, e.g. 0.005) and method.k (a count); "
        f"conf/method/{yaml}.yaml sets density, so with method.k=N also pass method.density=null",
    )
    if density is not None:
        require(0 < density <= 1, f"method.density must be in (0, 1], got {density}")
    if k is not None:
        require(k >= 1, f"method.k must be a positive integer, got {k}")


def split_by_tensor(chosen: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    """Sorted flat positions over tensors of ``sizes`` laid end to end, as each tensor's own
    sorted flat indices."""
    bounds = torch.tensor([0, *sizes]).cumsum(0)
    out = []
    for i in range(len(sizes)):
        lo, hi = torch.searchsorted(chosen, bounds[i : i + 2]).tolist()
        out.append(chosen[lo:hi] - bounds[i])
    return out


class SparseDelta(nn.Module):
    """Parametrisation W = W0 + δ, δ zero but at the flat ``indices``, where it is ``sparse_values``."""

    def __init__(self, indices: torch.Tensor, dtype: torch.dtype):
        super().__init__()
        self.register_buffer("indices", indices)
        self.sparse_values = nn.Parameter(torch.zeros(indices.numel(), dtype=dtype, device=indices.device))
        self.merged = False
        self._saved: torch.Tensor | None = None

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        if self.merged:
            return original
        flat = original.reshape(-1).index_add(0, self.indices, self.sparse_values.to(original.dtype))
        return flat.view_as(original)

    def fold_into(self, original: torch.Tensor) -> None:
        flat = original.view(-1)
        self._saved = flat[self.indices].clone()
        flat.index_add_(0, self.indices, self.sparse_values.to(flat.dtype))

    def unfold_from(self, original: torch.Tensor) -> None:
        original.view(-1)[self.indices] = self._saved  # the pretrained values, bit-exact
        self._saved = None


@register
class SparseFineTuning(Method):
    name = "sparse"
    composable = False
    Config = SparseConfig
    mergeable = True
    sparse_difference = True

    _change: Optional[torch.Tensor] = None  # |θ1 − θ0| over the eligible parameters, from ``search``
    _l1_origin: dict[str, torch.Tensor] = {}  # θ0 of the L1 penalty's dense terms, by parameter name
    _l1_count = 1  # N, the model's parameters (backbone and head), the penalty's normaliser
    _dense_phase = False  # phase 1 under way (the penalty is full_l1's)

    @property
    def searches(self) -> bool:
        return self.config.mask_from == "change" and not self.config.reference

    def search(self, model, head: list[str], train) -> None:
        """LT-SFT phases 1–2: ``train(lr)`` fine-tunes every eligible parameter and the ``head``
        densely; remember |θ1 − θ0|, then put every weight back to θ0."""
        theta0 = {name: t.detach().clone() for name, t in model.state_dict().items()}
        tensors = self._eligible(model)
        parameters = dict(model.named_parameters())
        model.requires_grad_(False)
        dense = [name for name, _, _ in tensors] + list(head)
        for name in dense:
            parameters[name].requires_grad_(True)
        self._keep_l1_origin(model, {name: theta0[name] for name in dense} if self.config.full_l1 else {})
        self._dense_phase = True
        try:
            train(self.config.search_lr)
        finally:
            self._dense_phase = False
        with torch.no_grad():
            self._change = torch.cat([(p.detach().float() - theta0[n].float().to(p.device)).abs().reshape(-1).cpu()
                                      for n, p, _ in tensors])  # fmt: skip
            model.load_state_dict(theta0)
        model.requires_grad_(False)

    def _keep_l1_origin(self, model, origin: dict[str, torch.Tensor]) -> None:
        """The dense terms' θ0 (a copy, by parameter name) and N, before any delta is added."""
        self._l1_origin = {name: value.detach().clone() for name, value in origin.items()}
        self._l1_count = sum(p.numel() for p in model.parameters())

    def penalty(self, model):
        """LT-SFT's L1 on θ − θ0 (``full_l1`` while searching, ``sparse_l1`` after), over N."""
        strength = self.config.full_l1 if self._dense_phase else self.config.sparse_l1
        if not strength:
            return None
        parameters = dict(model.named_parameters())
        distances = [parameters[name].sub(self._moved(name, parameters[name].device)).abs().sum() for name in self._l1_origin]
        if not self._dense_phase:
            distances += [p.abs().sum() for name, p in parameters.items() if name.endswith(".sparse_values")]
        return strength * torch.stack(distances).sum() / self._l1_count

    def _moved(self, name: str, device) -> torch.Tensor:
        """θ0 of ``name`` on ``device`` (moved there once)."""
        if self._l1_origin[name].device != device:
            self._l1_origin[name] = self._l1_origin[name].to(device)
        return self._l1_origin[name]

    def binary_masks(self, model) -> dict[str, MaskCount]:
        """The mask over each eligible tensor, by its name: its entries as bits, those it leaves out
        of δ as zeros (counting reads only the bits: the tensor itself is frozen)."""
        kept = {name: delta.indices.numel() for name, _, _, delta in deltas(model, SparseDelta)}
        masks = {}
        for name, param, _ in self._eligible(model):
            if not name.endswith(".sparse_values"):
                name = tensor_name(name)
                masks[name] = MaskCount(entries=param.numel(), zeros=param.numel() - kept.get(name, 0))
        return masks

    def saved_buffers(self, model) -> dict[str, torch.Tensor]:
        """The mask, saved with the values: each masked tensor's ``indices`` buffer."""
        return {name: b for name, b in model.named_buffers() if name.endswith(".indices") and ".parametrizations." in name}

    def apply(self, model, anatomy) -> None:
        from peftbench.models.anatomy import head_parameter_names

        if self.config.sparse_l1:  # the head trains densely: its distance from its initialisation
            head = set(head_parameter_names(model))
            self._keep_l1_origin(model, {n: p for n, p in model.named_parameters() if n in head})
        self._put_deltas(model)

    def _put_deltas(self, model) -> None:
        """A SparseDelta (φ = 0) on every eligible tensor with masked entries: k of them in all."""
        tensors = self._eligible(model)
        total = sum(p.numel() for _, p, _ in tensors)
        if total == 0:
            raise UserError("method=sparse found no eligible backbone parameters; enable embeddings or layer_norms")
        k = self.config.k if self.config.k is not None else max(1, round(self.config.density * total))
        if k > total:
            raise UserError(f"method.k={k} exceeds the {total:,} eligible backbone parameters; choose k ≤ {total}")
        for (name, param, owners), indices in zip(tensors, self._select(tensors, k)):
            if indices.numel() == 0:
                continue
            delta = SparseDelta(indices.to(param.device), param.dtype)
            add_delta(owners, delta)
            delta.sparse_values.requires_grad_(True)

    def parameter_names(self, model) -> list[str]:
        return [n for n, _ in model.named_parameters() if n.endswith(".sparse_values")]

    def masks(self, model) -> dict[str, torch.Tensor]:
        """Flat indices of the masked entries, by the tensor's name before parametrisation."""
        return {name: delta.indices for name, _, _, delta in deltas(model, SparseDelta)}

    def _eligible(self, model):
        tensors = backbone_tensors(model)
        kept = []
        for name, param, owners in tensors:
            kinds = {type(module).__name__.lower() for module, _ in owners}
            if not self.config.embeddings and any(isinstance(m, nn.Embedding) for m, _ in owners):
                continue
            if not self.config.layer_norms and any("norm" in kind for kind in kinds):
                continue
            kept.append((name, param, owners))
        return kept

    def _select(self, tensors, k: int) -> list[torch.Tensor]:
        """Per tensor, the sorted flat indices of its share of the global top-k."""
        sizes = [p.numel() for _, p, _ in tensors]
        if any(p.is_meta for _, p, _ in tensors):  # counting from configs: only how many matters
            return [torch.empty(n, dtype=torch.long, device="meta") for n in proportional(sizes, k)]
        source = self.config.mask_from
        saved = self._saved_mask(tensors, k) if source == "change" and self._change is None else None
        if saved is not None:
            return saved
        if source == "random":
            generator = torch.Generator().manual_seed(self.config.seed)
            chosen = torch.randperm(sum(sizes), generator=generator)[:k]
        else:
            scores = self._scores(tensors)
            chosen = torch.topk(scores, k, sorted=False).indices
        return split_by_tensor(chosen.sort().values, sizes)

    def _scores(self, tensors) -> torch.Tensor:
        """One flat score per eligible parameter: |θ0| (magnitude) or |θ1 − θ0| (change)."""
        if self.config.mask_from == "magnitude":
            return torch.cat([p.detach().float().abs().reshape(-1).cpu() for _, p, _ in tensors])
        if self._change is not None:
            return self._change
        if not self.config.reference:
            raise UserError(
                "method.mask_from=change searches its mask in the run (peftbench run); to apply it "
                "elsewhere, set method.reference to a finished full or sparse run"
            )
        from safetensors.torch import load_file

        path = _reference_file(self.config.reference)
        trained = load_file(str(path))
        missing = [name for name, _, _ in tensors if name not in trained]
        if missing:
            raise UserError(
                f"method.reference {path} has no trained weights for {missing[:3]} "
                f"({len(missing)} tensors): it must be a method=full run of the same model"
            )
        scores = []
        for name, p, _ in tensors:
            theta1 = trained[name]
            if theta1.shape != p.shape:
                raise UserError(f"method.reference {path}: {name} has shape {tuple(theta1.shape)}, not {tuple(p.shape)}")
            scores.append((theta1.float() - p.detach().float().cpu()).abs().reshape(-1))
        return torch.cat(scores)

    def _saved_mask(self, tensors, k: int) -> Optional[list[torch.Tensor]]:
        """The mask a finished sparse run saved (``reference``), per eligible tensor; None if the
        reference is not a sparse run."""
        if not self.config.reference:
            return None
        from safetensors import safe_open

        path = _reference_file(self.config.reference)
        with safe_open(str(path), "pt") as handle:
            saved = {
                tensor_name(key): handle.get_tensor(key)
                for key in handle.keys()
                if key.endswith(".indices") and ".parametrizations." in key
            }
        if not saved:
            return None
        total = sum(t.numel() for t in saved.values())
        if total != k or not set(saved) <= {name for name, _, _ in tensors}:
            raise UserError(
                f"method.reference {path} holds a sparse mask of {total:,} entries over other tensors than this "
                f"run's k={k:,}; use the same method.k / density, embeddings and layer_norms as that run"
            )
        return [saved.get(name, torch.empty(0, dtype=torch.long)) for name, _, _ in tensors]

    def merge(self, model) -> None:
        merge(model, SparseDelta)

    def unmerge(self, model) -> None:
        unmerge(model, SparseDelta)


def _reference_file(reference: str) -> Path:
    path = Path(reference).expanduser()
    return path / "method.safetensors" if path.is_dir() else path
