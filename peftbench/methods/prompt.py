"""Prompt tuning (Lester, Al-Rfou and Constant, EMNLP 2021, arXiv 2104.08691): a learned soft prompt.

The frozen model reads n learned vectors P ∈ R^{n×d} before the embedded input X_e ∈ R^{L×d}
(§2): it is conditioned on [P; X_e] ∈ R^{(n+L)×d}, and only P trains. The paper studies
n ∈ {1, 5, 20, 100, 150} and three initialisations (§3.2):

* ``random_uniform``: "train from scratch, using random initialization", uniform in
  [−0.5, 0.5] (``init_range``; the paper's released code, ``initializers.uniform(scale=0.5)``).
  HF peft's ``PromptTuningInit.RANDOM`` is different: it keeps ``nn.Embedding``'s default N(0, 1);
* ``sampled_vocab``: each prompt vector is the embedding of a token drawn from the vocabulary.
  The paper draws from the 5,000 most common tokens of T5's SentencePiece vocabulary, which is
  ordered by frequency (``vocab_top: 5000`` there); ``vocab_top: 0`` draws from the whole table,
  as peft's ``SAMPLE_VOCAB`` does;
* ``class_label``: the embeddings of the output classes' words (the verbaliser; a multi-token
  word gets the mean of its token embeddings), the rest of the prompt sampled vocabulary as
  above. The words come from ``init_words`` (tasks carry no verbalisers yet); without them every
  vector is sampled vocabulary. Tokenising them needs the tokenizer, which ``attach`` hands over
  as ``method.tokenizer``.

The paper's default is n = 100 with class-label initialisation. The mechanism (where the prompt
goes, masks, positions) is ``peftbench.methods.soft_prompt``, the same as HF peft's
``PromptTuningConfig(task_type=SEQ_CLS)``; the prompt is held in float32, as peft holds it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

from peftbench.errors import UserError
from peftbench.methods import register, soft_prompt
from peftbench.methods.base import Method, MethodConfig, require

INITS = ("random_uniform", "sampled_vocab", "class_label")


@dataclass
class PromptConfig(MethodConfig):
    length: int = 100
    init: str = "class_label"
    init_range: float = 0.5
    vocab_top: int = 0
    init_words: list[str] = field(default_factory=list)

    def check(self) -> None:
        require(self.length >= 1, f"method.length must be a positive integer, got {self.length}; e.g. method.length=100")
        require(self.init in INITS, f"method.init '{self.init}' is unknown; choose one of {', '.join(INITS)}")
        require(self.init_range > 0, f"method.init_range must be positive, got {self.init_range}; e.g. 0.5")
        require(self.vocab_top >= 0, f"method.vocab_top must be ≥ 0 (0 = whole vocabulary), got {self.vocab_top}")
        require(
            len(self.init_words) <= self.length,
            f"method.init_words has {len(self.init_words)} words for a prompt of {self.length} tokens; "
            "raise method.length or drop words",
        )
        require(all(w.strip() for w in self.init_words), "method.init_words has an empty word; drop it")


@torch.no_grad()
def initial_prompt(config: PromptConfig, embeddings: torch.nn.Embedding, tokenizer=None) -> torch.Tensor:
    """The initial P (n × d, float32) for ``config.init``."""
    n, (vocab, dim) = config.length, embeddings.weight.shape
    if config.init == "random_uniform":
        return torch.empty(n, dim).uniform_(-config.init_range, config.init_range)
    rows = []
    if config.init == "class_label":
        if config.init_words and tokenizer is None:
            raise UserError(
                "method.init=class_label with init_words needs the tokenizer: attach the method with tokenizer=…"
            )
        if not config.init_words:
            warnings.warn("prompt init class_label without method.init_words: every vector is sampled vocabulary")
        for word in config.init_words:
            ids = tokenizer(word, add_special_tokens=False)["input_ids"]
            if not ids:
                raise UserError(f"method.init_words: '{word}' tokenises to nothing; drop it")
            index = torch.tensor(ids, device=embeddings.weight.device)
            rows.append(embeddings(index).float().mean(dim=0))
    top = min(config.vocab_top, vocab) if config.vocab_top else vocab
    sampled = torch.randint(0, top, (n - len(rows),), device=embeddings.weight.device)
    rows.extend(embeddings(sampled).float())
    return torch.stack(rows)


@register
class PromptTuning(Method):
    name = "prompt"
    generates = False  # the prompt hooks see one forward pass, not generate's cached steps
    Config = PromptConfig
    in_peft = True
    export_limitation = soft_prompt.EXPORT_LIMITATION

    def apply(self, model, anatomy) -> None:
        embeddings = soft_prompt.word_embeddings(model)
        module = soft_prompt.SoftPrompt(
            self.config.length, embeddings.embedding_dim, anatomy.family, model.config.pad_token_id
        )
        weight = embeddings.weight
        if weight.device.type == "meta":
            module.to("meta")
        else:
            module.embedding.weight.data.copy_(initial_prompt(self.config, embeddings, self.tokenizer))
            module.to(weight.device)
        soft_prompt.attach(model, anatomy, module)

    def parameter_names(self, model) -> list[str]:
        return soft_prompt.parameter_names(model)

    def to_peft(self, model) -> tuple[object, dict]:
        """peft's ``PromptTuningConfig(task_type=SEQ_CLS)`` with n virtual tokens, and P.

        The init is irrelevant once P is trained; ``RANDOM`` keeps peft from reading a tokenizer.
        Limits: see ``soft_prompt`` (padded decoder rows, encoder–decoders).
        """
        from peft import PromptTuningConfig, PromptTuningInit, TaskType

        module = soft_prompt.exported(model)
        config = PromptTuningConfig(
            task_type=TaskType.SEQ_CLS, num_virtual_tokens=module.length, token_dim=module.embedding.embedding_dim,
            num_transformer_submodules=1, prompt_tuning_init=PromptTuningInit.RANDOM,
        )  # fmt: skip
        return config, soft_prompt.peft_state(module)
