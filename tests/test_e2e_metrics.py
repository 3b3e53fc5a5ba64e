"""The E2E metrics against the official scorer's printed scores and against values worked by hand.

The official values come from `measure_scores.py` (tuetschek/e2e-metrics): on its example inputs,
copied into tests/data/e2e-metrics-example/; on the systems tests/e2e_systems.py generates from the
seeds in tests/data/e2e-official/scores.json, which holds the scores the official scorer printed
for them (scripts/reference/e2e_official.py, `make reference-e2e`); and, where the official scorer
is set up on this machine, on one of those systems run live.
"""

import json
import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from peftbench.errors import UserError
from peftbench.tasks.e2e_metrics import (
    bleu,
    mteval_tokenize,
    nist,
    read_files,
    read_predictions,
    read_references,
    score,
    score_systems,
)
from tests.e2e_systems import METRICS, generate, official_scorer_missing, official_scores

EXAMPLE = Path(__file__).parent / "data" / "e2e-metrics-example"
OFFICIAL = Path(__file__).parent / "data" / "e2e-official" / "scores.json"
REFERENCES = EXAMPLE / "devel-conc.txt"
PREDICTIONS = EXAMPLE / "baseline-output.txt"

# mteval-v13a's "Cumulative N-gram scoring" rows for n = 1..9 on the example inputs.
OFFICIAL_CUMULATIVE_NIST = [5.0188, 6.2478, 6.9957, 7.4965, 7.8212, 7.9148, 7.9533, 7.9724, 7.9804]
OFFICIAL_CUMULATIVE_BLEU = [0.9346, 0.8707, 0.7946, 0.7203, 0.6398, 0.5580, 0.4717, 0.3803, 0.2839]

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="METEOR and PTB need Java")

# The system of the fixture run through the official scorer now (its three Java starts and Perl
# take about as long as this whole module): 14 MRs in csv, outputs in another order than the
# references, 6 empty outputs, up to 16 references.
LIVE_SEED = 10
SCORER_MISSING = official_scorer_missing()


@pytest.fixture(scope="module")
def example():
    return read_references(REFERENCES), read_predictions(PREDICTIONS)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The fixture's systems (official scores and all), regenerated from their seeds and read back
    from their files."""
    fixture = json.loads(OFFICIAL.read_text(encoding="utf-8"))
    folder = tmp_path_factory.mktemp("e2e-systems")
    systems = []
    for entry in fixture["systems"]:
        system = generate(entry["seed"])
        assert system.digest() == entry["sha256"], (
            f"seed {entry['seed']} no longer generates the system the official scorer scored; "
            "run `make reference-e2e` to score the generator's systems again"
        )
        systems.append((entry, read_files(*system.write(folder / str(entry["seed"])))))
    return systems


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The official scorer started on LIVE_SEED's system where it is set up here (else None),
    running while the module's own scoring does: a check that the fixture's numbers are still the
    scorer's."""
    if SCORER_MISSING:
        yield None
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(official_scores, *generate(LIVE_SEED).write(tmp_path_factory.mktemp("e2e-live")))


@pytest.fixture(scope="module")
def ours(example, generated, live):
    """peftbench's five scores of the example, then of every generated system: one batch, so that
    METEOR's Java starts once (``live`` first, so that the official runs overlap it)."""
    return score_systems([example, *(system for _, system in generated)])


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
def test_all_five_scores_are_the_official_scores(ours):
    scores = ours[0]
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


@pytest.mark.parametrize("empty_reference", ["", "<skipped>"])
def test_nist_length_penalty_divides_by_the_mean_number_of_nonempty_references(empty_reference):
    # mteval-v13a-sig: L̄ = reference words / (non-empty references / instances) = 6 / (4 / 2) = 3,
    # so 2 predicted words give ratio 2/3, where the penalty is 1/2 by construction. A reference
    # empty once tokenized (measure_scores.py's padding, mteval's <skipped>) counts for neither.
    # (The largest number of references, 3, would give L̄ = 2 and no penalty.)
    # Info(a) = log2(6/2), Info(d) = log2(6/1); no bigram is predicted.
    references = [["a b", "a", "b"], ["d e", empty_reference]] if empty_reference else [["a b", "a", "b"], ["d e"]]
    information = (math.log2(3) + math.log2(6)) / 2
    assert nist(references, ["a", "d"]) == pytest.approx(information / 2)


def test_tokens_split_at_perls_whitespace_not_pythons():
    # U+00A0 and U+3000 are \s to Perl on Unicode strings; U+001F is not (Python's str.split splits there).
    assert mteval_tokenize("a\u00a0b\u3000c d\x1fe") == ["a", "b", "c", "d\x1fe"]


# --- reading the files as measure_scores.py does ---------------------------------------------------


