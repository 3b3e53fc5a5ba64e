"""SuperGLUE metrics, as the SuperGLUE benchmark defines them (Wang et al., 2019, "SuperGLUE: A
Stickier Benchmark for General-Purpose Language Understanding Systems", §3 and Table 1), computed
the way the benchmark's own scorers compute them (the jiant baseline, and the official ReCoRD
evaluation script of Zhang et al., 2018, which adapts SQuAD's).

- accuracy, acc = (1/N) Σᵢ 1[ŷᵢ = yᵢ] (BoolQ, COPA, RTE, WiC, WSC; and beside F1 for CB);
- CB: accuracy and the macro-average F1 over its three classes (entailment, contradiction,
  neutral): F1_c = 2·TP_c / (2·TP_c + FP_c + FN_c) and F1 = (1/3) Σ_c F1_c. The average is over
  all three classes, always: a class with no gold and no predicted example counts as F1_c = 0,
  as in jiant's three per-class F1 trackers (scikit-learn's plain ``average="macro"`` would drop
  it and average over two);
- MultiRC (Khashabi et al., 2018): every answer option of every question is a binary example,
  label 1 = "this option is a correct answer".
  F1a = 2·P·R / (P + R), P = TP / (TP + FP), R = TP / (TP + FN), with TP, FP and FN pooled over
  all answer options of all questions (one binary F1, not an average over questions);
  EM = (1/|Q|) Σ_q Π_{i ∈ q} 1[ŷᵢ = yᵢ], the fraction of questions all of whose answer options
  are predicted correctly. Questions are (paragraph, question) pairs;
- ReCoRD (Zhang et al., 2018): one predicted entity string per query, scored against that query's
  gold answers A_q after SQuAD's normalisation norm(s): lowercase, delete ASCII punctuation
  (``string.punctuation``), delete the articles a/an/the (whole words), collapse whitespace.
  With p = norm(prediction).split(), g = norm(gold).split() and ∩ the multiset intersection:
  F1(p, g) = 2·P·R / (P + R), P = |p ∩ g| / |p|, R = |p ∩ g| / |g|, and 0 when |p ∩ g| = 0;
  EM(p, g) = 1[norm(prediction) = norm(gold)];
  F1 = (1/|Q|) Σ_q max_{a ∈ A_q} F1(p_q, a) and EM = (1/|Q|) Σ_q max_{a ∈ A_q} EM(p_q, a), the
  two maxima taken separately.

Every function returns ``{metric name: float}`` with values as fractions (0.866, not 86.6), like
``metrics.py``. Most take ``(predictions, labels)``; ``multirc`` also needs the question of each
answer option and ``record`` takes the gold answer lists as its labels (see ``superglue_scorer``).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Callable, Hashable, Sequence

import numpy as np

from peftbench.tasks.metrics import _paired, accuracy

SuperGlueScorer = Callable[..., dict[str, float]]

CB_CLASSES = (0, 1, 2)  # super_glue/cb's ClassLabel: entailment=0, contradiction=1, neutral=2


def cb_accuracy_and_f1(
    predictions: Sequence, labels: Sequence, classes: Sequence = CB_CLASSES
) -> dict[str, float]:
    """CB's accuracy and its F1 averaged over all of ``classes`` (a class never seen counts 0)."""
    from sklearn.metrics import f1_score

    predictions, labels = _paired(predictions, labels)
    unknown = set(np.unique(np.concatenate([predictions, labels])).tolist()) - set(classes)
    if unknown:
        raise ValueError(f"labels {sorted(unknown, key=str)} are not among the classes {tuple(classes)}")
    return {
        **accuracy(predictions, labels),
        "f1": float(
            f1_score(labels, predictions, labels=list(classes), average="macro", zero_division=0)
        ),
    }


def _question_keys(question_ids: Sequence[Hashable] | np.ndarray, n: int) -> list[Hashable]:
    if isinstance(question_ids, np.ndarray) and question_ids.ndim == 2:
        keys = [tuple(row) for row in question_ids.tolist()]
    else:
        keys = [tuple(q) if isinstance(q, (list, np.ndarray)) else q for q in question_ids]
    if len(keys) != n:
        raise ValueError(f"question_ids ({len(keys)}) and predictions ({n}) must be the same length")
    return keys


def _binary(values: np.ndarray, what: str) -> np.ndarray:
    if not set(np.unique(values).tolist()) <= {0, 1}:
        raise ValueError(f"MultiRC {what} must be 0 or 1 (1 = a correct answer option)")
    return values.astype(int)


