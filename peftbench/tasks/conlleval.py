"""Entity-level precision, recall and F1 of tagged sentences, as the CoNLL shared tasks' scorer
``conlleval.pl`` counts them (Tjong Kim Sang & De Meulder 2003; the script of the CoNLL-2000 chunking
task, used unchanged for NER), which is what ``seqeval``'s default mode (``mode=None``, "compatible
with conlleval.pl") computes and what transformers' token-classification examples and XTREME report.

A chunk (entity) is a maximal run of tags of one type, read with conlleval's ``startOfChunk`` and
``endOfChunk`` rules on the tags' prefixes B / I / O:

- a chunk starts at a ``B-``, at an ``I-`` after ``O`` (an ill-formed start, or IOB1's first word),
  and wherever the type changes;
- it ends before a ``B-`` or an ``O``, and wherever the type changes;

so IOB2 (WikiANN) and IOB1 (the original CoNLL-2003 files) read the same way. Every sentence ends
its open chunk (conlleval reads a blank line as ``O``). A predicted chunk is correct when a gold
chunk has the same type, start and end. Over all sentences: precision = correct / predicted chunks,
recall = correct / gold chunks, F1 = 2PR / (P + R), each 0 where its denominator is 0 (conlleval's
and seqeval's ``zero_division=0``). Values are fractions (conlleval prints percentages).

Tests check these numbers against seqeval's ``precision_score``, ``recall_score`` and ``f1_score``.
"""

from __future__ import annotations

from typing import Callable, Sequence


def chunks(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """The chunks of one sentence's tags as (type, first word, last word)."""
    found = set()
    start, previous, previous_type = 0, "O", ""
    for index, label in enumerate([*tags, "O"]):
        prefix, _, kind = label.partition("-")
        ends = previous != "O" and (prefix in ("B", "O") or kind != previous_type)
        if ends:
            found.add((previous_type, start, index - 1))
        if prefix != "O" and (prefix == "B" or previous == "O" or kind != previous_type):
            start = index
        previous, previous_type = prefix, kind
    return found


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, float]:
    """``precision``, ``recall`` and ``f1`` over all chunks of all sentences (tags as strings)."""
    correct = guessed = expected = 0
    for gold_tags, predicted_tags in zip(gold, predicted, strict=True):
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(f"a sentence of {len(gold_tags)} gold tags has {len(predicted_tags)} predicted tags")
        truth, guess = chunks(gold_tags), chunks(predicted_tags)
        correct += len(truth & guess)
        guessed += len(guess)
        expected += len(truth)
    precision = correct / guessed if guessed else 0.0
    recall = correct / expected if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall}


def iob2(tags: Sequence[str]) -> list[str]:
    """The tags of ``chunks``' chunks written in IOB2 (every chunk opens with ``B-``): IOB1 (the
    original CoNLL-2003 files) and IOB2 of the same chunks give the same list, so scores do not move."""
    out = ["O"] * len(tags)
    for kind, first, last in chunks(tags):
        out[first : last + 1] = [f"B-{kind}"] + [f"I-{kind}"] * (last - first)
    return out


def tag_scores(names: Sequence[str]) -> Callable[[Sequence[Sequence[int]], Sequence[dict]], dict[str, float]]:
    """A task's ``score(predictions, rows)``: ``entity_scores`` of tag indices into ``names``
    (the predicted tags per word against each row's ``label``)."""

    def score(predictions: Sequence[Sequence[int]], rows: Sequence[dict]) -> dict[str, float]:
        return entity_scores([[names[tag] for tag in row["label"]] for row in rows],
                             [[names[tag] for tag in predicted] for predicted in predictions])  # fmt: skip

    return score
