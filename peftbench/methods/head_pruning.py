"""Head pruning: attention heads ranked by importance, the least important removed whole.

Michel, Levy & Neubig, NeurIPS 2019, "Are Sixteen Heads Really Better than One?", §4: a gate
ξ_h ∈ {0, 1} multiplies each head's output inside multi-head attention,

    MHAtt(x) = Σ_h ξ_h Att_h(x),

and a head's importance is the expected sensitivity of the loss to its gate,

    I_h = E_x | ∂L(x) / ∂ξ_h |,

estimated on the training data; heads are pruned in order of increasing I_h, a fraction of all the
model's heads at a time (their ``--prune_percent`` steps), and the pruned model evaluated at each
step (the paper's curves of accuracy against the share of heads pruned). The survey's "Structured Sparsity" slide (seed 004): a structural mask
removes whole groups, here heads. Voita, Talbot, Moiseev, Sennrich & Titov, ACL 2019 ("Analyzing
Multi-Head Self-Attention") learn such gates instead, with a hard-concrete L0 relaxation; that
alternative is not implemented (``diff_pruning`` has the hard-concrete machinery).

What this implementation does, in one run:

* **The gate** (``HeadGate``): a forward pre-hook on each attention sublayer's output projection
  (role ``attn.o``; ``xattn.o`` for an encoder–decoder's cross-attention) whose input is the
  concatenation of the heads' outputs: a pruned head's slice is replaced by exact zeros, so it
  contributes nothing (nor do its q, k, v rows receive any gradient), and the kept heads pass
  unchanged. Architecture-independent: transformers 5 no longer offers ``head_mask`` or
  ``prune_heads``. The gates' ``keep`` bits are buffers saved in ``method.safetensors``.
* **Search**: (1) the whole model (backbone and head) is fine-tuned on the task, as the paper starts
  from a fine-tuned BERT; (2) importance is estimated by one pass over the training batches with no
  optimiser, dropout off (``train.gradients``): a per-example gate ξ ∈ {0, 1}^{B × H} at every site
  gives each example's |∂L(x)/∂ξ_h| (the batch loss is the mean of the examples' losses, so each
  gradient is scaled by B), averaged over the examples; (3) the least important kept heads are
  pruned until ``round(step · N)`` more are gone (N heads in all), and the model is evaluated
  (``train.evaluate``: the paper's curve); importance is re-estimated before every step with
  ``method.exact`` (their ``--exact_pruning``), else ranked once, as their released command; until
  ``method.heads`` (or ``round(method.fraction · N)``) are pruned.
* **Normalisation**: with ``method.normalize`` (their ``--normalize_pruning_by_layer``, which the
  released command sets), each site's importances are divided by their ℓ2 norm (+1e-20), as their
  ``calculate_head_importance`` does. ``method.keep_one_per_layer`` is their
  ``--at_least_one_head_per_layer``.
* **Then** the run fine-tunes what is left (every kept weight and the task head, the pruned heads
  still exactly zero): a step beyond the paper, which evaluates the pruned model as it is; the
  evaluation right after each pruning step, before that fine-tuning, is in the report.

Where it departs from the released code (pmichel31415/are-16-heads-really-better-than-1, its
``pytorch-pretrained-BERT`` fork's ``run_classifier.py``): there the importance is
|⟨Att_h(x), ∂L/∂Att_h(x)⟩| taken per token and averaged over tokens; here per example, as the
paper's I_h = E_x |∂L(x)/∂ξ_h|. Losses that are not a mean over the batch's rows (a token-averaged
generation loss) weigh the rows by their share of the batch.

Counted: every kept backbone weight is the method's (as magnitude pruning); a pruned head's rows
of q, k and v (weights and biases, where the projection is per head: not grouped-query k/v) and
its columns of the output projection are removed parameters; the gates are N bits
(``params.mask_bits``). ``head_importance.json`` beside the record holds the importances, the heads
removed at each step and the evaluations (``peftbench plot heads``); the record's ``heads`` the
count, its ``sparsity`` the removed share of the attention projections' parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from peftbench.errors import UserError
from peftbench.methods import register
from peftbench.methods.base import Method, MethodConfig, require
from peftbench.methods.binary_mask import MaskCount
from peftbench.methods.delta import proportional
from peftbench.methods.magnitude_pruning import train_backbone

REPORT_FILE = "head_importance.json"
KINDS = (("attn", ""), ("xattn", " cross"))  # self-attention, and an encoder–decoder's cross-attention


@dataclass
class HeadPruningConfig(MethodConfig):
    fraction: Optional[float] = None  # of all the model's heads, pruned in the end
    heads: Optional[int] = None  # or how many
    step: float = 0.1  # the fraction of all heads pruned at each step
    exact: bool = False  # re-estimate importance before every step (--exact_pruning)
    normalize: bool = True  # each site's importances over their ℓ2 norm (--normalize_pruning_by_layer)
    keep_one_per_layer: bool = False  # --at_least_one_head_per_layer

    def check(self) -> None:
        require(
            (self.fraction is None) != (self.heads is None),
            "give exactly one of method.fraction (of all heads, e.g. 0.4) and method.heads (a count); "
            "conf/method/head_pruning.yaml sets fraction, so with method.heads=N also pass method.fraction=null",
        )
        if self.fraction is not None:
            require(0 <= self.fraction <= 1, f"method.fraction must be in [0, 1], got {self.fraction}")
        if self.heads is not None:
            require(self.heads >= 0, f"method.heads must be ≥ 0, got {self.heads}")
        require(0 < self.step <= 1, f"method.step (the fraction of all heads pruned per step) must be in (0, 1], got {self.step}")


@dataclass(frozen=True)
class Site:
    """One multi-head attention sublayer: its label, the output projection whose input holds the
    heads, and its q, k, v projections (module path, fused part or None)."""

    label: str
    output: str
    inputs: tuple


def attention_sites(model, anatomy) -> list[Site]:
    """Every attention sublayer of ``model``, block by block (self-attention before cross-attention)."""
    from peftbench.models.anatomy import blocks, locate

    prefix = f"{model.base_model_prefix}." if getattr(model, "base_model_prefix", "") else ""
    order = {block: i for i, block in enumerate(blocks(model, anatomy))}
    sites = []
    for rank, (kind, suffix) in enumerate(KINDS):
        outputs = locate(model, anatomy, f"{kind}.o")
        inputs = list(zip(*(locate(model, anatomy, f"{kind}.{role}") for role in "qkv"))) or [()] * len(outputs)
        for (path, _), qkv in zip(outputs, inputs):
            block = max((b for b in order if path.startswith(b + ".")), key=len)
            sites.append((order[block], rank, Site(block.removeprefix(prefix) + suffix, path, qkv)))
    return [site for _, _, site in sorted(sites, key=lambda entry: entry[:2])]


class HeadGate(nn.Module):
    """ξ over the heads of one attention sublayer, applied to its output projection's input: a
    pruned head's slice is exact zeros. While ``measuring``, a per-example ξ (``probe``, B × H,
    1 for kept heads and 0 for pruned ones) multiplies the slices instead, for its gradient."""

    def __init__(self, heads: int, device=None):
        super().__init__()
        self.register_buffer("keep", torch.ones(heads, dtype=torch.bool, device=device))
        self.measuring = False
        self.probe: torch.Tensor | None = None

    def hook(self, module, args):
        x, *rest = args
        heads = x.reshape(*x.shape[:-1], self.keep.numel(), -1)
        if self.measuring:
            self.probe = self.keep.to(x.dtype).expand(x.shape[0], -1).clone().requires_grad_(True)
            gated = heads * self.probe.view(x.shape[0], *[1] * (x.dim() - 2), -1, 1)
        elif bool(self.keep.all()):
            return None
        else:
            gated = torch.where(self.keep.view(-1, 1), heads, 0.0)
        return (gated.reshape(x.shape), *rest)


def _in_features(module) -> int:
    """The input width of a projection: nn.Linear's, or GPT-2's Conv1D (weight in × out)."""
    return module.in_features if isinstance(module, nn.Linear) else module.weight.shape[0]


def _out_features(module) -> int:
    return module.out_features if isinstance(module, nn.Linear) else module.weight.shape[1]


@register
class HeadPruning(Method):
    name = "head_pruning"
    Config = HeadPruningConfig
    composable = False  # it trains (searches) before it is applied
    multitask = False  # one task's importance

    def __init__(self, config: HeadPruningConfig):
        super().__init__(config)
        self.sites: list[Site] = []
        self.report: dict | None = None  # what the search found, written as head_importance.json
        self._planned = 0  # heads pruned, for counts from configs (no weights to rank)

    @property
    def searches(self) -> bool:
        return True

    def check_model(self, anatomy, arch_config) -> None:
        super().check_model(anatomy, arch_config)
        layers = getattr(arch_config, anatomy.layers_key)
        heads = arch_config.num_attention_heads
        sites = sum(
            (layers if i == 0 else getattr(arch_config, "num_decoder_layers", None) or layers) * (1 + ("xattn.o" in stack.roles))
            for i, stack in enumerate(anatomy.stacks)
        )  # fmt: skip
        total = sites * heads
        self._planned = self._target(total)
        most = total - sites if self.config.keep_one_per_layer else total
        if self._planned > most:
            raise UserError(
                f"method.heads={self._planned} exceeds the {most} heads this model can lose ({total} in {sites} attention "
                f"sublayers{', one kept in each' if self.config.keep_one_per_layer else ''}); choose fewer"
            )

    def _target(self, total: int) -> int:
        return self.config.heads if self.config.heads is not None else round(self.config.fraction * total)

    def schedule(self, total: int) -> list[int]:
        """Heads pruned after each step: ``round(step · N)`` more each time, up to the target."""
        target, each = self._target(total), max(1, round(self.config.step * total))
        return [min(target, i * each) for i in range(1, math.ceil(target / each) + 1)]

    # --- gates -------------------------------------------------------------------------------

    def _install(self, model, anatomy) -> list[HeadGate]:
        """A HeadGate on every attention sublayer (once), all heads kept."""
        self.sites = attention_sites(model, anatomy)
        heads = model.config.num_attention_heads
        gates = []
        for site in self.sites:
            output = model.get_submodule(site.output)
            if not isinstance(getattr(output, "head_gate", None), HeadGate):
                if _in_features(output) % heads:
                    raise UserError(f"{site.output} takes {_in_features(output)} inputs, not a multiple of {heads} heads")
                output.head_gate = HeadGate(heads, device=output.weight.device)
                output.register_forward_pre_hook(output.head_gate.hook)
            gates.append(output.head_gate)
        return gates

    def _gates(self, model) -> list[HeadGate]:
        return [model.get_submodule(site.output).head_gate for site in self.sites]

    def kept(self, model) -> torch.Tensor:
        """The gates' bits, sites × heads (True: kept)."""
        return torch.stack([gate.keep.cpu() for gate in self._gates(model)])

    # --- search ------------------------------------------------------------------------------

    def search(self, model, head: list[str], train) -> None:
        """Fine-tune everything, then prune step by step by importance, evaluating each step."""
        from peftbench.models.anatomy import anatomy_of

        gates = self._install(model, anatomy_of(model.config.model_type))
        train_backbone(model, head)
        train()
        model.requires_grad_(False)
        total = sum(gate.keep.numel() for gate in gates)
        importance = self.importance(model, train)
        report = {
            "sites": [site.label for site in self.sites], "heads": gates[0].keep.numel(),
            "normalized": self.config.normalize, "exact": self.config.exact,
            "importance": importance.tolist(), "steps": [{"pruned": 0, "metrics": train.evaluate()}],
        }  # fmt: skip
        for i, count in enumerate(self.schedule(total)):
            if i and self.config.exact:
                importance = self.importance(model, train)
            removed = self.prune(model, importance, count)
            step = {"pruned": count, "removed": removed, "metrics": train.evaluate()}
            if i and self.config.exact:
                step["importance"] = importance.tolist()
            report["steps"].append(step)
        report["kept"] = self.kept(model).tolist()
        self.report = report

    def importance(self, model, train) -> torch.Tensor:
        """I_h = E_x |∂L(x)/∂ξ_h| over the training batches (sites × heads), each site's row over
        its ℓ2 norm where ``normalize``."""
        gates = self._gates(model)
        totals = torch.zeros(len(gates), gates[0].keep.numel(), dtype=torch.float64)
        rows = 0

        def on_batch(batch) -> None:
            nonlocal rows
            size = gates[0].probe.shape[0]
            for i, gate in enumerate(gates):
                totals[i] += gate.probe.grad.detach().abs().sum(0).double().cpu() * size
                gate.probe = None
            rows += size

        for gate in gates:
            gate.measuring = True
        try:
            train.gradients(on_batch)
        finally:
            for gate in gates:
                gate.measuring, gate.probe = False, None
        importance = totals / max(rows, 1)
        if self.config.normalize:
            importance = importance / (importance.norm(dim=1, keepdim=True) + 1e-20)
        return importance.float()

    def prune(self, model, importance: torch.Tensor, count: int) -> list[list[int]]:
        """Prune the least important kept heads until ``count`` are pruned in all (ties: site, then
        head order); returns the [site, head] pairs removed now."""
        gates = self._gates(model)
        keep = self.kept(model)
        need = count - int((~keep).sum())
        removed = []
        ranked = sorted((float(importance[s, h]), s, h) for s in range(keep.shape[0]) for h in range(keep.shape[1]) if keep[s, h])
        for _, s, h in ranked:
            if need <= 0:
                break
            if self.config.keep_one_per_layer and int(keep[s].sum()) == 1:
                continue
            keep[s, h] = False
            removed.append([s, h])
            need -= 1
        for gate, row in zip(gates, keep):
            gate.keep.copy_(row.to(gate.keep.device))
        return removed

    # --- the pruned model ----------------------------------------------------------------------

    def apply(self, model, anatomy) -> None:
        """The gates (as the search left them; all heads kept on a fresh model, until a saved run's
        bits are loaded); every backbone weight trains."""
        self._install(model, anatomy)
        train_backbone(model, [])

    def parameter_names(self, model) -> list[str]:
        from peftbench.models.anatomy import head_parameter_names

        head = set(head_parameter_names(model))
        return [name for name, _ in model.named_parameters() if name not in head]

    def saved_buffers(self, model) -> dict[str, torch.Tensor]:
        """The gates' bits (``<output projection>.head_gate.keep``)."""
        return {name: buffer for name, buffer in model.named_buffers() if name.endswith(".head_gate.keep")}

    def binary_masks(self, model) -> dict[str, MaskCount]:
        """Per tensor a pruned head removes from: the entries removed; the gates' bits counted on
        each output projection's weight."""
        heads = model.config.num_attention_heads
        if next(model.parameters()).is_meta:  # counting from configs: the planned number
            pruned = proportional([heads] * len(self.sites), self._planned)
        else:
            pruned = (~self.kept(model)).sum(1).tolist()
        counts: dict[str, list[int]] = {}

        def remove(name: str, entries: int, zeros: int) -> None:
            count = counts.setdefault(name, [0, 0])
            count[0] += entries
            count[1] += zeros

        for site, gone in zip(self.sites, pruned):
            output = model.get_submodule(site.output)
            width = _in_features(output) // heads  # d_h
            remove(f"{site.output}.weight", heads, gone * width * _out_features(output))
            for path, part in site.inputs:
                module = model.get_submodule(path)
                if _out_features(module) // (part.count if part else 1) != heads * width:
                    continue  # k and v shared by groups of query heads: no head owns them
                remove(f"{path}.weight", 0, gone * width * _in_features(module))
                if getattr(module, "bias", None) is not None:
                    remove(f"{path}.bias", 0, gone * width)
        return {name: MaskCount(entries, zeros) for name, (entries, zeros) in counts.items()}

    def measured(self, model) -> dict:
        """Heads pruned, and the share of the attention projections' parameters they took."""
        masks = self.binary_masks(model)
        parameters = dict(model.named_parameters())
        entries = sum(parameters[name].numel() for name in masks)
        zeros = sum(mask.zeros for mask in masks.values())
        keep = self.kept(model)
        return {
            "heads": {"pruned": int((~keep).sum()), "total": keep.numel()},
            "sparsity": {"measured": zeros / entries if entries else 0.0, "zeros": zeros, "entries": entries},
        }

    def reports(self, model, evaluate) -> dict:
        """``head_importance.json``: what the search estimated, removed and scored."""
        return {REPORT_FILE: self.report} if self.report else {}
