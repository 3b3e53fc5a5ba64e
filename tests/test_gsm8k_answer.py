"""GSM8K accuracy as HF peft's method_comparison computes it, and the metamathqa task's data.

The fixture tests/data/peft_gsm8k/accuracy.json holds the output of peft's own ``parse_answer``,
``convert_to_decimal`` and ``get_accuracy`` (peft@5d602fdb method_comparison/MetaMathQA/utils.py,
run as written by scripts/reference/peft_gsm8k_accuracy.py) on made-up predictions against real
GSM8K test answers and MetaMath-style ones; ours must agree case by case.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from peftbench.tasks import get_task, gsm8k_answer
from peftbench.tasks.metamath import CHAR_LIMIT, GSM8K, validation_rows

FIXTURE = json.loads((Path(__file__).parent / "data" / "peft_gsm8k" / "accuracy.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=lambda case: case["prediction"][:30])
def test_answers_parse_and_score_as_peft_does(case):
    for key in ("prediction", "reference"):
        parsed = gsm8k_answer.parse_answer(case[key])
        assert parsed == case["parsed"][key]
        number = gsm8k_answer.to_decimal(parsed)
        assert (None if number is None else str(number)) == case["numbers"][key]
    assert gsm8k_answer.accuracy([case["prediction"]], [case["reference"]]) == case["accuracy"]


def test_accuracy_over_every_case_is_pefts():
    predictions = [case["prediction"] for case in FIXTURE["cases"]]
    references = [case["reference"] for case in FIXTURE["cases"]]
    assert gsm8k_answer.accuracy(predictions, references) == FIXTURE["accuracy_of_all"]
    assert 0 < FIXTURE["accuracy_of_all"] < 1  # the cases hold right and wrong answers


def test_a_reference_without_a_final_answer_is_refused_as_peft_refuses_it():
    with pytest.raises(ValueError, match="no final answer"):
        gsm8k_answer.accuracy(["The answer is: 3"], ["three"])


def test_validation_rows_are_the_ones_pefts_data_py_draws():
    """peft's data.py: np.random.seed(0); indices = np.arange(n); np.random.shuffle(indices); the first 50."""
    import numpy as np

    rows = [{"group": str(i)} for i in range(7473)]  # GSM8K's training set size
    np.random.seed(0)
    indices = np.arange(len(rows))
    np.random.shuffle(indices)
    assert [row["group"] for row in validation_rows(rows)] == [str(i) for i in indices[:50]]


def test_metamathqa_embedded_reads_real_gsm8k_rows_and_our_metamath_rows():
    """GSM8K's first training and test rows are openai/grade-school-math's, byte for byte; the 8
    MetaMathQA rows are written by us in the release's format (no offline copy exists)."""
    task = get_task("metamathqa")
    data = task.load("embedded")
    assert data.sample
    assert {split: len(rows) for split, rows in data.splits.items()} == {"train": 8, "validation": 50, "test": 40}
    first = data.splits["test"][0]
    assert first["text"].startswith("Janet\u2019s ducks lay 16 eggs per day") and first["label"].endswith("#### 18")
    assert all(len(f"{row['text']} {row['label']}") <= CHAR_LIMIT for row in data.splits["train"])
    assert task.prompt(first).endswith("Think step by step.\nAnswer:")
    assert task.score([row["label"] for row in data.splits["test"]], data.splits["test"]) == {"accuracy": 1.0}


def test_metamath_rows_longer_than_pefts_limit_are_left_out(tmp_path):
    folder = tmp_path / "metamathqa"
    folder.mkdir()
    long = {"query": "q" * CHAR_LIMIT, "response": "The answer is: 1", "type": "GSM_AnsAug", "original_question": "q"}
    short = {"query": "What is 1 + 1?", "response": "1 + 1 = 2.\nThe answer is: 2", "type": "GSM_AnsAug",
             "original_question": "What is 1 + 1?"}  # fmt: skip
    (folder / "MetaMathQA-395K.json").write_text(json.dumps([long, short]))
    gsm8k = GSM8K.embedded
    (tmp_path / "gsm8k").mkdir()
    for name in ("train.jsonl", "test.jsonl"):
        (tmp_path / "gsm8k" / name).write_bytes((gsm8k / name).read_bytes())
    data = get_task("metamathqa").load("dir", tmp_path)
    assert [row["text"] for row in data.splits["train"]] == ["What is 1 + 1?"]
    assert not data.sample
