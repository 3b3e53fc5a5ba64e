"""Bottleneck adapters: Houlsby, Pfeiffer, parallel (He et al.) and Lin, each with AdapterDrop.

Every variant inserts, at some sites of each transformer block, a bottleneck module

    A(h) = f(h W_down + b_down) W_up + b_up,     W_down ∈ R^{d×m}, W_up ∈ R^{m×d}, m ≪ d

which has 2md + d + m parameters (Houlsby et al. 2019, §2.1), and freezes the backbone. The
variants differ in where A sits, what feeds it, what else trains and how it starts:

``houlsby`` — Houlsby et al., ICML 2019 (arXiv 1902.00751), Fig. 2: two adapters per block, after
    the attention output projection and after the FFN output projection, before the residual
    add: ``o = h + A(h)`` with h the projection's output (roles ``attn.o`` and ``ffn.out``). The
    block's layer norms (``ln.attn``, ``ln.ffn``) train too ("new layer normalization parameters
    per task", §2.1). Near-identity initialisation: both weights from a zero-mean normal
    truncated at two standard deviations, std 1e-3 as in the authors' code
    (google-research/adapter-bert, ``feedforward_adapter(..., init_scale=1e-3)``; Fig. 6 shows
    training is robust for std ≤ 1e-2), biases zero; f = GELU (same code); m = 64 (Table 1's
    "Adapters (64)"). The adapter wraps the projection, so it runs before the sublayer's dropout
    (the authors' code applies it after); in evaluation the two are the same function.

``pfeiffer`` — the adapter of AdapterFusion (Pfeiffer et al., EACL 2021, arXiv 2005.00247, §2.2 and
    App. A; AdapterHub's ``PfeifferConfig`` / ``SeqBnConfig``): one adapter per block, after the
    FFN only, nothing else trained — AdapterHub's Pfeiffer config adds no layer norm and
    ``train_adapter`` freezes the model's. f = ReLU, m = d / 16 (``reduction_factor=16``),
    weights N(0, 0.02) and zero biases (AdapterHub's ``init_weights="bert"``). The LoRA paper's
    Adpt^P counts (Table 2) are 2md + d + m per layer with no layer norm, which this reproduces.
    Wiring, as AdapterHub's ``bottleneck_layer_forward`` with ``original_ln_before``,
    ``original_ln_after`` and ``residual_before_ln``: with s = x + FFN(x) the FFN's residual sum,
    the block's output is ``LN(s + A(LN(s)))`` in a post-LN block (BERT, RoBERTa, MPNet, DeBERTa:
    the adapter reads the normed sum and the block's frozen ``ln.ffn`` runs on both sides of it),
    and ``s + A(s)`` in a pre-LN block (GPT-2, Llama, T5: no norm after the sum, so the adapter
    sits on the block's output).

``parallel`` — He et al., ICLR 2022 (arXiv 2110.04366), Eq. 6 and Fig. 1(c): the adapter runs
    *beside* the FFN sublayer, reading the sublayer's input x and adding its scaled output to the
    FFN's output: ``FFN(x) + s · A(x)`` (sum on ``ffn.out``). x is the residual stream the
    sublayer starts from: in a post-LN block (BERT) the FFN's own input (captured with a forward
    pre-hook on ``ffn.in``), in a pre-LN block (GPT-2, Llama, T5) the input of the sublayer's
    layer norm (a pre-hook on ``ln.ffn``), not the normed FFN input — the authors' released code
    (jxhe/unify-parameter-efficient-tuning@3222ce2, modeling_mbart.py: the adapter reads
    ``hidden_states`` before ``final_layer_norm``, "this corresponds to old Hi, and this is
    final") and AdapterHub's ``ParBnConfig`` (``ParallelAdapter.pre_forward`` reads the sublayer's
    residual input). s = 4, f = ReLU, m = 512 and the "lora" initialisation of the authors' code
    (W_down Kaiming-uniform, W_up = 0, biases 0), so it starts as the identity.

``lin`` — Lin, Madotto & Fung, Findings of EMNLP 2020 (arXiv 2004.03829), the LoRA paper's
    Adapter^L: one adapter per block on the block's output (after the FFN and its residual
    add), with its own trainable LayerNorm on the adapter input:
    ``Adapter(H) = ReLU(LN(H) W_E) W_D + H`` (the authors' code, zlinao/VGLM
    ``modeling_vlm.py``: ``x = x + m; x = self.adapter_block(x)``). Weights N(0, 0.02), zero
    biases (GPT-2's ``_init_weights`` in that code), LN γ = 1, β = 0. Parameters per adapter:
    2md + d + m + 2d (the LoRA paper's |Θ| with L̂_LN = L̂_Adpt).

AdapterDrop (Rücklé et al., EMNLP 2021, arXiv 2010.11918) is an option of every variant:
``drop_layers: n`` puts no adapter (and trains nothing) in the lowest n blocks of each stack,
so backpropagation can stop above them. (In an encoder-decoder, both stacks lose their n
lowest blocks.)

MAD-X's invertible adapter (Pfeiffer et al., EMNLP 2020, arXiv 2005.00052) is an option of
every variant too: ``invertible: nice`` adds a NICE coupling on the embeddings and its inverse
before the output embeddings, trained with the adapters (``peftbench.methods.invertible``);
``method=pfeiffer method.invertible=nice`` is AdapterHub's ``SeqBnInvConfig`` (its language
adapter), on which ``method=madx`` stacks a task adapter (``stack``: the site's layer norm runs
between the two, as AdapterHub's ``Stack``). ``none`` (the default) adds nothing.

The bottleneck is ``bottleneck`` (m) or ``reduction_factor`` (m = d // reduction_factor), one
of the two. ``init`` may be set to ``houlsby`` | ``bert`` | ``lora`` for any variant; with
``lora`` (W_up = 0) every variant starts exactly as the frozen backbone.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
from torch import nn

from peftbench.errors import UserError
from peftbench.methods import register
from peftbench.methods.base import Method, MethodConfig, require
from peftbench.methods.invertible import INVERTIBLE, KINDS, add_invertible
from peftbench.methods.wrapped import WrappedProjection, replace_module
from peftbench.models.anatomy import blocks, locate

ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "gelu_new": functools.partial(nn.GELU, approximate="tanh"),  # HF's "gelu_new" (Compacter's code)
    "tanh": nn.Tanh,
    "swish": nn.SiLU,
}
INITS = ("houlsby", "bert", "lora")
ADAPTER = "bottleneck_adapter"  # the child-module name that marks an adapter's parameters
STACKED = "stacked_adapter"  # the child-module name of an adapter stacked on another (MAD-X's task adapter)


@dataclass
class AdapterConfig(MethodConfig):
    bottleneck: Optional[int] = None
    reduction_factor: Optional[float] = None
    activation: str = "relu"
    drop_layers: int = 0
    init: str = "bert"
    train_layer_norms: bool = False
    invertible: str = "none"

    inits: ClassVar[tuple[str, ...]] = INITS  # the values ``init`` may take (a variant may widen it)

    def check(self) -> None:
        require(
            (self.bottleneck is None) != (self.reduction_factor is None),
            "set exactly one of method.bottleneck and method.reduction_factor, the other to null "
            f"(got bottleneck={self.bottleneck}, reduction_factor={self.reduction_factor}); "
            "e.g. method.bottleneck=64 method.reduction_factor=null",
        )
        if self.bottleneck is not None:
            require(self.bottleneck >= 1, f"method.bottleneck must be ≥ 1, got {self.bottleneck}; e.g. 64")
        else:
            require(
                self.reduction_factor >= 1,
                f"method.reduction_factor must be ≥ 1, got {self.reduction_factor}; e.g. 16 (m = d / 16)",
            )
        require(
            self.activation in ACTIVATIONS,
            f"method.activation must be one of {', '.join(ACTIVATIONS)}, got '{self.activation}'",
        )
        require(self.drop_layers >= 0, f"method.drop_layers must be ≥ 0, got {self.drop_layers}")
        require(self.init in self.inits, f"method.init must be one of {', '.join(self.inits)}, got '{self.init}'")
        require(self.invertible in KINDS, f"method.invertible must be one of {', '.join(KINDS)}, got '{self.invertible}'")

    def size(self, hidden: int) -> int:
        """The bottleneck m for a model of width ``hidden``."""
        if self.bottleneck is not None:
            return self.bottleneck
        return max(1, int(hidden // self.reduction_factor))


@dataclass
class HoulsbyConfig(AdapterConfig):
    bottleneck: Optional[int] = 64
    activation: str = "gelu"
    init: str = "houlsby"
    train_layer_norms: bool = True


@dataclass
class PfeifferConfig(AdapterConfig):
    reduction_factor: Optional[float] = 16.0
    activation: str = "relu"
    init: str = "bert"


@dataclass
class ParallelConfig(AdapterConfig):
    bottleneck: Optional[int] = 512
    activation: str = "relu"
    init: str = "lora"
    scaling: float = 4.0

    def check(self) -> None:
        super().check()
        require(self.scaling > 0, f"method.scaling must be positive, got {self.scaling}; e.g. 4")


@dataclass
class LinConfig(AdapterConfig):
    bottleneck: Optional[int] = 10  # the authors' NLG setting (zlinao/VGLM bottleneck_map "nlg": 10)
    activation: str = "relu"
    init: str = "bert"


class Bottleneck(nn.Module):
    """A(h) = f(LN?(h) W_down + b_down) W_up + b_up — the residual is the caller's."""

    def __init__(self, d: int, m: int, activation: str, init: str, like: torch.Tensor, layer_norm: bool = False):
        super().__init__()
        factory = {"device": like.device, "dtype": like.dtype}
        self.layer_norm = nn.LayerNorm(d, eps=1e-5, **factory) if layer_norm else None
        self.down = nn.Linear(d, m, **factory)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(m, d, **factory)
        if like.device.type != "meta":
            self.reset(init)

    @torch.no_grad()
    def reset(self, init: str) -> None:
        if init == "houlsby":  # truncated normal, std 1e-3, cut at 2 std (adapter-bert)
            for linear in (self.down, self.up):
                nn.init.trunc_normal_(linear.weight, std=1e-3, a=-2e-3, b=2e-3)
        elif init == "bert":  # AdapterHub init_weights="bert" / GPT-2's _init_weights
            for linear in (self.down, self.up):
                nn.init.normal_(linear.weight, std=0.02)
        else:  # "lora": He et al.'s ffn_adapter_init_option="lora"
            nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
            nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = self.layer_norm(h) if self.layer_norm is not None else h
        return self.up(self.act(self.down(z.to(self.down.weight.dtype)))).to(h.dtype)


