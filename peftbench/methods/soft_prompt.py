"""The soft-prompt mechanism shared by prompt tuning and P-tuning: n virtual tokens before the input.

A ``SoftPrompt`` module yields n vectors P ∈ R^{n×d} (d = the embedding width); the model then
reads ``[P; E(x)]`` instead of ``E(x)``, where E is its frozen word embedding, with the attention
mask extended by n ones (and ``token_type_ids`` by n zeros), as HF peft does for sequence
classification (``PeftModelForSequenceClassification.forward``). Subclasses say how P is made:
a free table (prompt tuning) or a prompt encoder over a table (P-tuning).

Where the module lives: under the base model (``model.base_model.soft_prompt``), so it is not
counted as the task head (``anatomy.head_parameter_names`` = parameters outside the base model)
and its parameter names are stable for saving (``bert.soft_prompt.embedding.weight``); T5's
language model is its own base model, so there it lives under the encoder
(``encoder.soft_prompt.embedding.weight``).

How the prompt gets in, without touching the model's code (two forward pre-hooks):

* on the top-level model: embeds ``input_ids`` with E, prepends P and keeps the result for the
  stack below; extends ``attention_mask`` / ``token_type_ids``. For encoders and decoders it also
  prepends n *placeholder* ids to ``input_ids`` (any id but the pad id), so that what the
  classification head reads from ``input_ids`` still lines up with the (n + L) hidden states: a
  decoder's head pools the rightmost non-pad token, which is then right under right padding
  (peft hands the model ``inputs_embeds`` instead, and HF then pools the last position, a pad
  token for every row shorter than the batch; see ``test_soft_prompts``);
* on the stack that embeds tokens (the base model): swaps the placeholder ``input_ids`` for the
  kept ``inputs_embeds``.

An encoder–decoder (T5) takes the prompt at its encoder, where it belongs (Lester et al. §2): the
encoder's hook embeds its input and prepends P, and extends the encoder's mask when it is called
alone (``generate`` encodes once, then decodes from the encoder's output); the top-level hook only
extends the encoder mask the decoder attends through, on a call with the input and on each of
``generate``'s decoding steps (their encoder output is n longer than the mask they carry). So a
soft prompt decodes on T5; ``input_ids`` stays as it is (``T5ForSequenceClassification`` derives
the decoder input and the <eos> position from it). On a decoder, ``generate``'s cached steps would
see the prompt hooks as fresh inputs: soft prompts do not generate there (``Method.generates``).

Positions follow from the model: BERT gives the prompt positions 0..n−1 and shifts the text by
n; RoBERTa numbers ``inputs_embeds`` from padding_idx + 1 (as with peft); GPT-2 and Llama count
0..n+L−1. Caller ``position_ids`` are dropped, as peft does. For BERT and RoBERTa the head reads
position 0, which is now the first virtual token (as with peft).

Export to peft (``peft_state``): the module's parameters keep peft's names under
``prompt_encoder.default``; the peft config has ``task_type=SEQ_CLS``. peft computes the same
logits for encoders, and for decoders on unpadded input (one row, or rows of equal length);
under right padding its decoder head reads a pad position (above), so padded decoder rows
differ. Encoder–decoders are refused: peft hands ``T5ForSequenceClassification`` only
``inputs_embeds``, which it does not accept.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from peftbench.errors import UserError

ATTRIBUTE = "soft_prompt"


class SoftPrompt(nn.Module):
    """n virtual token vectors of width ``dim``; subclasses may reparameterise ``prompts``."""

    def __init__(self, length: int, dim: int, family: str, pad_token_id: int | None):
        super().__init__()
        self.length = length
        self.family = family
        # a token id the decoder head will not take for padding
        self.placeholder_id = 1 if pad_token_id == 0 else 0
        self.embedding = nn.Embedding(length, dim)  # float32 as peft keeps it; cast to the model's dtype on use
        self._pending: torch.Tensor | None = None

    def prompts(self) -> torch.Tensor:
        """P as (n, d)."""
        return self.embedding.weight

    # -- hooks ------------------------------------------------------------------------------

    def before_model(self, model, args, kwargs):
        """Top-level pre-hook: prompt prepended to the embedded input; masks and ids extended."""
        kwargs = dict(kwargs)
        if args:  # input_ids given positionally
            kwargs["input_ids"], args = args[0], args[1:]
        input_ids = kwargs.get("input_ids")
        inputs_embeds = kwargs.get("inputs_embeds")
        if self.family == "encoder_decoder":
            return args, self._encoder_mask(kwargs, with_input=input_ids is not None or inputs_embeds is not None)
        if input_ids is None and inputs_embeds is None:
            return None
        reference = input_ids if input_ids is not None else inputs_embeds
        batch, n = reference.shape[0], self.length
        device = reference.device
        if inputs_embeds is None:
            inputs_embeds = model.get_input_embeddings()(input_ids)
        prompt = self.prompts().to(inputs_embeds.dtype).unsqueeze(0).expand(batch, -1, -1)
        embedded = torch.cat([prompt, inputs_embeds], dim=1)

        mask = kwargs.get("attention_mask")
        if mask is not None:
            kwargs["attention_mask"] = torch.cat([mask.new_ones(batch, n), mask], dim=1)
        token_types = kwargs.get("token_type_ids")
        if token_types is not None:
            kwargs["token_type_ids"] = torch.cat([token_types.new_zeros(batch, n), token_types], dim=1)
        if kwargs.get("position_ids") is not None:
            warnings.warn("position_ids are ignored with a soft prompt (as in HF peft)", stacklevel=2)
            kwargs["position_ids"] = None

        if input_ids is None:  # the caller embedded the input: hand the model the embeddings (peft's path)
            kwargs["inputs_embeds"] = embedded
            return args, kwargs
        self._pending = embedded
        placeholders = torch.full((batch, n), self.placeholder_id, dtype=input_ids.dtype, device=device)
        kwargs["input_ids"] = torch.cat([placeholders, input_ids], dim=1)
        return args, kwargs

    def _encoder_mask(self, kwargs: dict, with_input: bool) -> dict:
        """An encoder–decoder's encoder mask, which the decoder attends through, n longer: on a call
        with the input, and on a decoding step whose encoder output is n longer than its mask."""
        mask, encoded = kwargs.get("attention_mask"), kwargs.get("encoder_outputs")
        if mask is not None and (with_input or encoded is not None and encoded[0].shape[1] == mask.shape[1] + self.length):
            kwargs["attention_mask"] = torch.cat([mask.new_ones(mask.shape[0], self.length), mask], dim=1)
        return kwargs

    def before_encoder(self, encoder, args, kwargs):
        """Pre-hook of an encoder–decoder's encoder: P before its embedded input; its mask n longer
        when it is called alone (the top-level hook has not extended it)."""
        kwargs = dict(kwargs)
        if args:
            kwargs["input_ids"], args = args[0], args[1:]
        input_ids, embedded = kwargs.get("input_ids"), kwargs.get("inputs_embeds")
        if embedded is None:
            if input_ids is None:
                return None
            embedded = encoder.get_input_embeddings()(input_ids)
        batch, length = embedded.shape[:2]
        prompt = self.prompts().to(embedded.dtype).unsqueeze(0).expand(batch, -1, -1)
        kwargs["input_ids"], kwargs["inputs_embeds"] = None, torch.cat([prompt, embedded], dim=1)
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.shape[1] == length:
            kwargs["attention_mask"] = torch.cat([mask.new_ones(batch, self.length), mask], dim=1)
        return args, kwargs

    def before_stack(self, stack, args, kwargs):
        """Pre-hook of the stack that embeds tokens: use the prompt-prepended embeddings."""
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        kwargs = dict(kwargs)
        if args:
            kwargs["input_ids"], args = args[0], args[1:]
        input_ids = kwargs.pop("input_ids", None)
        if input_ids is not None and input_ids.shape[0] != pending.shape[0]:
            raise RuntimeError("soft prompt: the stack got another batch than the model")
        kwargs["input_ids"] = None
        kwargs["inputs_embeds"] = pending
        return args, kwargs


def embedding_stack(model, family: str) -> nn.Module:
    """The module that turns ``input_ids`` into hidden states: the base model, T5's encoder."""
    base = model.base_model
    if family == "encoder_decoder":
        encoder = getattr(base, "encoder", None)
        if encoder is None:
            raise UserError(f"{type(model).__name__} has no encoder to prepend a soft prompt to")
        return encoder
    return base


