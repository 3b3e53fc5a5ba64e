"""SuperGLUE metrics against values worked out by hand, and against second formulations."""

import re
import string
from collections import Counter

import numpy as np
import pytest

from peftbench.tasks.metrics import accuracy
from peftbench.tasks.superglue_metrics import (
    cb_accuracy_and_f1,
    multirc,
    normalize_answer,
    record,
    superglue_scorer,
)

# --- CB ----------------------------------------------------------------------------------------

# Class 2 (neutral) is never predicted.
CB_LABELS = [0, 0, 0, 1, 1, 2, 2, 2]
CB_PREDICTIONS = [0, 0, 1, 1, 0, 0, 1, 0]


def test_cb_macro_f1_with_a_class_never_predicted():
    # class 0: TP=2 (#0,#1), FP=3 (#4,#5,#7), FN=1 (#2) -> F1 = 2*2/(4+3+1) = 1/2
    # class 1: TP=1 (#3),    FP=2 (#2,#6),    FN=1 (#4) -> F1 = 2*1/(2+2+1) = 2/5
    # class 2: TP=0                                        -> F1 = 0
    # macro F1 = (1/2 + 2/5 + 0)/3 = 0.3; accuracy = 3/8 (#0, #1, #3)
    scores = cb_accuracy_and_f1(CB_PREDICTIONS, CB_LABELS)
    assert scores == {"accuracy": pytest.approx(3 / 8), "f1": pytest.approx(0.3)}
    assert all(type(value) is float for value in scores.values())


def test_cb_averages_over_all_three_classes_even_one_never_seen():
    # Class 2 is neither gold nor predicted. class 0: TP=1, FP=0, FN=1 -> 2/3;
    # class 1: TP=2, FP=1, FN=0 -> 4/5; class 2 -> 0. (2/3 + 4/5)/3 = 22/45, as jiant's three
    # per-class trackers give; sklearn's bare average="macro" would give (2/3 + 4/5)/2 = 11/15.
    scores = cb_accuracy_and_f1([0, 1, 1, 1], [0, 0, 1, 1])
    assert scores["f1"] == pytest.approx(22 / 45)
    assert scores["accuracy"] == pytest.approx(3 / 4)


def test_cb_macro_f1_against_per_class_binary_f1s():
    # jiant's formulation: one binary F1 per class (labels == c vs predictions == c), averaged.
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        labels, predictions = rng.integers(0, 3, size=30), rng.integers(0, 3, size=30)
        per_class = [f1_score(labels == c, predictions == c, zero_division=0) for c in range(3)]
        # and by counting: F1_c = 2TP / (2TP + FP + FN)
        counted = []
        for c in range(3):
            tp = np.sum((predictions == c) & (labels == c))
            fp = np.sum((predictions == c) & (labels != c))
            fn = np.sum((predictions != c) & (labels == c))
            counted.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
        f1 = cb_accuracy_and_f1(predictions, labels)["f1"]
        assert f1 == pytest.approx(np.mean(per_class)) == pytest.approx(np.mean(counted))


def test_cb_refuses_labels_outside_its_classes():
    with pytest.raises(ValueError, match="not among the classes"):
        cb_accuracy_and_f1([0, 3], [0, 1])
    assert cb_accuracy_and_f1(["e", "n"], ["e", "c"], classes=("e", "c", "n"))["accuracy"] == 0.5


# --- MultiRC -----------------------------------------------------------------------------------

# Two paragraphs, two questions each; question numbers repeat across paragraphs.
MULTIRC = [  # (question id, label, prediction)
    ((0, 0), 1, 1), ((0, 0), 0, 0), ((0, 0), 1, 1),                  # all right
    ((0, 1), 0, 0), ((0, 1), 1, 0),                                  # one FN
    ((1, 0), 1, 1), ((1, 0), 0, 1), ((1, 0), 0, 0), ((1, 0), 1, 1),  # one FP
    ((1, 1), 0, 0), ((1, 1), 0, 0),                                  # all right, no positives
]
MULTIRC_IDS = [row[0] for row in MULTIRC]
MULTIRC_LABELS = [row[1] for row in MULTIRC]
MULTIRC_PREDICTIONS = [row[2] for row in MULTIRC]


def test_multirc_f1a_and_em_by_hand():
    # EM: (0,0) and (1,1) all right, (0,1) and (1,0) one wrong each -> 2/4.
    # F1a pooled: TP = 2 + 0 + 2 = 4, FP = 1, FN = 1 -> 2*4/(8 + 1 + 1) = 0.8.
    # (Accuracy over options would be 9/11: a third, different number.)
    scores = multirc(MULTIRC_PREDICTIONS, MULTIRC_LABELS, question_ids=MULTIRC_IDS)
    assert scores == {"f1a": pytest.approx(0.8), "em": pytest.approx(0.5)}
    assert all(type(value) is float for value in scores.values())