class SequentialAdapter(WrappedProjection):
    """``o = h + A(h)`` with h = base(x): Houlsby / Pfeiffer, after a projection, before the residual."""

    def __init__(self, base: nn.Module, adapter: Bottleneck):
        super().__init__(base)
        setattr(self, ADAPTER, adapter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.base(x)
        return h + getattr(self, ADAPTER)(h)


class PostNormAdapter(nn.Module):
    """``LN(s + A(LN(s)))`` in place of a post-LN block's ``LN(s)``: Pfeiffer's wiring (AdapterHub).

    With a stacked adapter A' (``STACKED``): s' = s + A(LN(s)), then ``LN(s' + A'(LN(s')))``, as
    AdapterHub's ``Stack`` composes two of its adapters (``compose_stack``: each adapter's
    ``pre_forward`` adds the sublayer's residual input and applies the layer norm again)."""

    def __init__(self, norm: nn.Module, adapter: Bottleneck):
        super().__init__()
        self.base = norm
        setattr(self, ADAPTER, adapter)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        for slot in (ADAPTER, STACKED):
            if slot in self._modules:
                s = s + self._modules[slot](self.base(s))
        return self.base(s)


class ParallelAdapter(WrappedProjection):
    """``FFN(x) + s · A(x)``: wraps the FFN output projection; x comes from a pre-hook on the
    sublayer's input (``ffn.in`` post-LN, ``ln.ffn`` pre-LN)."""

    def __init__(self, base: nn.Module, adapter: Bottleneck, scaling: float):
        super().__init__(base)
        setattr(self, ADAPTER, adapter)
        self.scaling = scaling
        self._ffn_input = None

    def capture(self, module, args):
        """Forward pre-hook on ``ffn.in`` or ``ln.ffn``: remember the sublayer's input for this forward pass."""
        self._ffn_input = args[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        ffn_input, self._ffn_input = self._ffn_input, None
        if ffn_input is None:
            raise RuntimeError("parallel adapter: the FFN sublayer's input was not captured (its hook did not run first)")
        return out + self.scaling * getattr(self, ADAPTER)(ffn_input)


class _Adapters(Method):
    """What the variants share: sites, AdapterDrop, layer norms, names."""

    sites: tuple[str, ...] = ()  # roles whose output gets a sequential adapter
    needs: tuple[str, ...] = ()  # roles that must exist

    def check_model(self, anatomy, arch_config) -> None:
        super().check_model(anatomy, arch_config)
        missing = sorted(set(self.needs) - anatomy.roles())
        if missing:
            raise UserError(f"method '{self.name}' needs roles {missing}, which {arch_config.model_type} lacks")
        fused = [
            role for stack in anatomy.stacks for role in self.needs
            if role in stack.roles and not isinstance(stack.roles[role], str)
        ]  # fmt: skip
        if fused:
            raise UserError(f"method '{self.name}' cannot wrap {sorted(set(fused))}: a slice of a fused projection")
        width = getattr(arch_config, anatomy.hidden_size_key)
        m = self.config.size(width)
        if m >= width:
            raise UserError(
                f"method bottleneck {m} is not smaller than the hidden size {width} of {arch_config.model_type}; "
                f"choose method.bottleneck < {width}"
            )
        layers = [getattr(arch_config, anatomy.layers_key)]
        if anatomy.family == "encoder_decoder" and getattr(arch_config, "num_decoder_layers", None):
            layers.append(arch_config.num_decoder_layers)
        if self.config.drop_layers >= min(layers):
            raise UserError(
                f"method.drop_layers={self.config.drop_layers} leaves no adapter: "
                f"{arch_config.model_type} has {min(layers)} layers per stack; choose fewer"
            )

    def apply(self, model, anatomy) -> None:
        self._norm_names: list[str] = []
        self._adapt(model, anatomy)
        if self.config.invertible != "none":
            add_invertible(model, anatomy, ACTIVATIONS[self.config.activation])
        if self.config.train_layer_norms:
            for path in self._layer_norms(model, anatomy):
                for name, param in model.get_submodule(path).named_parameters():
                    if f"{ADAPTER}." in name:  # a norm wrapped by its adapter (post-LN pfeiffer)
                        continue
                    param.requires_grad_(True)
                    self._norm_names.append(f"{path}.{name}")
        for name, param in model.named_parameters():
            if f".{ADAPTER}." in name or _is_invertible(name):
                param.requires_grad_(True)

    def parameter_names(self, model) -> list[str]:
        adapters = [n for n, _ in model.named_parameters() if f".{ADAPTER}." in n or _is_invertible(n)]
        return adapters + list(getattr(self, "_norm_names", []))

    def _adapt(self, model, anatomy) -> None:
        for role in self.sites:
            for _, path in self._kept(model, anatomy, role):
                base = model.get_submodule(path)
                replace_module(model, path, SequentialAdapter(base, self._bottleneck(model, anatomy, base)))

    def _layer_norms(self, model, anatomy) -> list[str]:
        """Module paths of the layer norms ``train_layer_norms`` trains: the blocks' ln.attn, ln.ffn."""
        return [path for role in ("ln.attn", "ln.ffn") for _, path in self._kept(model, anatomy, role)]

    def _bottleneck(self, model, anatomy, like: nn.Module, layer_norm: bool = False) -> Bottleneck:
        d = getattr(model.config, anatomy.hidden_size_key)
        weight = next(like.parameters())
        return Bottleneck(d, self.config.size(d), self.config.activation, self.config.init, weight, layer_norm)

    def _kept(self, model, anatomy, role) -> list[tuple[str, str]]:
        """(block, module path) of ``role`` in every block above the lowest ``drop_layers`` of its stack."""
        block_paths = blocks(model, anatomy)
        kept = []
        for path, _ in locate(model, anatomy, role):
            block = max((b for b in block_paths if path.startswith(b + ".")), key=len)
            if int(block.rsplit(".", 1)[1]) >= self.config.drop_layers:
                kept.append((block, path))
        return kept

    def _kept_blocks(self, model, anatomy) -> list[str]:
        return [b for b in blocks(model, anatomy) if int(b.rsplit(".", 1)[1]) >= self.config.drop_layers]


@register
class Houlsby(_Adapters):
    name = "houlsby"
    fusion_stage = True  # AdapterFusion fuses its runs (Pfeiffer et al. 2021 §3.1)
    Config = HoulsbyConfig
    sites = ("attn.o", "ffn.out")
    needs = ("attn.o", "ffn.out", "ln.attn", "ln.ffn")


@register
class Pfeiffer(_Adapters):
    name = "pfeiffer"
    fusion_stage = True  # AdapterFusion fuses its runs (Pfeiffer et al. 2021 §3.1)
    Config = PfeifferConfig
    needs = ("ffn.out", "ln.ffn")

    def _adapt(self, model, anatomy, slot: str = ADAPTER) -> None:
        if anatomy.pre_norm:
            _adapt_block_outputs(self, model, anatomy, layer_norm=False, slot=slot)
            return
        for _, path in self._kept(model, anatomy, "ln.ffn"):
            norm = model.get_submodule(path)
            adapter = self._bottleneck(model, anatomy, norm)
            if slot == ADAPTER:
                replace_module(model, path, PostNormAdapter(norm, adapter))
            else:  # the PostNormAdapter of the adapter below
                setattr(norm, slot, adapter)

    def stack(self, model, anatomy) -> None:
        """Stack this adapter on the Pfeiffer adapters already at every kept site, as AdapterHub's
        ``Stack(below, this)``: it reads what the one below wrote (post-LN: through the site's
        layer norm; pre-LN: the block output after the adapter below). Its parameters become
        trainable."""
        self._adapt(model, anatomy, slot=STACKED)
        for name, param in model.named_parameters():
            if f".{STACKED}." in name:
                param.requires_grad_(True)


@register
class Parallel(_Adapters):
    name = "parallel"
    fusion_stage = True  # AdapterFusion fuses its runs (Pfeiffer et al. 2021 §3.1)
    Config = ParallelConfig
    needs = ("ffn.in", "ffn.out", "ln.ffn")

    def _adapt(self, model, anatomy) -> None:
        inputs = dict(self._kept(model, anatomy, "ln.ffn" if anatomy.pre_norm else "ffn.in"))
        for block, path in self._kept(model, anatomy, "ffn.out"):
            base = model.get_submodule(path)
            wrapper = ParallelAdapter(base, self._bottleneck(model, anatomy, base), self.config.scaling)
            model.get_submodule(inputs[block]).register_forward_pre_hook(wrapper.capture)
            replace_module(model, path, wrapper)


@register
class Lin(_Adapters):
    name = "lin"
    fusion_stage = True  # AdapterFusion fuses its runs (Pfeiffer et al. 2021 §3.1)
    Config = LinConfig
    needs = ("ffn.out",)

    def _adapt(self, model, anatomy) -> None:
        _adapt_block_outputs(self, model, anatomy, layer_norm=True)


def _adapt_block_outputs(method: _Adapters, model, anatomy, layer_norm: bool, slot: str = ADAPTER) -> None:
    """An adapter with its skip, ``H + A(H)``, on the output H of every kept block (a ``STACKED``
    one after the adapter already there: its hook runs second)."""
    for block in method._kept_blocks(model, anatomy):
        module = model.get_submodule(block)
        adapter = method._bottleneck(model, anatomy, module, layer_norm=layer_norm)
        setattr(module, slot, adapter)
        module.register_forward_hook(functools.partial(_on_block_output, slot=slot))


def _is_invertible(name: str) -> bool:
    """Whether ``name`` is a parameter of the base model's invertible adapter."""
    return name.startswith(f"{INVERTIBLE}.") or f".{INVERTIBLE}." in name


def _on_block_output(block, args, output, slot: str = ADAPTER):
    """Forward hook for a block: its adapter (with the skip) on the block's hidden states. The
    adapter is looked up at call time, so a module put in its place (AdapterFusion) takes over."""
    adapter = getattr(block, slot)
    if isinstance(output, torch.Tensor):
        return output + adapter(output)
    first = output[0]
    return (first + adapter(first), *output[1:])
