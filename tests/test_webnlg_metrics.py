"""WebNLG 2017 and DART metrics (``tasks/webnlg_metrics.py``, ``multi_bleu.py``, ``tercom.py``,
``meteor.py``) against the official scorers and against values worked by hand.

The official values are in tests/data/webnlg-dart-official/fixture.json, written by
scripts/reference/webnlg_dart_official.py: Yale-LILY/dart's ``run_eval_on_webnlg.sh`` steps
(``evaluation.py``, ``multi-bleu.perl -lc``, METEOR 1.5, tercom 0.7.25) and
``run_eval_on_dart.sh`` steps, run on gold sets cut from the real WebNLG 2017 and DART test sets
and on seven systems each (BART-large's outputs as Yale-LILY/dart ships them, references, cut,
emptied, reversed, doubled outputs, raw triples); the fixture holds the texts and the lines the
scorers printed.
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
from pathlib import Path

import pytest

from peftbench.errors import UserError
from peftbench.tasks.multi_bleu import multi_bleu
from peftbench.tasks.tercom import BEAM_WIDTH, _beam_edit_distance, _Levenshtein, corpus_ter, segment_ter
from peftbench.tasks.webnlg import UNSEEN
from peftbench.tasks.webnlg_metrics import (
    dart_bleu,
    dart_scores,
    dart_text,
    webnlg_bleu,
    webnlg_output,
    webnlg_reference,
    webnlg_scores,
)

FIXTURE = json.loads((Path(__file__).parent / "data" / "webnlg-dart-official" / "fixture.json").read_text(encoding="utf-8"))
needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="METEOR 1.5 needs Java")
SUBSETS = {"all": lambda category: True, "seen": lambda category: category not in UNSEEN,
           "unseen": lambda category: category in UNSEEN}  # fmt: skip


def _ter(printed: str) -> float:
    """``Total TER: 0.3448931116389548 (363.0/1052.5000000000002)`` → the first number."""
    return float(re.match(r"Total TER: (\S+) ", printed).group(1))


def _webnlg_cases():
    for entry in FIXTURE["webnlg"]:
        gold = entry["gold"]["entries"]
        for system in entry["systems"]:
            for subset, keep in SUBSETS.items():
                chosen = [i for i, item in enumerate(gold) if keep(item["category"])]
                references = [gold[i]["texts"] for i in chosen]
                outputs = [system["outputs"][i] for i in chosen]
                yield f"{entry['gold']['name']}-{system['name']}-{subset}", references, outputs, system["official"][subset]


WEBNLG_CASES = list(_webnlg_cases())
DART = FIXTURE["dart"]
DART_REFERENCES = [item["texts"] for item in DART["gold"]["entries"]]


def test_the_fixture_covers_what_the_scorers_treat_specially():
    assert len(WEBNLG_CASES) == 2 * 7 * 3 and len(DART["systems"]) >= 5
    golds = [entry["gold"]["entries"] for entry in FIXTURE["webnlg"]]
    assert {item["category"] for item in golds[0]} >= UNSEEN and len({item["size"] for item in golds[0]}) == 7
    assert max(len(item["texts"]) for item in golds[0]) >= 4 and min(len(item["texts"]) for item in golds[0]) == 1
    assert any(ord(c) > 127 for item in golds[0] for text in item["texts"] for c in text)
    # fewer reference files than three: the few-references gold set's unseen inputs have one text each
    assert {case[3]["reference_files"] for case in WEBNLG_CASES} == {1, 2, 3}
    assert all(any(not output for output in system["outputs"]) for system in DART["systems"] if system["name"] == "some-empty")
    assert {len(texts) for texts in DART_REFERENCES} >= {1, 2, 3, 4}


@pytest.mark.parametrize("name, references, outputs, official", WEBNLG_CASES, ids=[case[0] for case in WEBNLG_CASES])
def test_webnlg_bleu_prints_the_official_line(name, references, outputs, official):
    assert webnlg_bleu(references, outputs).line() == official["bleu"]
    assert min(3, max(len(texts) for texts in references)) == official["reference_files"]


@needs_java
def test_webnlg_meteor_and_ter_are_the_official_scores():
    differences = {}
    for name, references, outputs, official in WEBNLG_CASES:
        ours = webnlg_scores(references, outputs)
        found, expected = (ours["meteor"], ours["ter"]), (float(official["meteor"]), _ter(official["ter"]))
        if found != expected or f"BLEU = {100 * ours['bleu']:.2f}," not in official["bleu"]:
            differences[name] = (ours, official)
    assert differences == {}


def test_dart_references_are_the_official_reference_files():
    for item in DART["gold"]["entries"]:
        texts = [dart_text(text) for text in item["texts"][:3]]
        assert texts + [""] * (3 - len(texts)) == item["reference_lines"], item["official_id"]


@pytest.mark.parametrize("system", DART["systems"], ids=[system["name"] for system in DART["systems"]])
def test_dart_bleu_prints_the_official_line(system):
    assert dart_bleu(DART_REFERENCES, system["outputs"]).line() == system["official"]["bleu"]


@needs_java
def test_dart_meteor_and_ter_are_the_official_scores():
    for system in DART["systems"]:
        ours = dart_scores(DART_REFERENCES, system["outputs"])
        official = (float(system["official"]["meteor"]), _ter(system["official"]["ter"]))
        assert (ours["meteor"], ours["ter"]) == official, system["name"]


# --- normalisation, as evaluation.py spells it --------------------------------------------------


def test_references_are_split_before_and_outputs_after_transliteration():
    # ½ is a word character, so a reference keeps unidecode's "1/2" whole (with its spaces); an
    # output is transliterated first, and its "/" is then split off.
    assert webnlg_reference("½ cup of Café–Bar") == " 1/2 cup of cafe - bar"
    assert webnlg_output("½ cup of Café–Bar") == "1 / 2 cup of cafe - bar"
    assert dart_text("Hawaii Five-O’s 1:02:38.") == "hawaii five - o ’ s 1 : 02 : 38 ."


# --- multi-bleu.perl by hand ----------------------------------------------------------------------


def test_bleu_by_hand():
    # 4 words against "a b c d e": p1 = 4/4, p2 = 3/3, p3 = 2/2, p4 = 1/1; BP = exp(1 - 5/4)
    result = multi_bleu([["a b c d e"]], ["a b c d"])
    assert result.bleu == pytest.approx(2.718281828459045 ** (1 - 5 / 4))
    assert (result.hypothesis_length, result.reference_length) == (4, 5)


def test_an_empty_reference_line_is_the_closest_length_of_a_short_hypothesis():
    # lengths 0 and 5 for a 2-word hypothesis: |2 - 0| < |2 - 5|, so r = 0 and there is no penalty
    # (the case of an input with fewer references than there are reference files)
    assert multi_bleu([["a b c d e", ""]], ["a b"]).reference_length == 0
    assert multi_bleu([["a b c d e"]], ["a b"]).reference_length == 5


def test_a_zero_precision_is_bleu_zero_and_no_words_is_zero_too():
    assert multi_bleu([["a b c d"]], ["a b x y"]).bleu == 0.0  # no 3-gram matches: no smoothing
    assert multi_bleu([["a b c d"]], [""]).bleu == 0.0  # the script dies dividing by zero here
    assert multi_bleu([[""]], ["a"]).line() == "BLEU = 0, 0/0/0/0 (BP=0, ratio=0, hyp_len=0, ref_len=0)"


def test_lc_lowercases_ascii_letters_only():
    assert multi_bleu([["The Cat sat down"]], ["the cat sat down"], lowercase=True).bleu == 1.0
    assert multi_bleu([["The Cat sat down"]], ["the cat sat down"]).bleu == 0.0
    assert multi_bleu([["Émile sat down now"]], ["émile sat down now"], lowercase=True).precisions[0] == 0.75


# --- tercom by hand -------------------------------------------------------------------------------


def test_a_block_shift_costs_one_edit():
    # "c d a b" → "a b c d": moving "a b" to the front is one shift; four substitutions without it
    assert segment_ter(("a b c d",), "c d a b") == (1.0, 4.0)
    assert corpus_ter([["a b c d"]], ["c d a b"]) == 0.25


def test_several_references_take_the_fewest_edits_and_the_mean_length():
    # edits: 3 against "a x y z" (a substitution, two deletions), 1 against "a b c" (a deletion);
    # the length is the mean of 4 and 3 words
    assert segment_ter(("a x y z", "a b c"), "a b") == (1.0, 3.5)


def test_empty_texts_and_case():
    assert segment_ter(("a b c",), "") == (3.0, 3.0)  # all deletions
    assert segment_ter(("",), "a b") == (2.0, 0.0)  # all insertions, no reference words
    assert segment_ter(("The Cat",), "the cat") == (0.0, 2.0)  # tercom is case-insensitive by default
    assert math.isnan(corpus_ter([[""]], [""]))  # 0 edits over 0 words: Java's NaN


def test_the_bit_vector_distance_is_what_the_beam_search_finds_up_to_the_beam_width():
    rng = random.Random(0)
    above = 0
    for _ in range(2000):
        vocabulary = "abcdef"[: rng.randint(1, 6)]
        ref = [rng.choice(vocabulary) for _ in range(rng.randint(1, 40))]
        hyp = [rng.choice(vocabulary) for _ in range(rng.randint(1, 40))]
        exact, beam = _Levenshtein(ref)(hyp), _beam_edit_distance(hyp, ref).edits
        if exact <= BEAM_WIDTH:
            assert exact == beam, (hyp, ref)
        else:
            above += 1
            assert beam >= exact
    assert above > 100  # the cases where the beam search itself is run were drawn too


def test_meteor_without_java_is_a_user_error(monkeypatch):
    import peftbench.tasks.meteor as meteor

    monkeypatch.setattr(meteor.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="METEOR 1.5 runs on Java"):
        meteor.meteor([["a"]], ["a"])
