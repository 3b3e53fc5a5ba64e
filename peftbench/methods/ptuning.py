"""P-tuning (Liu et al., "GPT Understands, Too", arXiv 2103.10385; AI Open 2023): a prompt encoder.

Continuous prompt embeddings h_0..h_{n−1} are produced by a small prompt encoder f over
trainable input vectors e_i, rather than learned directly (§3.2):

    h_i = MLP([→h_i ; ←h_i]) = MLP([LSTM(e_{0:i}) ; LSTM(e_{i:n})])

a bidirectional LSTM followed by a two-layer ReLU MLP, so that the prompt vectors depend on one
another. The paper's ablation (Table "MLP, LSTM or EMB") compares three encoders:

* ``lstm``: bi-LSTM (``num_layers`` layers, hidden ``hidden_size`` per direction, dropout
  between layers) + Linear(2h, 2h) · ReLU · Linear(2h, d), as HF peft's ``PromptEncoder``
  (``encoder_reparameterization_type=LSTM``). The paper's code uses h = d / 2 (so the MLP is
  d → d → d); that is the default here (``hidden_size: 0``), where peft defaults to h = d;
* ``mlp``: Linear(d, h) · ReLU · Linear(h, h) · ReLU · Linear(h, d), peft's ``MLP`` encoder
  (default h = d, as peft);
* ``emb``: the identity, h_i = e_i (then P-tuning is prompt tuning with an N(0, 1) table).

The e_i are an ``nn.Embedding`` with its default N(0, 1) initialisation, as peft has them. The
whole encoder is trained and saved (it is what the parameter count reports); peft does the same.

Where the prompt goes (``template``, default true): on a task with a P-tuning template (the
official code's FewGLUE patterns: BoolQ, CB, COPA, MultiRC, RTE, WiC, WSC; ``Task.ptuning_template``)
read as a prompt, the prompt tokens stand at the template's places among the row's words and its
anchor tokens, and the template's label words are scored (``peftbench.methods.templated_prompt``).
An encoder then reads the pattern as a masked LM, as the paper runs BERT and the official code
ALBERT: the run's format is ``cloze`` (the method's preferred format there; the label words scored
by the MLM head at the pattern's [MASK]); decoders and encoder–decoders rank the label words after
it (rank classification). Everywhere else — other tasks, ``template: false`` (an encoder then
reads a classification head, as before), a ``task.format`` that reads no prompt text — the encoded
prompt goes before the input embeddings (``peftbench.methods.soft_prompt``), as peft's
``PromptEncoderConfig(task_type=SEQ_CLS)`` places it. The run's record says which, per task
(``prompt_placement``), and its format.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from peftbench.methods import register, soft_prompt
from peftbench.methods.base import Method, MethodConfig, require
from peftbench.methods.templated_prompt import TemplatedSoftPrompt, marker, templated_task

ENCODERS = ("lstm", "mlp", "emb")
TEMPLATED_FORMATS = ("rank_classification", "cloze")  # the formats that read a template's text


@dataclass
class PTuningConfig(MethodConfig):
    length: int = 20
    encoder: str = "lstm"
    hidden_size: int = 0  # 0: d/2 for lstm (the paper's code), d for mlp (peft's default)
    num_layers: int = 2
    dropout: float = 0.0
    template: bool = True  # the task's P-tuning template where it has one (encoders: cloze); false: prepended

    def check(self) -> None:
        require(self.length >= 1, f"method.length must be a positive integer, got {self.length}; e.g. method.length=20")
        require(self.encoder in ENCODERS, f"method.encoder '{self.encoder}' is unknown; choose one of {', '.join(ENCODERS)}")
        require(self.hidden_size >= 0, f"method.hidden_size must be ≥ 0 (0 = the default width), got {self.hidden_size}")
        require(self.num_layers >= 1, f"method.num_layers must be a positive integer, got {self.num_layers}")
        require(0 <= self.dropout < 1, f"method.dropout must be in [0, 1), got {self.dropout}")

    def width(self, dim: int) -> int:
        if self.hidden_size:
            return self.hidden_size
        return max(1, dim // 2) if self.encoder == "lstm" else dim


class PromptEncoder(TemplatedSoftPrompt):
    """The e_i table (``embedding``) and the encoder (``lstm_head`` / ``mlp_head``, peft's names)."""

    def __init__(self, config: PTuningConfig, dim: int, family: str, pad_token_id):
        super().__init__(config.length, dim, family, pad_token_id)
        self.encoder = config.encoder
        h = config.width(dim)
        if config.encoder == "lstm":
            self.lstm_head = nn.LSTM(
                input_size=dim, hidden_size=h, num_layers=config.num_layers, dropout=config.dropout,
                bidirectional=True, batch_first=True,
            )  # fmt: skip
            self.mlp_head = nn.Sequential(nn.Linear(2 * h, 2 * h), nn.ReLU(), nn.Linear(2 * h, dim))
        elif config.encoder == "mlp":
            self.mlp_head = nn.Sequential(
                nn.Linear(dim, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, dim)
            )  # fmt: skip

    def prompts(self) -> torch.Tensor:
        e = self.embedding.weight
        if self.encoder == "lstm":
            return self.mlp_head(self.lstm_head(e.unsqueeze(0))[0])[0]
        if self.encoder == "mlp":
            return self.mlp_head(e)
        return e


@register
class PTuning(Method):
    name = "ptuning"
    generates = soft_prompt.GENERATES
    Config = PTuningConfig
    in_peft = True
    export_limitation = soft_prompt.EXPORT_LIMITATION

    def __init__(self, config: PTuningConfig):
        super().__init__(config)
        self.placements: dict[str, str] = {}  # task -> "template" | "prepend", as the plan's formats decide
        self.cloze: set[str] = set()  # the tasks whose template an encoder reads as a masked LM
        self._marker_id: int | None = None

    def preferred_format(self, task, family: str) -> str | None:
        """Cloze for a task with a template on an encoder (the paper's masked-LM reading of the
        pattern), unless ``template`` is off."""
        return "cloze" if self.config.template and task.ptuning_template is not None and family == "encoder" else None

    def check_format(self, task, format_name: str) -> None:
        """Decide where the prompt goes for ``task``; refuse a template with more places than tokens."""
        template = task.ptuning_template if self.config.template else None
        if template is None or format_name not in TEMPLATED_FORMATS:
            self.placements[task.name] = "prepend"
            return
        require(
            self.config.length >= template.slots,
            f"method.length={self.config.length} is fewer than the {template.slots} prompt places of {task.name}'s "
            f"P-tuning template ({template.pvp}); set method.length={template.slots} or method.template=false",
        )
        self.placements[task.name] = "template"
        if format_name == "cloze":
            self.cloze.add(task.name)

    def prompt_task(self, task, train_rows: list[dict], seed: int, tokenizer, max_length: int):
        """``task`` written through its template (prompt places marked), where the prompt goes there."""
        if self.placements.get(task.name) != "template":
            return task
        cloze = task.name in self.cloze
        self._marker_id = tokenizer.convert_tokens_to_ids(marker(tokenizer, cloze))
        return templated_task(task, self.config.length, tokenizer, max_length, cloze)

    def record_entry(self) -> dict:
        """Where the run put the prompt, per task: at the template's places, or before the input."""
        return {"prompt_placement": dict(self.placements)}

    def apply(self, model, anatomy) -> None:
        embeddings = soft_prompt.word_embeddings(model)
        module = PromptEncoder(self.config, embeddings.embedding_dim, anatomy.family, model.config.pad_token_id)
        module.marker_id = self._marker_id
        soft_prompt.attach(model, anatomy, module.to(embeddings.weight.device))

    def parameter_names(self, model) -> list[str]:
        return soft_prompt.parameter_names(model)

    def to_peft(self, model) -> tuple[object, dict]:
        """peft's ``PromptEncoderConfig(task_type=SEQ_CLS)`` with the same encoder, and its weights.

        ``lstm`` and ``mlp`` map to peft's LSTM / MLP reparameterisations (same layers, same
        names); ``emb`` (no encoder, which peft's P-tuning lacks) is exported as peft prompt
        tuning of the e_i table, the same prompt. peft's ``save_pretrained`` stores the encoder's
        output, the prompt itself (what ``PeftModel.from_pretrained`` uses for inference), not the
        encoder. Limits: see ``soft_prompt`` (padded decoder rows, encoder–decoders).
        """
        from peft import PromptEncoderConfig, PromptTuningConfig, PromptTuningInit, TaskType

        module = soft_prompt.exported(model)
        dim = module.embedding.embedding_dim
        common = dict(
            task_type=TaskType.SEQ_CLS, num_virtual_tokens=module.length, token_dim=dim, num_transformer_submodules=1
        )  # fmt: skip
        if self.config.encoder == "emb":
            config = PromptTuningConfig(prompt_tuning_init=PromptTuningInit.RANDOM, **common)
        else:
            lstm = self.config.encoder == "lstm"
            config = PromptEncoderConfig(
                encoder_reparameterization_type=self.config.encoder.upper(),
                encoder_hidden_size=self.config.width(dim),
                encoder_num_layers=self.config.num_layers if lstm else PromptEncoderConfig.encoder_num_layers,
                encoder_dropout=self.config.dropout if lstm else 0.0,
                **common,
            )  # fmt: skip
        return config, soft_prompt.peft_state(module)
