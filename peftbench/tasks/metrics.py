"""GLUE metrics, as the GLUE benchmark defines them (Wang et al., 2018, "GLUE: A Multi-Task
Benchmark and Analysis Platform for Natural Language Understanding", §3 and Table 1).

- accuracy: the fraction of predictions equal to the gold label (SST-2, MNLI, QNLI, RTE, WNLI,
  and beside F1 for MRPC and QQP);
- F1 of the positive class, label 1 ("equivalent" / "duplicate"): F1 = 2·P·R / (P + R) with
  P = TP / (TP + FP) and R = TP / (TP + FN) (MRPC, QQP);
- Matthews correlation coefficient (Matthews, 1975), for CoLA's unbalanced binary labels:
  MCC = (TP·TN − FP·FN) / sqrt((TP + FP)(TP + FN)(TN + FP)(TN + FN));
- Pearson's r and Spearman's ρ between predicted and gold similarity scores (STS-B).
- macro-F1, the mean of the per-class F1 (RAFT; see ``macro_f1``).

Every function takes ``(predictions, labels)`` and returns ``{metric name: float}`` with values as
fractions (0.866, not 86.6). scikit-learn and scipy compute them, as GLUE's own scorer does; they
are imported inside the functions so that importing a task stays cheap.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

Scorer = Callable[[Sequence, Sequence], dict[str, float]]


def _paired(predictions: Sequence, labels: Sequence) -> tuple[np.ndarray, np.ndarray]:
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape or predictions.ndim != 1:
        raise ValueError(
            f"predictions {predictions.shape} and labels {labels.shape} must be 1-d and the same length"
        )
    if not len(labels):
        raise ValueError("no predictions to score")
    return predictions, labels


def accuracy(predictions: Sequence, labels: Sequence) -> dict[str, float]:
    """The fraction of predictions equal to the label."""
    predictions, labels = _paired(predictions, labels)
    return {"accuracy": float(np.mean(predictions == labels))}


def accuracy_and_f1(predictions: Sequence, labels: Sequence) -> dict[str, float]:
    """Accuracy and the F1 of the positive class (label 1), as GLUE reports MRPC and QQP."""
    from sklearn.metrics import f1_score

    predictions, labels = _paired(predictions, labels)
    return {
        **accuracy(predictions, labels),
        "f1": float(f1_score(labels, predictions, pos_label=1, average="binary")),
    }


def matthews_correlation(predictions: Sequence, labels: Sequence) -> dict[str, float]:
    """Matthews correlation coefficient, GLUE's CoLA metric (0 when a class is never predicted)."""
    from sklearn.metrics import matthews_corrcoef

    predictions, labels = _paired(predictions, labels)
    return {"mcc": float(matthews_corrcoef(labels, predictions))}


def macro_f1(predictions: Sequence, labels: Sequence) -> dict[str, float]:
    """Macro-averaged F1, RAFT's metric (Alex et al., 2021; the ``ought/raft`` dataset card: each
    task's macro-F1, averaged over the tasks, is the leaderboard score; the leaderboard's scorer,
    ``huggingface/hf_benchmarks`` ``benchmarks/raft/evaluation.py``, calls the ``f1`` metric with
    ``average="macro"``, i.e. scikit-learn's ``f1_score``): the unweighted mean, over the classes
    present in the labels or the predictions, of F1_c = 2·TP_c / (2·TP_c + FP_c + FN_c)."""
    from sklearn.metrics import f1_score

    predictions, labels = _paired(predictions, labels)
    return {"macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0))}


def pearson_and_spearman(predictions: Sequence, labels: Sequence) -> dict[str, float]:
    """Pearson and Spearman correlations, GLUE's STS-B metrics (NaN for constant predictions)."""
    from scipy.stats import pearsonr, spearmanr

    predictions, labels = _paired(predictions, labels)
    predictions, labels = predictions.astype(float), labels.astype(float)
    return {
        "pearson": float(pearsonr(predictions, labels).statistic),
        "spearman": float(spearmanr(predictions, labels).statistic),
    }


_GLUE_SCORERS: dict[str, tuple[Scorer, tuple[str, ...]]] = {
    "cola": (matthews_correlation, ("mcc",)),
    "sst2": (accuracy, ("accuracy",)),
    "mrpc": (accuracy_and_f1, ("accuracy", "f1")),
    "stsb": (pearson_and_spearman, ("pearson", "spearman")),
    "qqp": (accuracy_and_f1, ("accuracy", "f1")),
    "mnli": (accuracy, ("accuracy",)),
    "qnli": (accuracy, ("accuracy",)),
    "rte": (accuracy, ("accuracy",)),
    "wnli": (accuracy, ("accuracy",)),
}


def glue_scorer(task_name: str) -> tuple[Scorer, tuple[str, ...]]:
    """The scoring function of a GLUE task and the names of the metrics it returns."""
    return _GLUE_SCORERS[task_name]
