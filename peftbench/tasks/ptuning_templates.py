"""P-tuning's templates for the SuperGLUE tasks (Liu et al., "GPT Understands, Too", arXiv 2103.10385).

P-tuning does not put its prompt tokens in front of the input: a template T = {[P_0:i], x,
[P_i+1:m], y} places them among the input x and the target y, and a few *anchor* tokens of the
task (the "?" of "[PRE][prompt tokens][HYP]?[prompt tokens][MASK]" for RTE, §3) are kept as words.
The templates here are the official code's for FewGLUE (THUDM/P-tuning@f4225d4,
``PT-Fewshot/data_utils/task_pvps.py``), each with the pattern its script runs
(``PT-Fewshot/scripts/<task>_pt_few_shot.sh``: ``--pattern_ids 1``, WSC 2): a PET pattern whose
``block_flag = 1`` parts (each a "the" there) are where the prompt encoder's vectors replace the
word embeddings (``pet/wrapper.py``, ``generate_default_inputs``), and whose verbaliser maps each
label to its word. ReCoRD has no pattern there, so P-tuning prepends its prompt on it.

Under rank classification (decoders, encoder-decoders) a template is read up to the pattern's
[MASK], and the label word (or the choice) is scored right after it (the pattern's trailing "." is
not written). Under cloze (encoders, read as a masked LM as the official code reads ALBERT and the
paper BERT) the pattern is written whole: its [MASK] where the answer goes, then its words after it
(``tail``: the "." of RTE, BoolQ, MultiRC, WSC and COPA). A part is ``(kind, value)``:

- ``("text", field)``: a field of the row that may be shortened to fit ``task.max_length`` (PET's
  ``shortenable``), from its end;
- ``("field", field)``: a field of the row kept whole;
- ``("anchor", words)``: the pattern's own words;
- ``("sep", "")``: the pattern's "[SEP]" (ALBERT's separator): the tokenizer's separator token
  where it has one, nothing where it has none (GPT-2, T5);
- ``("prompt", "")``: a place for prompt tokens (the pattern's "the" with ``block_flag = 1``).

``fields(row)`` reads the template's fields from a row as ``superglue.py`` / ``glue.py`` build it.
How the ``method.length`` prompt tokens share the places, and what stands for them in the text, is
the method's (``peftbench/methods/ptuning.py``).

Where the rows differ from the official examples, the template follows the rows:
- WSC: the official pattern (2) asks the masked LM for the referent's words ("the pronoun '*p*'
  refers to [MASK]."), with the pronoun starred in the sentence by its index. SuperGLUE's WSC rows
  here are yes/no questions about a given referent without the index: the template keeps the
  pattern's two places and anchors and asks "… refers to <referent>?" with the task's No/Yes
  (under cloze at one [MASK], then the pattern's ".");
- COPA: the pattern's [MASK] stands for the choice, lower-cased first and without its final
  punctuation (``CopaPVP``; ``answer``): so the cloze format fills it; under rank classification
  the candidates scored after it are the row's choices as they are.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Callable

from peftbench.tasks.superglue_prompts import COPA_CONNECTIVES, COPA_QUESTIONS

SOURCE = "THUDM/P-tuning@f4225d4 PT-Fewshot/data_utils/task_pvps.py"


@dataclass(frozen=True)
class PTuningTemplate:
    """One task's pattern: its parts up to its [MASK], the fields they read, its verbaliser (None:
    the task's), its words after the [MASK] and how it writes a choice at the [MASK]."""

    pvp: str  # the official class and pattern id it follows
    parts: tuple[tuple[str, str], ...]
    fields: Callable[[dict], dict[str, str]]
    verbalizers: tuple[str, ...] | None = None  # one word per label, in the task's label order
    tail: str = ""  # the pattern after its [MASK] (cloze writes it)
    answer: Callable[[str], str] | None = None  # a choice as the pattern's [MASK] stands for it (COPA)

    @property
    def slots(self) -> int:
        """How many places for prompt tokens the pattern has."""
        return sum(kind == "prompt" for kind, _ in self.parts)


def _without_final_punctuation(text: str) -> str:
    return text.rstrip(string.punctuation)


def _lowercase_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _pair(row: dict) -> dict[str, str]:
    return {"a": row["text"], "b": row["text_pair"]}


def _rte(row: dict) -> dict[str, str]:
    return {"premise": row["text"], "hypothesis": _without_final_punctuation(row["text_pair"])}


def _wic(row: dict) -> dict[str, str]:
    word, _, sentence1 = row["text"].partition(": ")
    return {"sentence1": sentence1, "sentence2": row["text_pair"].partition(": ")[2], "word": f"*{word} *?"}


