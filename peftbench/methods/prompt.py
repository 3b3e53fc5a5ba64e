"""Prompt tuning (Lester, Al-Rfou and Constant, EMNLP 2021, arXiv 2104.08691): a learned soft prompt.

The frozen model reads n learned vectors P ∈ R^{n×d} before the embedded input X_e ∈ R^{L×d}
(§2): it is conditioned on [P; X_e] ∈ R^{(n+L)×d}, and only P trains. The paper studies
n ∈ {1, 5, 20, 100, 150} and three initialisations (§3.2):

* ``random_uniform``: "train from scratch, using random initialization", uniform in
  [−0.5, 0.5] (``init_range``; the paper's released code, ``initializers.uniform(scale=0.5)``).
  HF peft's ``PromptTuningInit.RANDOM`` is different: it keeps ``nn.Embedding``'s default N(0, 1);
* ``sampled_vocab``: each prompt vector is the embedding of a token drawn from the vocabulary:
  "the 5,000 most 'common' tokens" of T5's SentencePiece vocabulary, "ordered by likelihood in the
  pre-training corpus" — the official code draws from the first 5,000 ids, without replacement
  unless the prompt is longer (google-research/prompt-tuning@72285ee ``prompts.py``,
  ``from_sample_of_embeddings``; ``configs/prompts/from_sampled_vocab.gin``,
  ``population_size = 5000``). ``vocab_top: 5000`` (the default) does the same, and refuses a
  tokenizer whose ids are not ordered by frequency (``peftbench.models.vocabulary``: SentencePiece
  unigram vocabularies are; WordPiece and byte-level BPE ones are not), before the model loads;
  ``vocab_top: 0`` draws from the whole table, as HF peft's ``SAMPLE_VOCAB`` does (peft draws with
  replacement);
* ``class_label``: "the embeddings for the string representations of each class", one prompt
  vector per class, a label of several tokens getting the mean of their embeddings; the remaining
  vectors are sampled vocabulary as above (§3.2; the official ``from_embedded_list`` puts the
  labels at the first positions over a ``from_sample_of_embeddings`` prompt, and skips, with a
  warning, labels beyond the prompt's length). The labels are the run's tasks' verbalisers
  (``Task.verbalizers``, the words the model scores or would write for each class; each once,
  task by task), or ``init_words`` when given. A task without label words (COPA's choices, a
  generation task) leaves every vector sampled, with a warning. Tokenising them needs the
  tokenizer, which ``attach`` hands over as ``method.tokenizer``. HF peft's nearest init,
  ``PromptTuningInit.TEXT``, differs: it embeds one text's tokens, one vector per token, repeated
  to fill the prompt.

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
from peftbench.models.vocabulary import frequency_ordered

INITS = ("random_uniform", "sampled_vocab", "class_label")


@dataclass
class PromptConfig(MethodConfig):
    length: int = 100
    init: str = "class_label"
    init_range: float = 0.5
    vocab_top: int = 5000
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


def label_words(config: PromptConfig, class_labels: list[str]) -> list[str]:
    """The words whose embeddings start the prompt: ``init_words``, else the run's class labels (as
    many as the prompt holds); none unless ``init`` is ``class_label``."""
    if config.init != "class_label":
        return []
    words = list(config.init_words) or list(class_labels)
    if not words:
        warnings.warn("prompt init class_label: the run's tasks have no label words; every vector is sampled "
                      "vocabulary")  # fmt: skip
    elif len(words) > config.length:
        warnings.warn(f"prompt init class_label: {len(words)} label words for {config.length} prompt tokens; "
                      f"the first {config.length} are used")  # fmt: skip
    return words[: config.length]


@torch.no_grad()
def initial_prompt(config: PromptConfig, embeddings: torch.nn.Embedding, tokenizer=None,
                   class_labels=()) -> torch.Tensor:  # fmt: skip
    """The initial P (n × d, float32) for ``config.init``; ``class_labels``: the run's label words."""
    n, (vocab, dim) = config.length, embeddings.weight.shape
    if config.init == "random_uniform":
        return torch.empty(n, dim).uniform_(-config.init_range, config.init_range)
    words = label_words(config, list(class_labels))
    if words and tokenizer is None:
        raise UserError("method.init=class_label embeds label words, which needs the tokenizer: attach the method "
                        "with tokenizer=…")  # fmt: skip
    rows = []
    for word in words:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not ids:
            raise UserError(f"prompt init class_label: the label word '{word}' tokenises to nothing; "
                            "set method.init_words")  # fmt: skip
        rows.append(embeddings(torch.tensor(ids, device=embeddings.weight.device)).float().mean(dim=0))
    rows.extend(embeddings(sampled_ids(n - len(rows), config.vocab_top, vocab, embeddings.weight.device)).float())
    return torch.stack(rows)


def sampled_ids(count: int, top: int, vocab: int, device) -> torch.Tensor:
    """``count`` ids from the first ``top`` of the vocabulary (0: all of it), without replacement
    unless there are fewer ids than draws (the official ``from_sample_of_embeddings``)."""
    population = min(top, vocab) if top else vocab
    if count > population:
        return torch.randint(0, population, (count,), device=device)
    return torch.randperm(population, device=device)[:count]


@register
class PromptTuning(Method):
    name = "prompt"
    generates = soft_prompt.GENERATES
    Config = PromptConfig
    in_peft = True
    export_limitation = soft_prompt.EXPORT_LIMITATION

    def check_tokenizer(self, load) -> None:
        """Sampling the first ``vocab_top`` ids needs a vocabulary ordered by frequency (§3.2)."""
        config = self.config
        samples = config.init == "sampled_vocab" or (
            config.init == "class_label" and len(label_words(config, self.class_labels)) < config.length
        )
        if samples and config.vocab_top and not frequency_ordered(tokenizer := load()):
            raise UserError(
                f"method.vocab_top={config.vocab_top} samples the most frequent ids, but {type(tokenizer).__name__}'s "
                "vocabulary is not ordered by frequency (only SentencePiece unigram ones, as T5's, are); "
                "set method.vocab_top=0 to sample the whole vocabulary"
            )

    def apply(self, model, anatomy) -> None:
        embeddings = soft_prompt.word_embeddings(model)
        module = soft_prompt.SoftPrompt(
            self.config.length, embeddings.embedding_dim, anatomy.family, model.config.pad_token_id
        )
        weight = embeddings.weight
        if weight.device.type == "meta":
            module.to("meta")
        else:
            if self.tokenizer is not None:
                self.check_tokenizer(lambda: self.tokenizer)
            prompt = initial_prompt(self.config, embeddings, self.tokenizer, self.class_labels)
            module.embedding.weight.data.copy_(prompt)
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
