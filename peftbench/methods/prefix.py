"""Prefix tuning (Li and Liang, ACL 2021, "Prefix-Tuning: Optimizing Continuous Prompts for Generation").

Every attention layer attends, before the real tokens, to n = ``length`` learned key/value pairs,
the prefix: for layer i, h_i = P_θ[i, :] on the prefix positions (Eq. 1 in §4.2), i.e.

    Attn(Q, [P_K^i; K], [P_V^i; V])         P_K^i, P_V^i ∈ R^{n×d}

with the language model frozen and only P_θ trained. Optimising P_θ directly is unstable, so the
paper reparameterises it during training (§4.3):

    P_θ[j, :] = MLP_θ(P'_θ[j, :])        P' ∈ R^{n×d'},  MLP: Linear(d', h) → tanh → Linear(h, L·2·d)

(h = ``hidden_size``, 512 in the paper's table-to-text runs and its code's ``mid_dim``), and
"once training is complete, these reparameterization parameters can be dropped, and only the
prefix P_θ needs to be saved". ``reparameterize: false`` trains P_θ directly. Initialisation is
that of HF peft's ``PrefixEncoder`` (``nn.Embedding`` N(0, 1), ``nn.Linear`` defaults); the paper's
real-word initialisation (§7.2) is not offered.

Where the prefixes go: every self-attention layer of the model (BERT, RoBERTa, GPT-2, Llama), and
for encoder-decoders (T5) the paper's three sets — encoder self-attention, decoder self-attention
and decoder cross-attention, each with its own P' and MLP as in the paper's BART code
(``wte_enc``/``control_trans_enc``, ``wte``/``control_trans``, ``wte2``/``control_trans2``). HF peft 0.21
does less for encoder-decoders: with ``SEQ_2_SEQ_LM`` its prefix reaches only the decoder's
self-attention (the encoder is never handed ``past_key_values`` and peft empties the cross-attention
cache), and with ``SEQ_CLS`` on T5 it fails (the encoder mask is extended, the encoder gets no
prefix).

How they get in, as HF peft does for ``SEQ_CLS`` (``PeftModel.get_prompt``): as a ``DynamicCache``
holding the n prefix positions of every layer, passed as ``past_key_values`` to the base model
(a forward pre-hook on ``model.base_model``, so sequence-classification and causal-LM heads work
alike), with the attention mask extended by n ones in front. Consequences, all as in peft:

* decoders number the text positions n..n+L−1 (the model counts from the cache length); caller
  ``position_ids`` (``generate`` passes them) are shifted by n to agree. ``input_ids`` keep their
  length, so a decoder's classification head still pools the last real token under right padding;
* BERT and RoBERTa also start the text's absolute positions at n (their embeddings offset by the
  cache length);
* generation with a KV cache: a cache that is empty (``generate`` makes one) is filled with the
  prefix in place; a non-empty one already holds it, so only the mask (and positions) change.

T5's encoder drops ``past_key_values`` in transformers 5, so there each encoder self-attention
module gets its layer's prefix by its own pre-hook; the decoder gets an ``EncoderDecoderCache``
whose self-attention part holds the decoder prefix and whose cross-attention part starts with the
cross prefix (the encoder's keys/values are appended to it on the first step), and the encoder
mask is extended by n for both the encoder and the cross-attention. T5's relative position bias
then treats the prefix as the n positions before the text.

Widths: d is the key/value width of a layer (heads_kv × head_dim): the hidden size for BERT,
RoBERTa, GPT-2 and T5 (n_heads·d_kv), num_key_value_heads·head_dim for Llama with GQA, as peft
(``token_dim``). P' has width d too (peft's ``token_dim``; the paper's n_embd for GPT-2).

Parameter counts, per prefix set over L layers (peft's counts for ``SEQ_CLS``):

* training, reparameterised: n·d + (d·h + h) + (h·2Ld + 2Ld);
* training without the MLP, and after ``fold``: n·2Ld — the prefixes alone. ``fold`` computes
  P = MLP(P') once and drops P' and the MLP, so what is saved/exported for inference is just the
  prefixes (peft's ``inference_mode`` layout: ``embedding.weight`` of shape n × 2Ld). The LoRA
  paper's "prefix-layer"/"prefix-embedding" rows count parameters in this folded form.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn

from peftbench.errors import UserError
from peftbench.methods import register
from peftbench.methods.base import Method, MethodConfig, require

ATTRIBUTE = "prefix"


@dataclass
class PrefixConfig(MethodConfig):
    length: int = 10
    reparameterize: bool = True
    hidden_size: int = 512

    def check(self) -> None:
        require(self.length >= 1, f"method.length must be a positive integer, got {self.length}; e.g. method.length=10")
        require(
            self.hidden_size >= 1,
            f"method.hidden_size must be a positive integer, got {self.hidden_size}; e.g. method.hidden_size=512",
        )


class PrefixEncoder(nn.Module):
    """P_θ ∈ R^{n × L·2·d} for one set of L attention layers: free, or MLP(P') (peft's PrefixEncoder).

    Row j of P holds, layer by layer, the key then the value of virtual token j, each d = heads·head_dim
    wide (the layout of peft's ``get_prompt``).
    """

    def __init__(self, length: int, layers: int, heads: int, head_dim: int, hidden_size: int, reparameterize: bool):
        super().__init__()
        self.length, self.layers, self.heads, self.head_dim = length, layers, heads, head_dim
        self.reparameterize = reparameterize
        token_dim = heads * head_dim
        width = layers * 2 * token_dim
        if reparameterize:
            self.embedding = nn.Embedding(length, token_dim)
            self.transform = nn.Sequential(nn.Linear(token_dim, hidden_size), nn.Tanh(), nn.Linear(hidden_size, width))
        else:
            self.embedding = nn.Embedding(length, width)

    def prefixes(self) -> torch.Tensor:
        """P as (n, L·2·d)."""
        weight = self.embedding.weight
        return self.transform(weight) if self.reparameterize else weight

    def key_values(self, batch: int, dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer (key, value), each (batch, heads, n, head_dim) in the model's dtype."""
        P = self.prefixes().to(dtype)
        P = P.view(self.length, self.layers * 2, self.heads, self.head_dim).permute(1, 2, 0, 3)
        return [
            (P[2 * i].unsqueeze(0).expand(batch, -1, -1, -1), P[2 * i + 1].unsqueeze(0).expand(batch, -1, -1, -1))
            for i in range(self.layers)
        ]

    @torch.no_grad()
    def fold(self) -> None:
        """Replace P' and the MLP by the prefixes they compute (a no-op without the MLP)."""
        if not self.reparameterize:
            return
        P = self.prefixes().detach().clone()
        weight = self.embedding.weight
        table = nn.Embedding(self.length, P.shape[1], device=weight.device, dtype=P.dtype)
        table.weight.copy_(P)
        table.weight.requires_grad_(weight.requires_grad)
        self.embedding = table
        del self.transform
        self.reparameterize = False


def _fill(cache, key_values) -> None:
    for i, (key, value) in enumerate(key_values):
        cache.update(key, value, i)


def _extend(mask: torch.Tensor | None, n: int) -> torch.Tensor | None:
    if mask is None or mask.dim() != 2:
        return mask
    return torch.cat([mask.new_ones(mask.shape[0], n), mask], dim=1)


def _call(args, kwargs) -> tuple[tuple, dict, int, torch.dtype | None]:
    """A hooked call with its first positional input moved into ``input_ids``, its batch size
    and its floating dtype (None for token ids)."""
    kwargs = dict(kwargs)
    if args:
        kwargs["input_ids"], args = args[0], args[1:]
    for key in ("input_ids", "inputs_embeds", "hidden_states"):
        value = kwargs.get(key)
        if value is not None:
            return args, kwargs, value.shape[0], value.dtype if value.is_floating_point() else None
    raise RuntimeError("prefix: cannot tell the batch size of this call")


class Prefixes(nn.Module):
    """The prefix sets of one model and the hooks that hand them to its attention layers.

    Children: ``self_attn`` (the one stack of an encoder or a decoder), or ``encoder``, ``decoder``
    and ``cross`` for encoder-decoders.
    """

    def __init__(self, length: int, family: str, sets: dict[str, PrefixEncoder], dtype: torch.dtype):
        super().__init__()
        self.length = length
        self.family = family
        self.sets = nn.ModuleDict(sets)
        self.model_dtype = dtype
        self._encoder_pending: list | None = None
        self._made_cache = False

    def _returns(self, kwargs, made: bool) -> None:
        """Note whether this call's output should drop the cache we made (the caller asked for none)."""
        self._made_cache = made and kwargs.get("use_cache") is False

    def after_cached_stack(self, module, args, output):
        """With ``use_cache=False`` hand back no cache: ``generate`` would feed ours back in next step."""
        if self._made_cache:
            self._made_cache = False
            if getattr(output, "past_key_values", None) is not None:
                output.past_key_values = None
        return output

    def _dtype(self, seen: torch.dtype | None) -> torch.dtype:
        return seen if seen is not None else self.model_dtype

    # -- encoders and decoders: past_key_values on the base model ---------------------------

    def before_base(self, module, args, kwargs):
        from transformers import DynamicCache

        args, kwargs, batch, dtype = _call(args, kwargs)
        n = self.length
        cache = kwargs.get("past_key_values")
        self._returns(kwargs, cache is None)
        if cache is None or cache.get_seq_length() == 0:
            if cache is None:
                cache = DynamicCache()
            _fill(cache, self.sets["self_attn"].key_values(batch, self._dtype(dtype)))
            kwargs["past_key_values"] = cache
        kwargs["attention_mask"] = _extend(kwargs.get("attention_mask"), n)
        if kwargs.get("position_ids") is not None:
            kwargs["position_ids"] = kwargs["position_ids"] + n
        return args, kwargs

    # -- encoder-decoders (T5) ------------------------------------------------------------

    def before_encoder(self, module, args, kwargs):
        args, kwargs, batch, dtype = _call(args, kwargs)
        self._encoder_pending = self.sets["encoder"].key_values(batch, self._dtype(dtype))
        kwargs["attention_mask"] = _extend(kwargs.get("attention_mask"), self.length)
        return args, kwargs

    def before_encoder_attention(self, module, args, kwargs):
        from transformers import DynamicCache

        if self._encoder_pending is None:
            raise RuntimeError("prefix: an encoder attention layer ran outside the encoder")
        key, value = self._encoder_pending[module.layer_idx]
        cache = DynamicCache()  # grows empty layers up to this one
        cache.update(key, value, module.layer_idx)
        kwargs = dict(kwargs)
        kwargs["past_key_values"] = cache
        return args, kwargs

    def after_encoder(self, module, args, output):
        self._encoder_pending = None

    def before_decoder(self, module, args, kwargs):
        from transformers import DynamicCache, EncoderDecoderCache

        args, kwargs, batch, dtype = _call(args, kwargs)
        n = self.length
        cache = kwargs.get("past_key_values")
        self._returns(kwargs, cache is None)
        self_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
        if self_cache is None or self_cache.get_seq_length() == 0:
            if not isinstance(cache, EncoderDecoderCache):
                cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
            dtype = self._dtype(dtype)
            _fill(cache.self_attention_cache, self.sets["decoder"].key_values(batch, dtype))
            _fill(cache.cross_attention_cache, self.sets["cross"].key_values(batch, dtype))
            for i in range(self.sets["cross"].layers):  # the encoder's keys/values are still to be appended
                cache.is_updated[i] = False
            kwargs["past_key_values"] = cache
        kwargs["attention_mask"] = _extend(kwargs.get("attention_mask"), n)
        kwargs["encoder_attention_mask"] = _extend(kwargs.get("encoder_attention_mask"), n)
        return args, kwargs


def _geometry(config) -> tuple[int, int]:
    """(key/value heads, head dim) of one attention layer, from a transformers config."""
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or getattr(config, "d_kv", None)
    if head_dim is None:
        head_dim = config.hidden_size // heads
    return kv_heads, head_dim


def place(model, anatomy, sets: dict[str, nn.Module], length: int) -> None:
    """Put the prefix sets (``self_attn``, or ``encoder``, ``decoder``, ``cross``: modules with
    ``key_values(batch, dtype)`` and ``layers``) on ``model`` and hook them into its forward."""
    base = model.base_model  # the model itself where it has none (T5ForConditionalGeneration)
    if hasattr(base, ATTRIBUTE):
        raise UserError("the model already has prefixes; apply prefix tuning once")
    if anatomy.family != "encoder_decoder" and "past_key_values" not in inspect.signature(base.forward).parameters:
        raise UserError(
            f"{type(base).__name__} takes no past_key_values, which prefix tuning hands its prefixes through "
            "(as HF peft does); supported here: bert, roberta, gpt2, llama, t5"
        )
    if anatomy.family == "encoder_decoder" and not hasattr(base, "encoder"):
        raise UserError(f"{type(model).__name__} has no encoder for prefix tuning")
    weight = model.get_input_embeddings().weight
    module = Prefixes(length, anatomy.family, sets, weight.dtype)  # float32 as peft keeps it
    module.to(weight.device)
    module.requires_grad_(True)
    setattr(base, ATTRIBUTE, module)
    if anatomy.family == "encoder_decoder":
        base.encoder.register_forward_pre_hook(module.before_encoder, with_kwargs=True)
        base.encoder.register_forward_hook(module.after_encoder)
        stack = anatomy.stacks[0]
        for block in base.get_submodule(stack.path):
            attention = block.get_submodule(stack.roles["attn.k"].rsplit(".", 1)[0])
            attention.register_forward_pre_hook(module.before_encoder_attention, with_kwargs=True)
        base.decoder.register_forward_pre_hook(module.before_decoder, with_kwargs=True)
        base.decoder.register_forward_hook(module.after_cached_stack)
    else:
        base.register_forward_pre_hook(module.before_base, with_kwargs=True)
        base.register_forward_hook(module.after_cached_stack)


@register
class PrefixTuning(Method):
    name = "prefix"
    Config = PrefixConfig
    in_peft = True

    def _stacks(self, model, anatomy) -> dict[str, int]:
        """Layer count per prefix set."""
        counts = {stack.path: len(model.base_model.get_submodule(stack.path)) for stack in anatomy.stacks}
        if anatomy.family == "encoder_decoder":
            encoder, decoder = anatomy.stacks
            return {"encoder": counts[encoder.path], "decoder": counts[decoder.path], "cross": counts[decoder.path]}
        return {"self_attn": counts[anatomy.stacks[0].path]}

    def apply(self, model, anatomy) -> None:
        heads, head_dim = _geometry(model.config)
        c = self.config
        sets = {
            key: PrefixEncoder(c.length, layers, heads, head_dim, c.hidden_size, c.reparameterize)
            for key, layers in self._stacks(model, anatomy).items()
        }
        place(model, anatomy, sets, c.length)

    def parameter_names(self, model) -> list[str]:
        marker = f".{ATTRIBUTE}.sets."
        return [name for name, _ in model.named_parameters() if marker in f".{name}"]

    def prefixes(self, model) -> Prefixes:
        module = getattr(model.base_model, ATTRIBUTE, None)
        if not isinstance(module, Prefixes):
            raise UserError("the model has no prefixes; apply prefix tuning first")
        return module

    def fold(self, model) -> None:
        """Compute P = MLP(P') once and drop P' and the MLP: only the prefixes remain (for inference).

        The outputs are unchanged; the method's parameters become n·2Ld per set. Not reversible.
        """
        for encoder in self.prefixes(model).sets.values():
            encoder.fold()

    def to_peft(self, model) -> tuple[object, dict]:
        """peft's PrefixTuningConfig(SEQ_CLS) and our prefix weights under ``prompt_encoder.default``.

        Only single-stack models (encoders, decoders): peft has no three-set encoder-decoder prefix.
        A folded model maps to ``prefix_projection=False`` (the prefixes themselves).
        """
        from peft import PrefixTuningConfig

        module = self.prefixes(model)
        if module.family == "encoder_decoder":
            raise UserError(
                "prefix tuning on an encoder-decoder has no HF peft equivalent (peft puts no prefix on the "
                "encoder or the cross-attention); export supports encoders and decoders"
            )
        encoder = module.sets["self_attn"]
        config = PrefixTuningConfig(
            task_type="SEQ_CLS", num_virtual_tokens=self.config.length, prefix_projection=encoder.reparameterize,
            encoder_hidden_size=self.config.hidden_size, num_layers=encoder.layers,
            token_dim=encoder.heads * encoder.head_dim, num_attention_heads=encoder.heads,
        )  # fmt: skip
        state = {
            f"prompt_encoder.default.{name}": param.detach().clone() for name, param in encoder.named_parameters()
        }
        return config, state