def multirc(
    predictions: Sequence, labels: Sequence, question_ids: Sequence[Hashable]
) -> dict[str, float]:
    """MultiRC's F1a (binary F1 of label 1 over all answer options pooled) and EM (the fraction of
    questions whose options are all right).

    One entry per answer option: ``predictions[i]`` and ``labels[i]`` are 0/1 and
    ``question_ids[i]`` names the question the option belongs to — a hashable that is unique
    across paragraphs, e.g. the ``(paragraph, question)`` pair of super_glue's ``idx`` (question
    numbers alone may repeat across paragraphs). The options of a question need not be adjacent.
    """
    from sklearn.metrics import f1_score

    predictions, labels = _paired(predictions, labels)
    predictions, labels = _binary(predictions, "predictions"), _binary(labels, "labels")
    keys = _question_keys(question_ids, len(labels))
    all_right: dict[Hashable, bool] = {}
    for key, right in zip(keys, (predictions == labels).tolist()):
        all_right[key] = all_right.get(key, True) and right
    return {
        "f1a": float(f1_score(labels, predictions, pos_label=1, average="binary", zero_division=0)),
        "em": float(np.mean(list(all_right.values()))),
    }


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation, as the ReCoRD script applies it: lowercase, delete ASCII
    punctuation (without inserting spaces: "Jean-Claude" → "jeanclaude"), delete the whole words
    a/an/the, collapse runs of whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _token_f1(prediction: str, gold: str) -> float:
    predicted, wanted = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(predicted) & Counter(wanted)).values())
    if common == 0:  # also when both normalise to "" (the script's rule, though EM is then 1)
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


def record(predictions: Sequence[str | None], answers: Sequence[Sequence[str]]) -> dict[str, float]:
    """ReCoRD's token F1 and exact match, each the max over a query's gold answers, averaged over
    queries.

    ``predictions[q]`` is the entity string predicted for query q (``None``: unanswered, which
    scores 0 on both, as in the official script); ``answers[q]`` lists q's gold answer strings
    (at least one).
    """
    if len(predictions) != len(answers):
        raise ValueError(
            f"predictions ({len(predictions)}) and answers ({len(answers)}) must be the same length"
        )
    if not len(answers):
        raise ValueError("no predictions to score")
    f1_total = em_total = 0.0
    for prediction, golds in zip(predictions, answers):
        if isinstance(golds, str) or not len(golds):
            raise ValueError("each query needs a list of at least one gold answer string")
        if prediction is None:
            continue
        f1_total += max(_token_f1(prediction, gold) for gold in golds)
        normalized = normalize_answer(prediction)
        em_total += max(float(normalized == normalize_answer(gold)) for gold in golds)
    return {"f1": f1_total / len(answers), "em": em_total / len(answers)}


_SUPERGLUE_SCORERS: dict[str, tuple[SuperGlueScorer, tuple[str, ...]]] = {
    "boolq": (accuracy, ("accuracy",)),
    "cb": (cb_accuracy_and_f1, ("accuracy", "f1")),
    "copa": (accuracy, ("accuracy",)),
    "multirc": (multirc, ("f1a", "em")),
    "record": (record, ("f1", "em")),
    "rte": (accuracy, ("accuracy",)),
    "wic": (accuracy, ("accuracy",)),
    "wsc": (accuracy, ("accuracy",)),
}


def superglue_scorer(task_name: str) -> tuple[SuperGlueScorer, tuple[str, ...]]:
    """The scoring function of a SuperGLUE task and the names of the metrics it returns, in order.

    Every scorer is called as ``scorer(predictions, labels, **extra)`` and returns
    ``{name: float}`` for exactly the names given:

    - boolq, copa, rte, wic, wsc: ``scorer(predictions, labels)`` (class ids; COPA: the chosen
      alternative, 0 or 1) → accuracy;
    - cb: ``scorer(predictions, labels)`` with class ids 0, 1, 2 → accuracy, macro F1;
    - multirc: ``scorer(predictions, labels, question_ids=ids)``, one entry per answer option,
      ``ids[i]`` the (paragraph, question) of option i — the keyword is required → f1a, em;
    - record: ``scorer(predictions, labels)`` with ``predictions`` one entity string per query and
      ``labels`` the list of gold answer strings of each query → f1, em.

    An unknown task name is a ``KeyError``.
    """
    if task_name not in _SUPERGLUE_SCORERS:
        raise KeyError(f"no SuperGLUE scorer for {task_name!r}; known: {', '.join(_SUPERGLUE_SCORERS)}")
    return _SUPERGLUE_SCORERS[task_name]
