"""Anatomy: where the roles a PEFT method needs live inside each architecture.

Methods speak in roles, never in one architecture's module names (DESIGN §3). A role names a
projection of a transformer block:

    attn.q  attn.k  attn.v  attn.o      self-attention projections
    xattn.q xattn.k xattn.v xattn.o     cross-attention (encoder-decoder decoders)
    ffn.in  ffn.gate  ffn.out           feed-forward (gate only in gated FFNs, e.g. Llama)
    ln.attn  ln.ffn                     the layer norms around the two sublayers

Paths are relative to the *base model* (``model.base_model``), so one anatomy serves every head
class (sequence classification, causal LM, seq2seq LM). A role can live in a fused projection
(GPT-2's ``c_attn`` computes q, k and v in one matrix): it is then ``Part(path, index, count)``,
the index-th of ``count`` equal slices of the output features.

Adding an architecture is one entry in ``ANATOMIES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peftbench.errors import UserError


@dataclass(frozen=True)
class Part:
    """The ``index``-th of ``count`` equal output slices of a fused projection at ``path``."""

    path: str
    index: int
    count: int


@dataclass(frozen=True)
class Stack:
    """A list of identical blocks (``path`` is a ModuleList) and where each role sits in a block."""

    path: str
    roles: dict[str, str | Part]


@dataclass(frozen=True)
class Anatomy:
    family: str  # encoder | decoder | encoder_decoder
    stacks: tuple[Stack, ...]
    embedding: str
    hidden_size_key: str = "hidden_size"
    layers_key: str = "num_hidden_layers"
    has_bias: bool = True
    pre_norm: bool = False  # norms before each sublayer (GPT-2, Llama, T5); else after the residual add (BERT)
    notes: str = field(default="", compare=False)

    def roles(self) -> set[str]:
        return {role for stack in self.stacks for role in stack.roles}


_BERT_LIKE = {
    "attn.q": "attention.self.query",
    "attn.k": "attention.self.key",
    "attn.v": "attention.self.value",
    "attn.o": "attention.output.dense",
    "ln.attn": "attention.output.LayerNorm",
    "ffn.in": "intermediate.dense",
    "ffn.out": "output.dense",
    "ln.ffn": "output.LayerNorm",
}

_T5_ATTENTION = {"q": "q", "k": "k", "v": "v", "o": "o"}

ANATOMIES: dict[str, Anatomy] = {
    "bert": Anatomy("encoder", (Stack("encoder.layer", _BERT_LIKE),), "embeddings"),
    "roberta": Anatomy("encoder", (Stack("encoder.layer", _BERT_LIKE),), "embeddings"),
    "xlm-roberta": Anatomy("encoder", (Stack("encoder.layer", _BERT_LIKE),), "embeddings"),
    "mpnet": Anatomy(
        "encoder",
        (
            Stack(
                "encoder.layer",
                {
                    "attn.q": "attention.attn.q",
                    "attn.k": "attention.attn.k",
                    "attn.v": "attention.attn.v",
                    "attn.o": "attention.attn.o",
                    "ln.attn": "attention.LayerNorm",
                    "ffn.in": "intermediate.dense",
                    "ffn.out": "output.dense",
                    "ln.ffn": "output.LayerNorm",
                },
            ),
        ),
        "embeddings",
    ),
    "deberta-v2": Anatomy(
        "encoder",
        (
            Stack(
                "encoder.layer",
                {
                    **_BERT_LIKE,
                    "attn.q": "attention.self.query_proj",
                    "attn.k": "attention.self.key_proj",
                    "attn.v": "attention.self.value_proj",
                },
            ),
        ),
        "embeddings",
    ),
    "gpt2": Anatomy(
        "decoder",
        (
            Stack(
                "h",
                {
                    "attn.q": Part("attn.c_attn", 0, 3),
                    "attn.k": Part("attn.c_attn", 1, 3),
                    "attn.v": Part("attn.c_attn", 2, 3),
                    "attn.o": "attn.c_proj",
                    "ln.attn": "ln_1",
                    "ffn.in": "mlp.c_fc",
                    "ffn.out": "mlp.c_proj",
                    "ln.ffn": "ln_2",
                },
            ),
        ),
        "wte",
        hidden_size_key="n_embd",
        layers_key="n_layer",
        pre_norm=True,
        notes="pre-LN: ln.attn / ln.ffn come before their sublayer",
    ),
    "llama": Anatomy(
        "decoder",
        (
            Stack(
                "layers",
                {
                    "attn.q": "self_attn.q_proj",
                    "attn.k": "self_attn.k_proj",
                    "attn.v": "self_attn.v_proj",
                    "attn.o": "self_attn.o_proj",
                    "ln.attn": "input_layernorm",
                    "ffn.gate": "mlp.gate_proj",
                    "ffn.in": "mlp.up_proj",
                    "ffn.out": "mlp.down_proj",
                    "ln.ffn": "post_attention_layernorm",
                },
            ),
        ),
        "embed_tokens",
        has_bias=False,
        pre_norm=True,
        notes="pre-RMSNorm, no bias terms",
    ),
    "t5": Anatomy(
        "encoder_decoder",
        (
            Stack(
                "encoder.block",
                {
                    **{f"attn.{r}": f"layer.0.SelfAttention.{m}" for r, m in _T5_ATTENTION.items()},
                    "ln.attn": "layer.0.layer_norm",
                    "ffn.in": "layer.1.DenseReluDense.wi",
                    "ffn.out": "layer.1.DenseReluDense.wo",
                    "ln.ffn": "layer.1.layer_norm",
                },
            ),
            Stack(
                "decoder.block",
                {
                    **{f"attn.{r}": f"layer.0.SelfAttention.{m}" for r, m in _T5_ATTENTION.items()},
                    **{f"xattn.{r}": f"layer.1.EncDecAttention.{m}" for r, m in _T5_ATTENTION.items()},
                    "ln.attn": "layer.0.layer_norm",
                    "ffn.in": "layer.2.DenseReluDense.wi",
                    "ffn.out": "layer.2.DenseReluDense.wo",
                    "ln.ffn": "layer.2.layer_norm",
                },
            ),
        ),
        "shared",
        hidden_size_key="d_model",
        layers_key="num_layers",
        has_bias=False,
        pre_norm=True,
        notes="pre-RMSNorm, no bias terms; T5 v1.0 (wi/wo), not the gated v1.1",
    ),
}

ROLES = (
    "attn.q", "attn.k", "attn.v", "attn.o",
    "xattn.q", "xattn.k", "xattn.v", "xattn.o",
    "ffn.in", "ffn.gate", "ffn.out", "ln.attn", "ln.ffn",
)  # fmt: skip


def anatomy_of(model_type: str) -> Anatomy:
    """The anatomy of an architecture (``config.model_type``), or a UserError naming the known ones."""
    try:
        return ANATOMIES[model_type]
    except KeyError:
        known = ", ".join(sorted(ANATOMIES))
        raise UserError(
            f"no anatomy for model_type '{model_type}'; known: {known} "
            "(add an entry to peftbench/models/anatomy.py)"
        ) from None


def locate(model, anatomy: Anatomy, role: str) -> list[tuple[str, Part | None]]:
    """Every place ``role`` occurs in ``model``: (module path in the full model, part or None).

    The path is a name in ``model.named_modules()``; ``part`` is set when the role is a slice
    of a fused projection (then ``part.path`` is already folded into the module path). A role
    that a stack lacks (``xattn.*`` in an encoder stack) is skipped.
    """
    sites = []
    for block, stack in _blocks(model, anatomy):
        site = stack.roles.get(role)
        if isinstance(site, Part):
            sites.append((f"{block}.{site.path}", site))
        elif site is not None:
            sites.append((f"{block}.{site}", None))
    return sites


def blocks(model, anatomy: Anatomy) -> list[str]:
    """Paths of every transformer block, stack by stack, in order."""
    return [block for block, _ in _blocks(model, anatomy)]


def _blocks(model, anatomy: Anatomy) -> list[tuple[str, Stack]]:
    base = _base_prefix(model)
    return [
        (f"{base}{stack.path}.{i}", stack)
        for stack in anatomy.stacks
        for i in range(len(model.get_submodule(base + stack.path)))
    ]


def head_parameter_names(model) -> list[str]:
    """Parameters of the task head: those outside the base model (e.g. ``classifier.*``).

    For BERT this is the classifier alone (the pooler is part of the pretrained backbone), for
    RoBERTa the two-layer classification head, for GPT-2 and Llama ``score``: the same modules
    HF peft saves with ``modules_to_save`` for sequence classification.
    """
    base = _base_prefix(model)
    if not base:
        return []
    return [name for name, _ in model.named_parameters() if not name.startswith(base)]


def _base_prefix(model) -> str:
    prefix = getattr(model, "base_model_prefix", "")
    return f"{prefix}." if prefix and hasattr(model, prefix) else ""
