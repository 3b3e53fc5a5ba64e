"""Hyperformer and Hyperformer++: adapters whose weights a hypernetwork generates from a task embedding.

Karimi Mahabadi, Ruder, Dehghani & Henderson, "Parameter-efficient Multi-task Fine-tuning for
Transformers via Shared Hypernetworks", ACL 2021 (arXiv 2106.04489), §2. One model trains on
several tasks at once (``task=[rte,mrpc,sst2]``, ``task=glue_all``); every task τ has a learned
embedding z_τ, which a task projector turns into the task embedding I, and at every adapter site
a hypernetwork turns I into the site's adapter and its layer norm (§2.2, §2.3; seed 002):

    I_τ = h_I(z_τ)       h_I: Linear(e, 128) · ReLU · Linear(128, 64)   (the task projector)
    D = W^D I,  U = W^U I   (with biases from their own generators),   γ = W^γ I,  β = W^β I
    A_τ(y) = y + LN_{γ,β}( U f(D y) )                       f = gelu_new

The adapter sits on the output y of each block's self-attention and feed-forward sublayer, before
the sublayer's dropout and residual (in the authors' T5, ``T5LayerSelfAttention`` and
``T5LayerFF``; cross-attention has none), in every block of every stack.

``hyperformer`` — one hypernetwork per adapter site (the authors' ``MetaAdapterController``,
    ``train_adapters_blocks``): per site, weight and bias generators for D and U and the
    conditional layer norm's γ and β, all reading I_τ. The task projector h_I is the paper's
    ("I_τ = h_I(z_τ)", seed 002; its ablation Table 4 removes exactly it, "– Task projector"), the
    authors' ``TaskHyperNet`` (hidden ``task_hidden_dim`` 128, output
    ``projected_task_embedding_dim`` 64), shared by every site. ``task_projector: false`` feeds
    z_τ to the generators directly: the ablation's row, and what the released
    ``configs/hyperformer.json`` runs (it leaves ``train_task_embeddings``, the projector's
    switch in ``TaskEmbeddingController``, at its default false). With T5-base, 8 tasks and
    reduction factor 32 this is 6.86% of the backbone per task, the paper's Table 1 column.

``hyperformer_pp`` — Hyperformer++ (§2.4): one set of generators for all sites of a stack,
    conditioned on I = LN(h'_I(z_τ, l_i, p_j)), where l_i is a learned layer-id embedding, p_j an
    adapter-position embedding (feed-forward or self-attention), and h'_I the task projector over
    their concatenation (3e → 128 → 64). One D/U generator pair and one layer-norm generator per
    stack (the authors' ``AdapterLayersOneHyperNetController``, ``efficient_unique_hyper_net``;
    the encoder and the decoder each have theirs). T5-base, 8 tasks: 0.29% per task. Its
    projector is how layer and position enter, so it cannot be switched off.

Shared across stacks: the task embeddings z_τ (``torch.randn``, dim e = 64: the released
configs set ``task_embedding_dim`` to 512 and then to 64, and the last value holds). Trained: the
task projector, the hypernetworks, the task embeddings, and the backbone's own layer norms (the
configs' ``unfreeze_layer_norms: true``); nothing else. Initialisation as the authors'
``linear_layer``: every generator and projector weight N(0, 1e-2), biases 0, so γ starts near 0
and every adapter near the identity. Defaults (reduction factor 32, embeddings 64, gelu_new, lr
3e-4) are those of ``hyperformer/configs/hyperformer++.json`` (rabeehk/hyperformer@56b0f99).

The run tells the method its tasks (``tasks``) and which one each batch is (``select_task``);
the generated weights of a task are ``adapter_weights(task, site)``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from peftbench.errors import UserError
from peftbench.methods import register
from peftbench.methods.adapters import ACTIVATIONS
from peftbench.methods.base import Method, MethodConfig, require
from peftbench.methods.wrapped import WrappedProjection, replace_module
from peftbench.models.anatomy import blocks, locate

SITES = ("ffn.out", "attn.o")  # adapter positions, in the order of the position embedding (0: FFN, 1: attention)
CONTAINER = "hyperformer"  # the module under the base model that holds every trained tensor but the norms
INIT_STD = 1e-2  # the authors' linear_layer(std=1e-2)


@dataclass
class HyperformerConfig(MethodConfig):
    reduction_factor: float = 32.0
    task_embedding_dim: int = 64
    projector_hidden: int = 128  # the task projector h_I: e (Hyperformer++: 3e) -> hidden -> projected
    projected_dim: int = 64
    activation: str = "gelu_new"
    train_layer_norms: bool = True
    task_projector: bool = True  # I_τ = h_I(z_τ) (the paper); false: z_τ to the generators (Table 4's ablation)

    def check(self) -> None:
        require(self.reduction_factor >= 1, f"method.reduction_factor must be ≥ 1, got {self.reduction_factor}; e.g. 32")
        for field in ("task_embedding_dim", "projector_hidden", "projected_dim"):
            value = getattr(self, field)
            require(value >= 1, f"method.{field} must be ≥ 1, got {value}; e.g. 64")
        require(
            self.activation in ACTIVATIONS,
            f"method.activation must be one of {', '.join(ACTIVATIONS)}, got '{self.activation}'",
        )


def _linear(inputs: int, outputs: int, like: torch.Tensor) -> nn.Linear:
    linear = nn.Linear(inputs, outputs, device=like.device, dtype=torch.float32)
    if like.device.type != "meta":
        nn.init.normal_(linear.weight, std=INIT_STD)
        nn.init.zeros_(linear.bias)
    return linear


def _projector(inputs: int, config: HyperformerConfig, like: torch.Tensor) -> nn.Sequential:
    """The task projector h_I: Linear(inputs, hidden) · ReLU · Linear(hidden, projected) (the
    authors' ``TaskHyperNet``; "two feed-forward layers and a ReLU non-linearity")."""
    hidden = config.projector_hidden
    return nn.Sequential(_linear(inputs, hidden, like), nn.ReLU(), _linear(hidden, config.projected_dim, like))


class AdapterGenerator(nn.Module):
    """From an embedding I: the adapter's D (m×d) and U (d×m) with their biases, and γ, β of its
    layer norm — each a linear map of I (§2.2–2.3)."""

    def __init__(self, embedding: int, d: int, m: int, like: torch.Tensor):
        super().__init__()
        self.d, self.m = d, m
        self.down = _linear(embedding, m * d, like)
        self.down_bias = _linear(embedding, m, like)
        self.up = _linear(embedding, d * m, like)
        self.up_bias = _linear(embedding, d, like)
        self.gamma = _linear(embedding, d, like)
        self.beta = _linear(embedding, d, like)

    def forward(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "down": self.down(embedding).view(self.m, self.d),
            "down_bias": self.down_bias(embedding),
            "up": self.up(embedding).view(self.d, self.m),
            "up_bias": self.up_bias(embedding),
            "gamma": self.gamma(embedding),
            "beta": self.beta(embedding),
        }


class StackEmbeddings(nn.Module):
    """Hyperformer++'s I = LN(h_I([z_τ; l_i; p_j])) for one stack."""

    def __init__(self, config: HyperformerConfig, layers: int, like: torch.Tensor):
        super().__init__()
        e = config.task_embedding_dim
        self.layer = nn.Embedding(layers, e, device=like.device)
        self.position = nn.Embedding(len(SITES), e, device=like.device)
        self.projector = _projector(3 * e, config, like)
        self.norm = nn.LayerNorm(config.projected_dim, eps=1e-6, device=like.device)

    def forward(self, task: torch.Tensor, layer: int, position: int) -> torch.Tensor:
        joint = torch.cat([task, self.layer.weight[layer], self.position.weight[position]])
        return self.norm(self.projector(joint))


class HyperNetworks(nn.Module):
    """Every trained tensor of the method but the backbone's norms: task embeddings, projectors and
    generators.

    ``sites`` lists (stack, layer, position) per adapter site; ``weights(site)`` generates that
    site's adapter for the ``current`` task.
    """

    def __init__(self, config: HyperformerConfig, tasks: list[str], sites: list[tuple[int, int, int]],
                 layers: list[int], d: int, shared: bool, like: torch.Tensor):  # fmt: skip
        super().__init__()
        self.tasks, self.sites, self.shared = list(tasks), sites, shared
        self.current = 0
        self.task_embeddings = nn.Parameter(torch.randn(len(tasks), config.task_embedding_dim, device=like.device))
        m = max(1, int(d // config.reduction_factor))
        if shared:
            self.stacks = nn.ModuleList(StackEmbeddings(config, n, like) for n in layers)
            self.generators = nn.ModuleList(AdapterGenerator(config.projected_dim, d, m, like) for _ in layers)
        else:
            self.projector = _projector(config.task_embedding_dim, config, like) if config.task_projector else None
            width = config.projected_dim if config.task_projector else config.task_embedding_dim
            self.generators = nn.ModuleList(AdapterGenerator(width, d, m, like) for _ in sites)

    def weights(self, site: int, task: int | None = None) -> dict[str, torch.Tensor]:
        z = self.task_embeddings[self.current if task is None else task]
        if self.shared:
            stack, layer, position = self.sites[site]
            return self.generators[stack](self.stacks[stack](z, layer, position))
        return self.generators[site](z if self.projector is None else self.projector(z))


class HyperAdapter(WrappedProjection):
    """``y + LN_{γ,β}(U f(D y))`` on a sublayer's output projection, with generated weights."""

    def __init__(self, base: nn.Module, generate, activation: str):
        super().__init__(base)
        self.generate = generate  # a plain callable: the hypernetworks live in the container
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        w = self.generate()
        z = F.linear(self.act(F.linear(y.to(w["down"].dtype), w["down"], w["down_bias"])), w["up"], w["up_bias"])
        return y + F.layer_norm(z, (z.shape[-1],), w["gamma"], w["beta"]).to(y.dtype)


class _Hyperformer(Method):
    Config = HyperformerConfig
    families = frozenset({"decoder", "encoder_decoder"})
    shared: ClassVar[bool]

    def check_model(self, anatomy, arch_config) -> None:
        super().check_model(anatomy, arch_config)
        missing = sorted(set(SITES) - anatomy.roles())
        fused = [role for stack in anatomy.stacks for role in SITES if not isinstance(stack.roles.get(role, ""), str)]
        if missing or fused:
            raise UserError(f"method '{self.name}' needs separate {', '.join(SITES)} projections, which "
                            f"{arch_config.model_type} lacks; pick a T5 or Llama-style model")  # fmt: skip
        if self.shared and not self.config.task_projector:
            raise UserError("method.task_projector=false removes Hyperformer's projector (Table 4); "
                            "Hyperformer++ conditions on layer and position through its own, so drop it "
                            "or use method=hyperformer")  # fmt: skip

    def apply(self, model, anatomy) -> None:
        block_paths = blocks(model, anatomy)
        stack_of = {path: next(i for i, s in enumerate(anatomy.stacks) if f".{s.path}." in f".{path}")
                    for path in block_paths}  # fmt: skip
        layers = [sum(1 for s in stack_of.values() if s == i) for i in range(len(anatomy.stacks))]
        found = []
        for position, role in enumerate(SITES):
            for path, _ in locate(model, anatomy, role):
                block = max((b for b in block_paths if path.startswith(b + ".")), key=len)
                found.append((path, (stack_of[block], int(block.rsplit(".", 1)[1]), position)))
        d = getattr(model.config, anatomy.hidden_size_key)
        like = next(model.parameters())
        container = HyperNetworks(self.config, self.tasks, [site for _, site in found], layers, d, self.shared, like)
        model.base_model.add_module(CONTAINER, container)
        for index, (path, _) in enumerate(found):
            generate = functools.partial(container.weights, index)
            replace_module(model, path, HyperAdapter(model.get_submodule(path), generate, self.config.activation))
        container.requires_grad_(True)
        self._container = container
        self._norm_names = []
        if self.config.train_layer_norms:
            for name, module in model.base_model.named_modules():
                if "norm" in type(module).__name__.lower() and not name.startswith(CONTAINER):
                    for param_name, param in module.named_parameters(recurse=False):
                        param.requires_grad_(True)
                        self._norm_names.append(_full_name(model, f"{name}.{param_name}"))

    def parameter_names(self, model) -> list[str]:
        container = _full_name(model, CONTAINER)
        return [n for n, _ in model.named_parameters() if n.startswith(container + ".")] + self._norm_names

    def select_task(self, name: str) -> None:
        if name not in self.tasks:
            raise UserError(f"method '{self.name}' has no embedding for task '{name}'; it was built for {', '.join(self.tasks)}")
        self._container.current = self.tasks.index(name)

    def adapter_weights(self, task: str, site: int) -> dict[str, torch.Tensor]:
        """The adapter the hypernetwork generates for ``task`` at adapter site number ``site``."""
        return self._container.weights(site, self.tasks.index(task))


def _full_name(model, name_in_base: str) -> str:
    """A parameter's name in ``model`` from its name under ``model.base_model``."""
    prefix = next((n for n, m in model.named_modules() if m is model.base_model), "")
    return f"{prefix}.{name_in_base}" if prefix else name_in_base


@register
class Hyperformer(_Hyperformer):
    name = "hyperformer"
    shared = False


@register
class HyperformerPP(_Hyperformer):
    name = "hyperformer_pp"
    shared = True
