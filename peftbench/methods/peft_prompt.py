"""peft's prompt-learning modules in peftbench's placement (``method=peft`` with a prompt type).

peft makes the prompt: ``PromptEmbedding`` (prompt tuning, with peft's ``RANDOM``,
``SAMPLE_VOCAB`` or ``TEXT`` initialisation), ``PromptEncoder`` (P-tuning's LSTM or MLP) or
``PrefixEncoder`` (prefix tuning, with or without its MLP), built from the peft config completed
from the model as ``get_peft_model`` completes it (``_prepare_prompt_learning_config``: layers,
token width, heads; the key/value width under grouped-query attention). peftbench puts it in:
the soft prompt before the embedded input (``methods/soft_prompt.py``) or the prefixes as the
attention cache (``methods/prefix.py``), the mechanisms that give peft's outputs for the same
weights (``tests/test_export.py``), with one known departure inherited from them: a decoder's
sequence classifier pools the last real token under right padding, where peft's pools the last
position. Encoder-decoders are left to the native methods (peft's prompt learning reaches T5's
decoder only, and ``T5ForSequenceClassification`` refuses its input).

``save`` writes what peft's ``save_pretrained`` writes: the config in inference mode and the prompt
the module computes (``prompt_embeddings``: the table, the encoder's output, or the prefixes), which
``PeftModel.from_pretrained`` loads as the prompt itself.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from peftbench.methods import prefix, soft_prompt

TYPES = ("PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING")


class PeftSoftPrompt(soft_prompt.SoftPrompt):
    """A soft prompt whose P is the output of peft's module over the virtual-token indices."""

    def __init__(self, encoder: nn.Module, length: int, dim: int, family: str, pad_token_id: int | None):
        super().__init__(length, dim, family, pad_token_id)
        del self.embedding  # P comes from peft's module
        self.encoder = encoder
        self.register_buffer("indices", torch.arange(length), persistent=False)

    def prompts(self) -> torch.Tensor:
        return self.encoder(self.indices.unsqueeze(0))[0]


class PeftPrefixSet(prefix.PrefixEncoder):
    """One prefix set (every layer's keys and values) computed by peft's ``PrefixEncoder``."""

    def __init__(self, encoder: nn.Module, length: int, layers: int, heads: int, head_dim: int):
        nn.Module.__init__(self)
        self.length, self.layers, self.heads, self.head_dim = length, layers, heads, head_dim
        self.reparameterize = False  # peft's module is the prefix set; nothing to fold
        self.encoder = encoder
        self.register_buffer("indices", torch.arange(length), persistent=False)

    def prefixes(self) -> torch.Tensor:
        return self.encoder(self.indices.unsqueeze(0))[0]


def place(model, anatomy, config, tokenizer=None):
    """Build peft's prompt module for ``config`` on ``model`` and put it in; returns the config as
    completed from the model (what the saved ``adapter_config.json`` holds)."""
    from peft.tuners.p_tuning import PromptEncoder
    from peft.tuners.prefix_tuning import PrefixEncoder
    from peft.tuners.prompt_tuning import PromptEmbedding
    from peft.utils.other import _prepare_prompt_learning_config

    config = _prepare_prompt_learning_config(copy.deepcopy(config), model.config)
    config.num_transformer_submodules = 1  # encoders and decoders: one stack reads the prompt
    n, device = config.num_virtual_tokens, model.get_input_embeddings().weight.device
    if config.peft_type == "PREFIX_TUNING":
        heads = config.num_attention_heads
        module = PeftPrefixSet(PrefixEncoder(config), n, config.num_layers, heads, config.token_dim // heads)
        prefix.place(model, anatomy, {"self_attn": module}, n)
        return config
    embeddings = soft_prompt.word_embeddings(model)
    if config.peft_type == "PROMPT_TUNING":
        if config.prompt_tuning_init == "TEXT" and not config.tokenizer_name_or_path and tokenizer is not None:
            config.tokenizer_name_or_path = tokenizer.name_or_path  # the run's tokenizer, where it loaded from
        encoder = PromptEmbedding(config, embeddings)
    else:
        encoder = PromptEncoder(config)
    module = PeftSoftPrompt(encoder, n, embeddings.embedding_dim, anatomy.family, model.config.pad_token_id)
    module.to(device)
    soft_prompt.attach(model, anatomy, module)
    return config


def save(model, config, folder: Path) -> None:
    """peft's files for the placed prompt: ``adapter_config.json`` (inference mode) and
    ``adapter_model.safetensors`` holding ``prompt_embeddings``."""
    from safetensors.torch import save_file

    (module,) = [m for m in model.modules() if isinstance(m, (PeftSoftPrompt, PeftPrefixSet))]
    training = module.training
    module.eval()  # P-tuning's LSTM dropout off: peft saves the prompt as inference computes it
    with torch.no_grad():
        prompt = module.prefixes() if isinstance(module, PeftPrefixSet) else module.prompts()
    module.train(training)
    save_file({"prompt_embeddings": prompt.detach().to("cpu").contiguous()}, str(folder / "adapter_model.safetensors"),
              metadata={"format": "pt"})  # fmt: skip
    saved = copy.deepcopy(config)
    saved.inference_mode = True
    saved.save_pretrained(str(folder))
