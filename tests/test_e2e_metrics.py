"""The E2E metrics against the official scorer's printed scores and against values worked by hand.

The official values come from `measure_scores.py` (tuetschek/e2e-metrics) on its example inputs,
copied into tests/data/e2e-metrics-example/.
"""

import math
import shutil
from pathlib import Path

import pytest

from peftbench.errors import UserError
from peftbench.tasks.e2e_metrics import (
    bleu,
    mteval_tokenize,
    nist,
    read_predictions,
    read_references,
    score,
    score_files,
)

EXAMPLE = Path(__file__).parent / "data" / "e2e-metrics-example"
REFERENCES = EXAMPLE / "devel-conc.txt"
PREDICTIONS = EXAMPLE / "baseline-output.txt"

# mteval-v13a's "Cumulative N-gram scoring" rows for n = 1..9 on the example inputs.
OFFICIAL_CUMULATIVE_NIST = [5.0188, 6.2478, 6.9957, 7.4965, 7.8212, 7.9148, 7.9533, 7.9724, 7.9804]
OFFICIAL_CUMULATIVE_BLEU = [0.9346, 0.8707, 0.7946, 0.7203, 0.6398, 0.5580, 0.4717, 0.3803, 0.2839]

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="METEOR and PTB need Java")


@pytest.fixture(scope="module")
def example():
    return read_references(REFERENCES), read_predictions(PREDICTIONS)


def test_the_example_files_read_as_the_official_scorer_reads_them(example):
    references, predictions = example
    assert [len(instance) for instance in references] == [6, 6, 6, 6, 9, 11, 37, 39, 10, 7]
    assert len(predictions) == 10
    assert references[0][0] == "There is a place in the city centre, Alimentum, that is not family-friendly."


def test_bleu_and_nist_are_the_official_scores(example):
    assert round(bleu(*example), 4) == 0.7203
    assert round(nist(*example), 4) == 7.8212


@pytest.mark.parametrize("order", range(1, 10))
def test_cumulative_bleu_and_nist_per_order_are_mtevals(example, order):
    assert round(bleu(*example, max_order=order), 4) == OFFICIAL_CUMULATIVE_BLEU[order - 1]
    assert round(nist(*example, max_order=order), 4) == OFFICIAL_CUMULATIVE_NIST[order - 1]


@needs_java
def test_all_five_scores_are_the_official_scores():
    scores = score_files(REFERENCES, PREDICTIONS)
    assert list(scores) == ["bleu", "nist", "meteor", "rouge_l", "cider"]
    rounded = {name: round(value, 4) for name, value in scores.items()}
    assert rounded == {"bleu": 0.7203, "nist": 7.8212, "meteor": 0.4801, "rouge_l": 0.7910, "cider": 2.3039}


def test_tokenization_follows_mteval():
    # ASCII lowercased; punctuation split except apostrophes; periods and commas kept inside
    # numbers; a dash split after a digit only; SGML entities decoded.
    assert mteval_tokenize("Near Burger-King, it's £20-25 &amp; 3.5 km (ÉTÉ).") == [
        "near", "burger-king", ",", "it's", "£20", "-", "25", "&", "3.5", "km", "(", "ÉtÉ", ")", ".",
    ]


def test_an_exact_match_scores_bleu_one():
    references = [["The cat sat on the mat.", "A cat was on a mat."]]
    assert bleu(references, ["the cat sat on the mat ."]) == pytest.approx(1.0)


def test_bleu_by_hand_with_mtevals_smoothing():
    # p1 = 3/4, p2 = 1/3; no 3- or 4-gram matches: p3 = 1/(2·2), p4 = 1/(4·1); BP = 1.
    assert bleu([["a b x d"]], ["a b c d"]) == pytest.approx((3 / 4 * 1 / 3 * 1 / 4 * 1 / 4) ** (1 / 4))


def test_bleu_by_hand_for_a_short_prediction():
    # p1 = p2 = 1; orders 3 and 4 have no predicted n-grams and count as precision 1 in mteval;
    # BP = exp(1 - 3/2).
    assert bleu([["a b c"]], ["a b"]) == pytest.approx(math.exp(-0.5))


def test_nist_by_hand():
    # Info(a) = Info(b) = log2(2/1) = 1, Info(a b) = log2(count(a)/count(a b)) = 0:
    # NIST = (1 + 1)/2 + 0/1, no length penalty.
    assert nist([["a b"]], ["a b"]) == pytest.approx(1.0)


def test_nist_length_penalty_divides_by_the_largest_number_of_references():
    # 6 reference words over 2 reference sets (the second instance padded with an empty one): mean
    # length 3, so 2 predicted words give ratio 2/3, where the penalty is 1/2 by construction.
    # (Averaging per instance, 2 + 2 = 4, would give ratio 1/2.)
    # Info(a) = log2(6/2), Info(d) = log2(6/1); no bigram is predicted.
    information = (math.log2(3) + math.log2(6)) / 2
    assert nist([["a b c", "a"], ["d e"]], ["a", "d"]) == pytest.approx(information / 2)


def _write_table(path: Path, header: list[str], rows: list[tuple[str, str]], delimiter: str) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.mark.parametrize("suffix, delimiter", [(".csv", ","), (".tsv", "\t")])
def test_tables_group_references_by_mr_and_score_as_the_text_files(tmp_path, example, suffix, delimiter):
    references, predictions = example
    mrs = [f'name[Instance {i}], area[city centre], "quoted"' for i in range(len(references))]
    reference_rows = [(mr, reference) for mr, instance in zip(mrs, references) for reference in instance]
    _write_table(tmp_path / f"refs{suffix}", ["mr", "ref"], reference_rows, delimiter)
    _write_table(tmp_path / f"out{suffix}", ["MR", "output"], list(zip(mrs, predictions)), delimiter)

    assert read_references(tmp_path / f"refs{suffix}") == references
    assert read_predictions(tmp_path / f"out{suffix}") == predictions
    assert bleu(read_references(tmp_path / f"refs{suffix}"), predictions) == bleu(references, predictions)


def test_a_table_without_header_has_two_columns_mr_then_text(tmp_path):
    path = tmp_path / "refs.tsv"
    path.write_text("name[One]\tfirst a\nname[One]\tfirst b\nname[Two]\tsecond\n", encoding="utf-8")
    assert read_references(path) == [["first a", "first b"], ["second"]]


def test_a_text_file_without_empty_lines_has_one_reference_per_instance(tmp_path):
    path = tmp_path / "refs.txt"
    path.write_text("first\nsecond\n", encoding="utf-8")
    assert read_references(path) == [["first"], ["second"]]


def test_mismatched_counts_name_both(example):
    references, predictions = example
    with pytest.raises(UserError, match=r"10 instances .* 9 predictions"):
        score(references, predictions[:9])
    with pytest.raises(UserError, match=r"10 instances .* 11 predictions"):
        bleu(references, predictions + ["extra"])


def test_missing_java_is_a_user_error(monkeypatch, tmp_path, example):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="install a JRE"):
        score(*example)


def test_an_instance_without_references_is_a_user_error():
    with pytest.raises(UserError, match=r"instances \[1\] have no reference"):
        bleu([["a"], []], ["a", "b"])