def _wsc(row: dict) -> dict[str, str]:
    pronoun, _, sentence = row["text"].partition(": ")
    return {"sentence": sentence, "pronoun": pronoun, "referent": row["text_pair"]}


def _multirc(row: dict) -> dict[str, str]:
    question, _, answer = row["text_pair"].partition("\n")
    return {"passage": row["text"], "question": question, "answer": answer}


def _copa_choice(choice: str) -> str:
    """CopaPVP's choice: first letter lower-cased, final punctuation off."""
    return _without_final_punctuation(_lowercase_first(choice))


def _copa(row: dict) -> dict[str, str]:
    for kind, question in COPA_QUESTIONS.items():
        if row["text"].endswith(" " + question):
            premise = row["text"][: -len(question) - 1]
            choice1, choice2 = (_copa_choice(c) for c in row["choices"])
            return {"premise": _without_final_punctuation(premise), "connective": COPA_CONNECTIVES[kind],
                    "choice1": choice1, "choice2": choice2}  # fmt: skip
    raise ValueError(f"not a COPA row: {row['text']!r}")


PROMPT = ("prompt", "")

TEMPLATES: dict[str, PTuningTemplate] = {
    # RtePVP pattern 1: [a, "Question:", b (final punctuation off), "?", P, "Answer:", MASK, "."],
    # not_entailment -> No, entailment -> Yes (labels here: entailment, not_entailment).
    "rte": PTuningTemplate(
        "RtePVP 1",
        (("text", "premise"), ("anchor", "Question:"), ("text", "hypothesis"), ("anchor", "?"), PROMPT,
         ("anchor", "Answer:")),
        _rte, verbalizers=("Yes", "No"), tail=".",
    ),  # fmt: skip
    # CbPVP pattern 1: [a, "[SEP]", b, "?", P, " answer: ", MASK]; contradiction -> No,
    # entailment -> Yes, neutral -> Maybe (labels here: entailment, contradiction, neutral).
    "cb": PTuningTemplate(
        "CbPVP 1",
        (("text", "a"), ("sep", ""), ("field", "b"), ("anchor", "?"), PROMPT, ("anchor", "answer:")),
        _pair, verbalizers=("Yes", "No", "Maybe"),
    ),  # fmt: skip
    # BoolQPVP pattern 1: [passage, ".", P, " Question: ", question, "? Answer: ", MASK, "."];
    # False -> No, True -> Yes (the task's own words). Rows: text = question, text_pair = passage.
    "boolq": PTuningTemplate(
        "BoolQPVP 1",
        (("text", "b"), ("anchor", "."), PROMPT, ("anchor", "Question:"), ("text", "a"), ("anchor", "? Answer:")),
        _pair, tail=".",
    ),  # fmt: skip
    # MultiRcPVP pattern 1: [passage, ". Question: ", question, "? Is it ", answer, "?", P, MASK, "."];
    # 0 -> No, 1 -> Yes (the task's own words).
    "multirc": PTuningTemplate(
        "MultiRcPVP 1",
        (("text", "passage"), ("anchor", ". Question:"), ("field", "question"), ("anchor", "? Is it"),
         ("field", "answer"), ("anchor", "?"), PROMPT),
        _multirc, tail=".",
    ),  # fmt: skip
    # WicPVP pattern 1: [a, "[SEP]", b, P, "*" + word + " *" + "?", MASK]; F -> No, T -> Yes.
    "wic": PTuningTemplate(
        "WicPVP 1",
        (("text", "sentence1"), ("sep", ""), ("text", "sentence2"), PROMPT, ("field", "word")),
        _wic,
    ),  # fmt: skip
    # WscPVP pattern 2: [P, a, P, "pronoun '*", pronoun, "*' refers to", MASK + "."]; asked about the
    # row's referent (see the module's docstring), answered with the task's No/Yes.
    "wsc": PTuningTemplate(
        "WscPVP 2",
        (PROMPT, ("text", "sentence"), PROMPT, ("anchor", "pronoun '*"), ("field", "pronoun"),
         ("anchor", "*' refers to"), ("field", "referent"), ("anchor", "?")),
        _wsc, tail=".",
    ),  # fmt: skip
    # CopaPVP pattern 1: [choice1, "or", choice2, "?", premise, "because" | "so", P, MASK, "."].
    "copa": PTuningTemplate(
        "CopaPVP 1",
        (("field", "choice1"), ("anchor", "or"), ("field", "choice2"), ("anchor", "?"), ("text", "premise"),
         ("field", "connective"), PROMPT),
        _copa, tail=".", answer=_copa_choice,
    ),  # fmt: skip
}
