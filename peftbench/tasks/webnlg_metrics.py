"""The automatic evaluation of the WebNLG 2017 challenge (Gardent, Shimorina, Narayan and
Perez-Beltrachini, 2017, "The WebNLG Challenge: Generating Text from RDF Data"), and DART's,
which runs the same scorers (Nan et al., 2021, "DART: Open-Domain Structured Data Record to Text
Generation"); the scripts are Yale-LILY/dart ``evaluation/`` (prefix-tuning's ``run_generation.py``
calls its ``run_eval_on_webnlg.sh``).

WebNLG (``webnlg-automatic-evaluation/evaluation.py`` writes the files, then
``bleu_eval_3ref.sh``, ``meteor_eval.sh``, ``ter_eval.sh``):

- every text is normalised: ``' '.join(re.split('(\\W)', text))`` puts spaces around each
  non-word character, whitespace runs become one space, the text is lowercased and transliterated
  to ASCII by ``unidecode``. The order differs between the two sides, as the script has it:
  references are split first and transliterated last, outputs transliterated first (and once
  more after lowercasing), then split;
- only the first three references of an input count (``meteor_3ref_files_gen``,
  ``ter_ref_files_gen(..., three_ref_only=True)``, and BLEU reads ``reference0..2``);
- BLEU: ``multi-bleu.perl -lc ref0 ref1 ref2 < outputs`` (``tasks/multi_bleu.py``); a reference
  file holds an empty line for an input with fewer references, and there are as many files as
  the most references any input has, so fewer than three columns when no input has three;
- METEOR 1.5: ``-l en -norm -r 3`` (``tasks/meteor.py``);
- TER: tercom 0.7.25 with its defaults (``tasks/tercom.py``).

DART (``run_eval_on_dart.sh``, ``prepare_files.py``): its references
(``dart_reference/all-delex-reference{0,1,2}.lex``) are each input's first three annotations
normalised as WebNLG's references without the transliteration (checked line by line against all
5,097 inputs of the released test set); the script does not touch the outputs (its example system
output, ``evaluation/example/bart-large_dart.txt``, is normalised already, and prefix-tuning's
author lowercased hers first: XiangLi1999/PrefixTuning issue #12), so the outputs here get the
references' normalisation. BLEU without ``-lc`` (the texts are lowercase already) over
the three reference files, METEOR 1.5 with ``-r 8`` (padding only), TER with every input's first
reference and its second and third where they are not empty.

Scores are fractions: BLEU 0.5806 where multi-bleu prints 58.06; METEOR and TER as the scorers
print them. Lower TER is better.
"""

from __future__ import annotations

import re

from peftbench.tasks.meteor import meteor
from peftbench.tasks.multi_bleu import MultiBleu, multi_bleu
from peftbench.tasks.tercom import corpus_ter

REFERENCES = 3  # the first three references of each input are scored
_NON_WORD = re.compile(r"(\W)")


def _split_non_word(text: str) -> str:
    """``' '.join(re.split('(\\W)', text))`` with whitespace runs collapsed (``evaluation.py``)."""
    return " ".join(" ".join(_NON_WORD.split(text)).split())


def webnlg_reference(text: str) -> str:
    """A reference as ``evaluation.py`` writes it: split, collapsed, lowercased, transliterated."""
    from unidecode import unidecode

    return unidecode(_split_non_word(text).lower())


def webnlg_output(text: str) -> str:
    """An output as ``evaluation.py`` reads (``unidecode(line.strip())``) and writes it."""
    from unidecode import unidecode

    return _split_non_word(unidecode(unidecode(text.strip()).lower()))


def dart_text(text: str) -> str:
    """A reference (and an output) as DART's ``all-delex-reference*.lex`` spell it."""
    return _split_non_word(text).lower()


def webnlg_scores(references: list[list[str]], outputs: list[str]) -> dict[str, float]:
    """BLEU, METEOR and TER of one output per input against the input's references, as the
    WebNLG 2017 challenge's scripts compute them for a set of inputs (all, seen or unseen)."""
    refs, hyps = _webnlg_texts(references, outputs)
    return {"bleu": webnlg_bleu(references, outputs).bleu, "meteor": meteor(refs, hyps), "ter": corpus_ter(refs, hyps)}


def webnlg_bleu(references: list[list[str]], outputs: list[str]) -> MultiBleu:
    """``multi-bleu.perl -lc`` over the reference files ``evaluation.py`` writes."""
    refs, hyps = _webnlg_texts(references, outputs)
    files = min(REFERENCES, max(len(texts) for texts in refs))
    return multi_bleu(_columns(refs, files), hyps, lowercase=True)


def _webnlg_texts(references: list[list[str]], outputs: list[str]) -> tuple[list[list[str]], list[str]]:
    """Each input's first three references and the outputs, normalised."""
    refs = [[webnlg_reference(text) for text in texts[:REFERENCES]] for texts in references]
    return refs, [webnlg_output(text) for text in outputs]


def dart_scores(references: list[list[str]], outputs: list[str]) -> dict[str, float]:
    """BLEU, METEOR and TER as DART's ``run_eval_on_dart.sh`` computes them."""
    refs, hyps = _dart_texts(references, outputs)
    present = [[first] + [text for text in others if text] for first, *others in refs]
    return {"bleu": dart_bleu(references, outputs).bleu, "meteor": meteor(present, hyps), "ter": corpus_ter(present, hyps)}


def dart_bleu(references: list[list[str]], outputs: list[str]) -> MultiBleu:
    """``multi-bleu.perl`` over DART's three reference files."""
    return multi_bleu(*_dart_texts(references, outputs))


def _dart_texts(references: list[list[str]], outputs: list[str]) -> tuple[list[list[str]], list[str]]:
    """Three reference lines per input (empty where it has fewer texts) and the outputs, normalised."""
    refs = [[dart_text(text) for text in texts[:REFERENCES]] for texts in references]
    return _columns(refs, REFERENCES), [dart_text(text) for text in outputs]


def _columns(references: list[list[str]], columns: int) -> list[list[str]]:
    """Each input's references padded with empty lines to ``columns`` reference files."""
    return [texts + [""] * (columns - len(texts)) for texts in references]