def attach(model, anatomy, soft_prompt: SoftPrompt) -> None:
    """Put ``soft_prompt`` under the base model (T5's language model, which is its own base model:
    under its encoder), mark it trainable and hook it into the forward."""
    base = model.base_model
    if base is model and anatomy.family == "encoder_decoder":
        base = embedding_stack(model, anatomy.family)
    elif base is model:
        raise UserError(f"{type(model).__name__} has no base model to hold a soft prompt")
    if hasattr(base, ATTRIBUTE):
        raise UserError("the model already has a soft prompt; apply one prompt method only")
    setattr(base, ATTRIBUTE, soft_prompt)
    soft_prompt.requires_grad_(True)
    model.register_forward_pre_hook(soft_prompt.before_model, with_kwargs=True)
    stack_hook = soft_prompt.before_encoder if anatomy.family == "encoder_decoder" else soft_prompt.before_stack
    embedding_stack(model, anatomy.family).register_forward_pre_hook(stack_hook, with_kwargs=True)


def word_embeddings(model) -> nn.Embedding:
    embeddings = model.get_input_embeddings()
    if not isinstance(embeddings, nn.Embedding):
        raise UserError(f"{type(model).__name__} has no word-embedding table to take a soft prompt's width from")
    return embeddings


def exported(model) -> SoftPrompt:
    """The model's soft prompt, checked for export to peft's prompt learning (SEQ_CLS)."""
    modules = [m for m in model.modules() if isinstance(m, SoftPrompt)]
    if len(modules) != 1:
        raise RuntimeError(f"expected one soft prompt in the model, found {len(modules)}")
    (module,) = modules
    if module.family == "encoder_decoder":
        raise UserError(
            "peft's prompt learning for sequence classification passes the encoder–decoder only inputs_embeds, "
            "which T5ForSequenceClassification refuses; export prompt methods from encoder or decoder runs"
        )
    return module


def peft_state(module: SoftPrompt) -> dict:
    """The module's weights under peft's names (``PromptEmbedding`` / ``PromptEncoder`` use the same)."""
    return {f"prompt_encoder.default.{name}": value.detach() for name, value in module.named_parameters()}


def parameter_names(model) -> list[str]:
    marker = f".{ATTRIBUTE}."
    return [name for name, _ in model.named_parameters() if marker in f".{name}"]


# the families a soft prompt decodes text on: T5's encoder takes it once; a decoder's generate()
# would run the prompt hooks on each cached step as if it were fresh input
GENERATES = frozenset({"encoder_decoder"})

EXPORT_LIMITATION = (
    "peft prompt learning (SEQ_CLS) on a decoder pools the last position: logits match the run's "
    "for unpadded input only (one row, or rows of equal length); encoders match under any padding"
)
