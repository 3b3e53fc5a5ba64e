"""Formats: how a task's rows become model inputs, a training loss and predictions.

One task runs in different formats on different backbone families, as the papers run it:

- ``classification``: a sequence-classification head over ``[text; text_pair]`` (encoders; any
  family on a task without verbalisers, and for regression).
- ``multiple_choice``: one score per (context, choice) pair from a one-output head, a softmax
  over the choices (encoders on COPA and ReCoRD; Devlin et al. 2019, §4.4's SWAG setup).
- ``rank_classification``: the task's prompt followed by each label word (or choice), scored by
  the length-normalised log-likelihood the language model gives its tokens; the highest wins
  (decoders and encoder-decoders; T-Few, Liu et al. 2022, §3.1; P-tuning's verbalisers).
- ``cloze``: the task's prompt with a [MASK] where the answer goes, the label words (or choices)
  scored by a masked language model's head at the mask (encoders; PET, Schick & Schütze 2021, and
  P-tuning's BERT runs, Liu et al. 2021).
- ``generation``: the reference as the target of the prompt, beam-search decoding, the texts
  scored by the task (E2E; decoders and encoder-decoders).
- ``token_classification``: a head over each token, one tag per word at its first sub-token (NER:
  WikiANN; encoders).
- ``masked_lm``: BERT's masked-LM objective on blocks of raw text, scored by the pretrained MLM
  head (``task=mlm``, what MAD-X trains language adapters on; encoders).

``format_name`` picks by the model's family and the task, unless the method prefers a format for
the task (P-tuning with its template on an encoder: cloze, as the paper runs BERT); ``task.format=…``
overrides both.
"""

from __future__ import annotations

from peftbench.errors import UserError
from peftbench.formats.base import Format
from peftbench.formats.classification import ClassificationFormat
from peftbench.formats.cloze import ClozeFormat
from peftbench.formats.generation import GenerationFormat
from peftbench.formats.masked_lm import MaskedLMFormat
from peftbench.formats.multiple_choice import MultipleChoiceFormat
from peftbench.formats.rank_classification import RankClassificationFormat
from peftbench.formats.token_classification import TokenClassificationFormat

FORMATS: dict[str, type[Format]] = {
    cls.name: cls
    for cls in (ClassificationFormat, MultipleChoiceFormat, RankClassificationFormat, ClozeFormat, GenerationFormat,
                TokenClassificationFormat, MaskedLMFormat)
}


def format_name(task, family: str, override: str | None = None, preferred: str | None = None) -> str:
    """The format a task runs in on a model family (checked before any model loads): ``override``
    (``task.format``), else the method's ``preferred`` one, else the family's."""
    if override is not None:
        if override not in FORMATS:
            raise UserError(f"unknown task.format '{override}'; choose one of: {', '.join(FORMATS)}")
        name = override
    elif preferred is not None:
        name = preferred
    elif task.kind in ("generation", "token_classification", "masked_lm"):  # one format reads them
        name = task.kind
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