def test_multirc_em_needs_every_option_right():
    ids = ["q1", "q1", "q1", "q2", "q2"]
    assert multirc([1, 0, 1, 0, 1], [1, 0, 1, 0, 1], ids)["em"] == 1.0
    # one wrong option of q1 fails q1 only: 1/2
    assert multirc([1, 0, 0, 0, 1], [1, 0, 1, 0, 1], ids)["em"] == 0.5


def test_multirc_groups_by_paragraph_and_question():
    # Grouping by the question number alone merges (0,0) with (1,0) and (0,1) with (1,1):
    # both merged questions then hold a wrong option -> EM 0, not 1/2.
    numbers_only = [question for _, question in MULTIRC_IDS]
    assert multirc(MULTIRC_PREDICTIONS, MULTIRC_LABELS, numbers_only)["em"] == 0.0
    # A (n, 2) array of (paragraph, question) rows works like the tuples.
    as_array = np.array(MULTIRC_IDS)
    assert multirc(MULTIRC_PREDICTIONS, MULTIRC_LABELS, as_array)["em"] == pytest.approx(0.5)


def test_multirc_does_not_need_options_in_question_order():
    order = np.random.default_rng(1).permutation(len(MULTIRC))
    scores = multirc(
        [MULTIRC_PREDICTIONS[i] for i in order],
        [MULTIRC_LABELS[i] for i in order],
        [MULTIRC_IDS[i] for i in order],
    )
    assert scores == {"f1a": pytest.approx(0.8), "em": pytest.approx(0.5)}


def test_multirc_against_sklearn_and_a_second_em_formulation():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(2)
    for _ in range(20):
        n = 60
        question = rng.integers(0, 15, size=n)
        paragraph = rng.integers(0, 3, size=n)
        labels = rng.integers(0, 2, size=n)
        # mostly right, so that some questions are all right
        predictions = np.where(rng.random(n) < 0.85, labels, 1 - labels)
        ids = list(zip(paragraph.tolist(), question.tolist()))
        _, group = np.unique(np.stack([paragraph, question], axis=1), axis=0, return_inverse=True)
        wrong_per_question = np.bincount(group.ravel(), weights=(predictions != labels))
        scores = multirc(predictions, labels, ids)
        assert scores["f1a"] == pytest.approx(f1_score(labels, predictions))
        assert scores["em"] == pytest.approx(np.mean(wrong_per_question == 0))


def test_multirc_refusals():
    with pytest.raises(ValueError, match="same length"):
        multirc([1, 0], [1, 0], question_ids=["q"])
    with pytest.raises(ValueError, match="same length"):
        multirc([1, 0, 1], [1, 0], question_ids=["q", "q", "q"])
    with pytest.raises(ValueError, match="0 or 1"):
        multirc([2, 0], [1, 0], question_ids=["q", "q"])
    with pytest.raises(ValueError, match="no predictions"):
        multirc([], [], question_ids=[])
    with pytest.raises(TypeError):
        multirc([1, 0], [1, 0])  # the grouping is required


def test_multirc_accepts_booleans():
    assert multirc([True, False], [True, True], ["q", "q"]) == {"f1a": pytest.approx(2 / 3), "em": 0.0}


# --- ReCoRD ------------------------------------------------------------------------------------


def test_normalisation_lowercases_and_drops_punctuation_articles_and_spaces():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("An apple, a day") == "apple day"
    assert normalize_answer("the U.S.") == "us"
    # punctuation is deleted, not replaced by a space; articles only as whole words
    assert normalize_answer("Jean-Claude") == "jeanclaude"
    assert normalize_answer("Theresa Anand") == "theresa anand"
    # only ASCII punctuation: a curly apostrophe stays
    assert normalize_answer("Trump's") == "trumps"
    assert normalize_answer("Trump\u2019s") == "trump\u2019s"


def test_record_by_hand():
    predictions = ["Barack Obama", "the U.S.", "London", "New York City"]
    answers = [
        ["Obama", "President Barack Obama"],
        ["US", "United States"],
        ["Paris"],
        ["New York"],
    ]
    # q1: vs "Obama": common 1, P=1/2, R=1 -> 2/3; vs "President Barack Obama": common 2, P=1,
    #     R=2/3 -> 0.8; max 0.8; EM 0.
    # q2: "the U.S." -> "us" == norm("US") -> F1 1, EM 1.
    # q3: no common token -> 0, 0.
    # q4: common 2, P=2/3, R=1 -> 0.8; EM 0.
    # F1 = (0.8 + 1 + 0 + 0.8)/4 = 0.65; EM = 1/4.
    scores = record(predictions, answers)
    assert scores == {"f1": pytest.approx(0.65), "em": pytest.approx(0.25)}
    assert all(type(value) is float for value in scores.values())


def test_record_counts_repeated_tokens_as_a_multiset():
    # "john john smith" vs "john smith": common = min(2,1) + 1 = 2, P = 2/3, R = 1 -> 0.8
    assert record(["John John Smith"], [["John Smith"]])["f1"] == pytest.approx(0.8)


