"""GLUE metrics against values worked out by hand (not by the libraries the code calls)."""

import math

import numpy as np
import pytest

from peftbench.tasks import get_task, task_names
from peftbench.tasks.metrics import (
    accuracy,
    accuracy_and_f1,
    glue_scorer,
    matthews_correlation,
    pearson_and_spearman,
)

# A 2x2 confusion worked out on paper: TP=3, FN=2, FP=1, TN=2 (8 examples).
CONFUSION_LABELS = [1, 1, 1, 1, 1, 0, 0, 0]
CONFUSION_PREDICTIONS = [1, 1, 1, 0, 0, 1, 0, 0]


def test_accuracy_is_the_fraction_of_matches():
    assert accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == {"accuracy": 0.5}
    assert accuracy(CONFUSION_PREDICTIONS, CONFUSION_LABELS)["accuracy"] == 5 / 8


def test_f1_is_the_f1_of_the_positive_class():
    # P = 3/4, R = 3/5, F1 = 2PR/(P+R) = 2/3; the F1 of class 0 would be 4/7.
    scores = accuracy_and_f1(CONFUSION_PREDICTIONS, CONFUSION_LABELS)
    assert scores["accuracy"] == pytest.approx(5 / 8)
    assert scores["f1"] == pytest.approx(2 / 3)


def test_matthews_correlation_on_a_confusion_worked_out_by_hand():
    # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (6 - 2) / sqrt(4*5*3*4) = 4/sqrt(240)
    scores = matthews_correlation(CONFUSION_PREDICTIONS, CONFUSION_LABELS)
    assert scores == {"mcc": pytest.approx(4 / math.sqrt(240))}


def test_matthews_correlation_is_zero_when_one_class_is_always_predicted():
    assert matthews_correlation([1, 1, 1, 1], [1, 0, 1, 0]) == {"mcc": 0.0}


def test_pearson_and_spearman_against_the_textbook_formulas():
    predictions = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    labels = np.array([2.0, 4.0, 5.0, 4.0, 5.0])

    def textbook_pearson(x, y):
        dx, dy = x - x.mean(), y - y.mean()
        return (dx * dy).sum() / math.sqrt((dx**2).sum() * (dy**2).sum())

    # Spearman = Pearson of the ranks, ties sharing their mean rank: labels rank as 1, 2.5, 4.5, 2.5, 4.5.
    label_ranks = np.array([1.0, 2.5, 4.5, 2.5, 4.5])
    scores = pearson_and_spearman(predictions, labels)
    assert scores["pearson"] == pytest.approx(textbook_pearson(predictions, labels))
    assert scores["pearson"] == pytest.approx(6 / math.sqrt(60))
    assert scores["spearman"] == pytest.approx(textbook_pearson(predictions, label_ranks))
    assert scores["spearman"] == pytest.approx(7 / math.sqrt(90))


def test_scores_are_plain_floats_from_lists_or_arrays():
    for scores in (
        accuracy_and_f1(np.array(CONFUSION_PREDICTIONS), CONFUSION_LABELS),
        pearson_and_spearman([1, 2, 3], [1, 3, 2]),
    ):
        assert all(type(value) is float for value in scores.values())


@pytest.mark.parametrize("metric", [accuracy, accuracy_and_f1, matthews_correlation, pearson_and_spearman])
def test_unequal_lengths_and_empty_inputs_are_refused(metric):
    with pytest.raises(ValueError, match="same length"):
        metric([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="no predictions"):
        metric([], [])


EXPECTED_METRICS = {
    "cola": ("mcc",),
    "sst2": ("accuracy",),
    "mrpc": ("accuracy", "f1"),
    "stsb": ("pearson", "spearman"),
    "qqp": ("accuracy", "f1"),
    "mnli": ("accuracy",),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
    "wnli": ("accuracy",),
}
# What the LoRA paper's Table 2 reports per task.
EXPECTED_MAIN_METRIC = {
    "cola": "mcc", "sst2": "accuracy", "mrpc": "accuracy", "stsb": "pearson", "qqp": "accuracy",
    "mnli": "accuracy", "qnli": "accuracy", "rte": "accuracy", "wnli": "accuracy",
}


@pytest.mark.parametrize("name", sorted(EXPECTED_METRICS))
def test_each_task_returns_the_metrics_it_names(name):
    task = get_task(name)
    predictions, labels = ([0.5, 2.0, 4.5, 3.0], [1.0, 2.5, 4.0, 3.5]) if task.is_regression else ([0, 1, 1, 0], [0, 1, 0, 0])
    scores = task.score(predictions, [{"label": label} for label in labels])
    assert tuple(scores) == task.metric_names == EXPECTED_METRICS[name] == glue_scorer(name)[1]
    assert task.main_metric == EXPECTED_MAIN_METRIC[name]


def test_every_glue_task_has_a_scorer():
    glue_tasks = [name for name in task_names() if get_task(name).benchmark == "glue"]
    assert sorted(glue_tasks) == sorted(EXPECTED_METRICS)
