"""Prompts for the SuperGLUE tasks under rank classification (decoders, encoder-decoders): the row
as one input text, after which each label word (the task's ``verbalizers``) or each choice is
scored as the continuation.

They follow PET's patterns (Schick & Schütze 2021, ``pet/pvp.py``) and GPT-3's (Brown et al. 2020,
Appendix G); each is cited beside its template. Each reads the row's own fields, as
``superglue.py`` builds the rows (which keep every part a template needs).
"""

from __future__ import annotations

import string
from typing import Callable

# jiant's COPA questions (jiant/tasks/lib/copa.py, _QUESTION_DICT): a COPA row's text ends with one.
COPA_QUESTIONS = {"cause": "What was the cause of this?", "effect": "What happened as a result?"}
# GPT-3's COPA connectives (Brown et al. 2020, Appendix G; PET's CopaPVP uses the same).
COPA_CONNECTIVES = {"cause": "because", "effect": "so"}


def _boolq_prompt(row: dict) -> str:
    # PET BoolQPVP pattern 0: "p. Question: q? Answer: [MASK]." with No/Yes.
    return f"{row['text_pair']}\nQuestion: {row['text']}?\nAnswer:"


def _cb_prompt(row: dict) -> str:
    # PET CbPVP pattern 4 (GPT-3's ANLI/CB format): "p question: h true, false or neither? answer:".
    return f"{row['text']}\nQuestion: {row['text_pair']} True, False or Neither?\nAnswer:"


def _wic_prompt(row: dict) -> str:
    # PET WicPVP pattern 1: "s1 s2 Does w have the same meaning in both sentences? [MASK]" with No/Yes.
    word, _, sentence1 = row["text"].partition(": ")
    sentence2 = row["text_pair"].partition(": ")[2]
    return f"{sentence1}\n{sentence2}\nQuestion: Does {word} have the same meaning in both sentences?\nAnswer:"


def _wsc_prompt(row: dict) -> str:
    # PET WscPVP pattern 2 ("Question: In the passage above, what does the pronoun '*p*' refer to?"),
    # asked as a yes/no question about the given referent, as SuperGLUE's WSC labels are.
    pronoun, _, sentence = row["text"].partition(": ")
    return (
        f"{sentence}\nQuestion: In the passage above, does the pronoun \"{pronoun}\" refer to "
        f"{row['text_pair']}?\nAnswer:"
    )


def _multirc_prompt(row: dict) -> str:
    # PET MultiRcPVP pattern 1: "p. Question: q? Is the correct answer "a"? [MASK]." with No/Yes.
    question, _, answer = row["text_pair"].partition("\n")
    return f"{row['text']}\nQuestion: {question}\nIs the correct answer \"{answer}\"?\nAnswer:"


def _copa_prompt(row: dict) -> str:
    # GPT-3 (Appendix G) and PET CopaPVP: the premise without its final punctuation, then
    # "because" (cause) or "so" (effect); each choice is scored as the continuation.
    for kind, question in COPA_QUESTIONS.items():
        if row["text"].endswith(" " + question):
            premise = row["text"][: -len(question) - 1]
            return f"{premise.rstrip(string.punctuation)} {COPA_CONNECTIVES[kind]}"
    raise ValueError(f"not a COPA row: {row['text']!r}")


def _record_prompt(row: dict) -> str:
    # PET RecordPVP and GPT-3: the passage, then the query with each entity filled in (the choices).
    return f"{row['text']}\n"


PROMPTS: dict[str, Callable[[dict], str]] = {
    "boolq": _boolq_prompt, "cb": _cb_prompt, "copa": _copa_prompt, "multirc": _multirc_prompt,
    "record": _record_prompt, "wic": _wic_prompt, "wsc": _wsc_prompt,
}