def test_every_line_boundary_of_python_splits_a_reference(tmp_path):
    # measure_scores.py reads with codecs.open, whose lines end at U+2028, U+0085, form feed, ...
    path = tmp_path / "refs.txt"
    path.write_text("first a\u2028first b\nfirst c\n\nsecond\x85third\n", encoding="utf-8")
    assert read_references(path) == [["first a", "first b", "first c"], ["second", "third"]]


@pytest.mark.parametrize("text, line", [("\nfirst\n\nsecond\n", 1), ("first\n\n\nsecond\n", 3)])
def test_an_empty_instance_is_a_user_error_naming_the_line(tmp_path, text, line):
    # measure_scores.py starts an instance at every empty line: a second one in a row (or one at the
    # start) makes an instance without references, on which the official scorer fails.
    path = tmp_path / "refs.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=rf"refs.txt:{line}: an empty line"):
        read_references(path)


def test_table_outputs_take_the_references_of_their_mrs_wherever_they_are(tmp_path):
    # With MRs in the outputs, measure_scores.py collects every reference row of each MR (also rows
    # apart) and follows the outputs' order; with a text file of outputs, consecutive rows group.
    _write_table(tmp_path / "refs.csv", ["mr", "ref"], [("A", "a1"), ("B", "b1"), ("A", "a2"), ("C", "c1")], ",")
    _write_table(tmp_path / "outs.csv", ["mr", "output"], [("C", "c"), ("A", "a"), ("B", "b")], ",")
    (tmp_path / "outs.txt").write_text("a\nb\na\nc\n", encoding="utf-8")
    assert read_files(tmp_path / "refs.csv", tmp_path / "outs.csv") == ([["c1"], ["a1", "a2"], ["b1"]], ["c", "a", "b"])
    assert read_files(tmp_path / "refs.csv", tmp_path / "outs.txt")[0] == [["a1"], ["b1"], ["a2"], ["c1"]]
    _write_table(tmp_path / "other.csv", ["mr", "output"], [("D", "d")], ",")
    with pytest.raises(UserError, match="no reference for the MR 'D'"):
        read_files(tmp_path / "refs.csv", tmp_path / "other.csv")


def test_a_byte_order_mark_is_removed_from_a_tables_first_line_only(tmp_path):
    path = tmp_path / "refs.tsv"
    path.write_text("\ufeffmr\tref\nA\t\ufeffa\n", encoding="utf-8")
    assert read_references(path) == [["\ufeffa"]]


# --- the official scorer's numbers on generated systems ------------------------------------------


def _rounded(scores: dict[str, float]) -> dict[str, float]:
    """Our scores under the official names, to the 4 decimals measure_scores.py prints."""
    keys = ("bleu", "nist", "meteor", "rouge_l", "cider")
    return {name: round(scores[key], 4) for name, key in zip(METRICS, keys)}


def test_the_generated_systems_cover_what_the_example_inputs_do_not(generated):
    entries = [entry for entry, _ in generated]
    assert len(entries) >= 20
    assert {entry["layout"] for entry in entries} == {"text", "text-single", "csv", "tsv", "csv-refs"}
    assert max(entry["most_references"] for entry in entries) >= 12
    assert max(entry["mrs"] for entry in entries) >= 547
    assert sum(entry["empty_outputs"] > 0 for entry in entries) >= 3
    # unequal reference counts per MR: here mteval-v13a-sig's NIST differs from the largest-count rule
    assert sum(len({len(instance) for instance in references}) > 1 for _, (references, _) in generated) >= 15


def test_bleu_and_nist_equal_the_official_scorers_on_every_generated_system(generated):
    differences = [
        (entry["seed"], metric, entry["official"][metric], ours)
        for entry, (references, predictions) in generated
        for metric, ours in (("BLEU", round(bleu(references, predictions), 4)),
                             ("NIST", round(nist(references, predictions), 4)))  # fmt: skip
        if ours != entry["official"][metric]
    ]
    assert differences == []


@needs_java
def test_all_five_scores_equal_the_official_scorers_on_every_generated_system(generated, ours):
    differences = {
        entry["seed"]: {metric: (entry["official"][metric], value) for metric, value in _rounded(scores).items()
                        if value != entry["official"][metric]}
        for (entry, _), scores in zip(generated, ours[1:])
    }  # fmt: skip
    assert {seed: found for seed, found in differences.items() if found} == {}


@pytest.mark.skipif(SCORER_MISSING is not None, reason=str(SCORER_MISSING))
def test_the_official_scorer_run_now_prints_our_scores(generated, live, ours):
    seeds = [entry["seed"] for entry, _ in generated]
    assert live.result() == _rounded(ours[1 + seeds.index(LIVE_SEED)])


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
