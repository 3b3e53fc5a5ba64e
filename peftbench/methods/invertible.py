"""Invertible adapters: MAD-X's NICE coupling on the embeddings, its inverse before the output embeddings.

Pfeiffer, Vulić, Gurevych & Ruder, "MAD-X: An Adapter-Based Framework for Multi-Task
Cross-Lingual Transfer", EMNLP 2020 (arXiv 2005.00052), "Invertible Adapters" and Fig. 1. A
language's vocabulary is adapted without touching the (tied) embedding matrix: an invertible map
A_inv transforms each token's input embedding, and its inverse A_inv⁻¹ transforms the last
hidden state right before the output embedding layer. A_inv is a coupling block of NICE (Dinh,
Krueger & Bengio, ICLR 2015 workshop, arXiv 1410.8516, additive coupling): with the embedding e
split into halves e = [e₁, e₂],

    o₁ = F(e₂) + e₁,        o₂ = G(o₁) + e₂,        A_inv(e) = [o₁, o₂]
    e₂ = o₂ − G(o₁),        e₁ = o₁ − F(e₂)          (the inverse, exact)

where F and G are bottlenecks F(x) = U_F f(D_F x) (with biases) from h/2 to h/4 and back
(MAD-X's f = ReLU; the adapter's activation in general).

As AdapterHub's ``NICECouplingBlock`` (adapter-hub/adapters v1.3.0, src/adapters/methods/
modeling.py), whose ``SeqBnInvConfig`` is ``SeqBnConfig`` with ``inv_adapter="nice"`` and
``inv_adapter_reduction_factor=2``: e₁ is the first ⌊h/2⌋ features, e₂ the rest; F reads e₂ and
has a hidden width ⌊|e₂| / 2⌋, G reads o₁ with ⌊|e₁| / 2⌋; weights N(0, 0.02), biases zero
(``Adapter.init_bert_weights``); its activation is the adapter's ``non_linearity``. Where it acts
(AdapterHub's ``post_embedding_forward`` hooks): on the hidden states entering the first block
of the first stack — BERT's ``embeddings`` output, GPT-2's after ``drop``, Llama's token
embeddings, T5's encoder input (the decoder's embeddings stay as they are); here a forward
pre-hook on that block. The inverse is a forward pre-hook on the model's output embeddings
(``get_output_embeddings()``: BERT's masked-LM decoder, GPT-2's and T5's ``lm_head``), where AdapterHub's LM heads apply
``inv_adapter(…, rev=True)``; a model with a classification head has none, and the inverse is
not used (MAD-X's downstream setting).

AdapterHub's other option, ``inv_adapter="glow"`` (``GLOWCouplingBlock``), fails on a (batch,
length, width) input in v1.3.0 (its forward slices the sequence axis; a BERT forward raises a
size-mismatch RuntimeError), so there is no GLOW reference to be faithful to and peftbench
offers NICE only.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from peftbench.models.anatomy import blocks

INVERTIBLE = "invertible_adapter"  # the base model's child holding the coupling block
KINDS = ("none", "nice")  # the values of the adapters' ``invertible`` option
REDUCTION = 2  # F and G halve their input width: h/2 → h/4 (AdapterHub inv_adapter_reduction_factor=2)


def _bottleneck(n_in: int, n_out: int, activation: type[nn.Module], factory: dict) -> nn.Sequential:
    """x ↦ U f(D x + b_D) + b_U, hidden width n_in // 2 (AdapterHub's ``get_subnet_constructor``)."""
    hidden = n_in // REDUCTION
    return nn.Sequential(nn.Linear(n_in, hidden, **factory), activation(), nn.Linear(hidden, n_out, **factory))


class NICECoupling(nn.Module):
    """A_inv(e) = [e₁ + F(e₂), e₂ + G(o₁)] over the last axis, and its exact inverse."""

    def __init__(self, width: int, activation: type[nn.Module], like: torch.Tensor):
        super().__init__()
        factory = {"device": like.device, "dtype": like.dtype}
        self.split = width // 2
        rest = width - self.split
        self.F = _bottleneck(rest, self.split, activation, factory)
        self.G = _bottleneck(self.split, rest, activation, factory)
        if like.device.type != "meta":
            with torch.no_grad():
                for linear in (m for m in self.modules() if isinstance(m, nn.Linear)):
                    nn.init.normal_(linear.weight, std=0.02)
                    nn.init.zeros_(linear.bias)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        x = e.to(self.G[0].weight.dtype)
        e1, e2 = x[..., : self.split], x[..., self.split :]
        o1 = e1 + self.F(e2)
        o2 = e2 + self.G(o1)
        return torch.cat((o1, o2), dim=-1).to(e.dtype)

    def inverse(self, o: torch.Tensor) -> torch.Tensor:
        x = o.to(self.G[0].weight.dtype)
        o1, o2 = x[..., : self.split], x[..., self.split :]
        e2 = o2 - self.G(o1)
        e1 = o1 - self.F(e2)
        return torch.cat((e1, e2), dim=-1).to(o.dtype)


def add_invertible(model, anatomy, activation: type[nn.Module]) -> None:
    """Put a fresh NICE coupling on ``model``'s embeddings (``<base model>.invertible_adapter``) and
    its inverse before the output embeddings, where the model has them."""
    d = getattr(model.config, anatomy.hidden_size_key)
    coupling = NICECoupling(d, activation, next(model.base_model.parameters()))
    setattr(model.base_model, INVERTIBLE, coupling)
    first = model.get_submodule(blocks(model, anatomy)[0])
    first.register_forward_pre_hook(functools.partial(_on_embeddings, coupling), with_kwargs=True)
    output_embeddings = model.get_output_embeddings()
    if output_embeddings is not None:
        output_embeddings.register_forward_pre_hook(functools.partial(_before_output_embeddings, coupling))


def _on_embeddings(coupling: NICECoupling, block, args, kwargs):
    """Forward pre-hook on the first block: A_inv on the hidden states it reads (the embeddings)."""
    if args:
        return (coupling(args[0]), *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": coupling(kwargs["hidden_states"])}


def _before_output_embeddings(coupling: NICECoupling, layer, args):
    """Forward pre-hook on the output embeddings: A_inv⁻¹ on the hidden states they project."""
    return (coupling.inverse(args[0]), *args[1:])