def test_record_takes_f1_and_em_maxima_separately():
    # EM 1 from "obama."; F1 is 1 from the same gold; a worse gold listed first changes nothing.
    assert record(["Obama"], [["Barack Obama", "obama."]]) == {"f1": 1.0, "em": 1.0}


def test_record_empty_normalised_strings_match_exactly_but_share_no_token():
    # The official rule: F1 is 0 when no token is shared, even if both sides normalise to "".
    assert record(["The"], [["a"]]) == {"f1": 0.0, "em": 1.0}


def test_record_unanswered_queries_score_zero():
    assert record([None, "x"], [["a"], ["x"]]) == {"f1": 0.5, "em": 0.5}


def _official_record(dataset, predictions):
    """The official ReCoRD v1.0 evaluation, step by step as its script does it (percentages),
    with its own normaliser written here with str.translate."""
    def normalize(s):
        s = s.lower().translate(str.maketrans("", "", string.punctuation))
        s = re.sub(r"\b(a|an|the)\b", " ", s)
        return " ".join(s.split())

    def f1(prediction, truth):
        p, t = normalize(prediction).split(), normalize(truth).split()
        same = sum((Counter(p) & Counter(t)).values())
        if same == 0:
            return 0
        precision, recall = same / len(p), same / len(t)
        return 2 * precision * recall / (precision + recall)

    def em(prediction, truth):
        return normalize(prediction) == normalize(truth)

    f1_sum = em_sum = total = 0
    for passage in dataset:
        for qa in passage["qas"]:
            total += 1
            if qa["id"] not in predictions:
                continue
            truths = [answer["text"] for answer in qa["answers"]]
            em_sum += max(em(predictions[qa["id"]], t) for t in truths)
            f1_sum += max(f1(predictions[qa["id"]], t) for t in truths)
    return {"exact_match": 100.0 * em_sum / total, "f1": 100.0 * f1_sum / total}


def test_record_against_the_official_algorithm():
    words = ["the", "a", "An", "Obama", "obama's", "U.S.", "New", "York", "City", "--", "Smith", "é"]
    rng = np.random.default_rng(3)

    def phrase():
        return " ".join(rng.choice(words, size=rng.integers(1, 4)).tolist())

    queries = []
    for q in range(200):
        golds = [phrase() for _ in range(rng.integers(1, 4))]
        prediction = golds[0] if rng.random() < 0.3 else phrase()
        queries.append((f"q{q}", prediction, golds))
    dataset = [{"qas": [{"id": qid, "answers": [{"text": g} for g in golds]} for qid, _, golds in queries]}]
    answered = {qid: prediction for qid, prediction, _ in queries[:180]}  # 20 left unanswered
    official = _official_record(dataset, answered)
    ours = record(
        [answered.get(qid) for qid, _, _ in queries], [golds for _, _, golds in queries]
    )
    assert ours["f1"] == pytest.approx(official["f1"] / 100)
    assert ours["em"] == pytest.approx(official["exact_match"] / 100)
    assert 0 < ours["em"] < ours["f1"] < 1


def test_record_refusals():
    with pytest.raises(ValueError, match="same length"):
        record(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="no predictions"):
        record([], [])
    with pytest.raises(ValueError, match="at least one gold"):
        record(["a"], [[]])
    with pytest.raises(ValueError, match="at least one gold"):
        record(["a"], ["a"])  # a bare string is not a list of answers


# --- the lookup --------------------------------------------------------------------------------

EXPECTED_METRICS = {
    "boolq": ("accuracy",),
    "cb": ("accuracy", "f1"),
    "copa": ("accuracy",),
    "multirc": ("f1a", "em"),
    "record": ("f1", "em"),
    "rte": ("accuracy",),
    "wic": ("accuracy",),
    "wsc": ("accuracy",),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_METRICS))
def test_each_scorer_returns_the_metrics_it_names(name):
    scorer, names = superglue_scorer(name)
    if name == "multirc":
        scores = scorer([1, 0, 1], [1, 1, 1], question_ids=[(0, 0), (0, 0), (0, 1)])
    elif name == "record":
        scores = scorer(["Obama"], [["Barack Obama"]])
    else:
        scores = scorer([0, 1, 1, 0], [0, 1, 0, 0])
    assert tuple(scores) == names == EXPECTED_METRICS[name]


@pytest.mark.parametrize("name", ["boolq", "copa", "rte", "wic", "wsc"])
def test_accuracy_tasks_reuse_the_glue_accuracy(name):
    scorer, _ = superglue_scorer(name)
    assert scorer is accuracy
    assert scorer([1, 0, 1, 1], [1, 1, 1, 0]) == {"accuracy": 0.5}
    with pytest.raises(ValueError, match="same length"):
        scorer([1, 0, 1], [1, 0])


def test_cb_refuses_unequal_lengths():
    with pytest.raises(ValueError, match="same length"):
        cb_accuracy_and_f1([0, 1, 2], [0, 1])


def test_unknown_task_is_a_key_error():
    with pytest.raises(KeyError, match="known: boolq"):
        superglue_scorer("mnli")
