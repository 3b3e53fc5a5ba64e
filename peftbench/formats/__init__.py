"""Formats: how a task's rows become model inputs, a training loss and predictions.

One task runs in different formats on different backbone families, as the papers run it:

- ``classification``: a sequence-classification head over ``[text; text_pair]`` (encoders; any
  family on a task without verbalisers, and for regression).
- ``multiple_choice``: one score per (context, choice) pair from a one-output head, a softmax
  over the choices (encoders on COPA and ReCoRD; Devlin et al. 2019, §4.4's SWAG setup).
- ``rank_classification``: the task's prompt followed by each label word (or choice), scored by
  the length-normalised log-likelihood the language model gives its tokens; the highest wins
  (decoders and encoder-decoders; T-Few, Liu et al. 2022, §3.1; P-tuning's verbalisers).
- ``generation``: the reference as the target of the prompt, beam-search decoding, the texts
  scored by the task (E2E; decoders and encoder-decoders).

``format_for`` picks by the model's family and the task; ``task.format=…`` overrides it.
"""

from __future__ import annotations

from peftbench.errors import UserError
from peftbench.formats.base import Format
from peftbench.formats.classification import ClassificationFormat
from peftbench.formats.generation import GenerationFormat
from peftbench.formats.multiple_choice import MultipleChoiceFormat
from peftbench.formats.rank_classification import RankClassificationFormat

FORMATS: dict[str, type[Format]] = {
    cls.name: cls
    for cls in (ClassificationFormat, MultipleChoiceFormat, RankClassificationFormat, GenerationFormat)
}


def format_name(task, family: str, override: str | None = None) -> str:
    """The format a task runs in on a model family (checked before any model loads)."""
    if override is not None:
        if override not in FORMATS:
            raise UserError(f"unknown task.format '{override}'; choose one of: {', '.join(FORMATS)}")
        name = override
    elif task.kind == "generation":
        name = "generation"
    elif family != "encoder" and (task.verbalizers or task.kind == "multiple_choice"):
        name = "rank_classification"
    else:
        name = "multiple_choice" if task.kind == "multiple_choice" else "classification"
    FORMATS[name].check(task, family)
    return name


def make_format(name: str, task, tokenizer, options) -> Format:
    """The format ``name`` for ``task`` with ``tokenizer``; ``options`` is the task config."""
    return FORMATS[name](task, tokenizer, options)


__all__ = ["FORMATS", "Format", "format_name", "make_format"]
