"""CoNLL-2003 NER (``conll2003``): the release's four-column files with their ``-DOCSTART-`` lines,
IOB1 read as the same chunks in IOB2, the hub's rows, entity F1 equal to the official
``conlleval.pl``'s on a stored run of it, a tiny-BERT run, and bad files refused in one line.

The embedded files are real: the first articles of eng.train / eng.testa / eng.testb
(``peftbench/tasks/data/README.md``). The short files written in ``tmp_path`` are WRITTEN BY US in
the release format to exercise the reader's edge cases; they are not real data.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from peftbench.errors import UserError
from peftbench.run import execute
from peftbench.tasks import get_task
from peftbench.tasks.conll2003 import EMBEDDED, TAGS, read_sentences
from peftbench.tasks.conlleval import chunks, entity_scores, iob2
from tests.helpers import planned

FIXTURE = Path(__file__).parent / "data" / "conll2003-conlleval"
TAG = {name: index for index, name in enumerate(TAGS)}


def tags(*names: str) -> list[int]:
    return [TAG[name] for name in names]


def test_the_release_files_read_as_sentences_without_their_document_lines():
    train = read_sentences(EMBEDDED / "eng.train")
    assert train[0] == {
        "text": "EU rejects German call to boycott British lamb .",
        "tokens": ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
        "label": tags("B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"),
    }
    assert train[1]["tokens"] == ["Peter", "Blackburn"] and train[1]["label"] == tags("B-PER", "I-PER")
    for name in ("eng.train", "eng.testa", "eng.testb"):
        text = (EMBEDDED / name).read_text(encoding="utf-8")
        blocks = [b for b in re.split(r"\n\n+", text.strip()) if not b.startswith("-DOCSTART-")]
        rows = read_sentences(EMBEDDED / name)
        assert [row["tokens"] for row in rows] == [[line.split(" ")[0] for line in b.splitlines()] for b in blocks]
        assert text.startswith("-DOCSTART- -X- ") and not any("-DOCSTART-" in row["tokens"] for row in rows)


def test_iob1_reads_as_the_same_chunks_in_iob2_and_bad_lines_are_refused(tmp_path):
    # written by us: two persons side by side (IOB1's only B-), then a type change without an O
    (tmp_path / "eng.testa").write_text("-DOCSTART- -X- -X- O\n\nPeter NNP I-NP I-PER\nPaul NNP I-NP B-PER\n"
                                        "Bonn NNP I-NP I-LOC\n. . O O\n\nUS NNP I-NP I-LOC", encoding="utf-8")  # fmt: skip
    rows = read_sentences(tmp_path / "eng.testa")
    assert [row["label"] for row in rows] == [tags("B-PER", "B-PER", "B-LOC", "O"), tags("B-LOC")]
    iob1 = ["I-PER", "B-PER", "I-LOC", "O", "I-MISC", "I-MISC"]
    assert chunks(iob2(iob1)) == chunks(iob1) and iob2(iob2(iob1)) == iob2(iob1)
    (tmp_path / "eng.testa").write_text("Peter NNP I-PER\n", encoding="utf-8")
    with pytest.raises(UserError, match="eng.testa:1: 3 fields, not 4"):
        read_sentences(tmp_path / "eng.testa")
    (tmp_path / "eng.testa").write_text("Peter NNP I-NP I-PERSON\n", encoding="utf-8")
    with pytest.raises(UserError, match="eng.testa:1: tag 'I-PERSON' is not one of O, B-PER"):
        read_sentences(tmp_path / "eng.testa")


def _scorer_sentences(text: str) -> tuple[list[list[str]], list[list[str]]]:
    gold, guess = [[]], [[]]
    for line in text.splitlines():
        if not line:
            gold.append([])
            guess.append([])
            continue
        _, g, p = line.split(" ")
        gold[-1].append(g)
        guess[-1].append(p)
    return [s for s in gold if s], [s for s in guess if s]


def _official(output: str) -> dict:
    counts = re.search(r"with (\d+) phrases; found: (\d+) phrases; correct: (\d+)\.", output)
    scores = re.search(r"precision:\s+([\d.]+)%; recall:\s+([\d.]+)%; FB1:\s+([\d.]+)", output)
    return {"counts": tuple(int(n) for n in counts.groups()),
            "scores": {k: float(v) / 100 for k, v in zip(("precision", "recall", "f1"), scores.groups())}}  # fmt: skip


def _ours(gold: list[list[str]], guess: list[list[str]]) -> dict:
    expected = sum(len(chunks(s)) for s in gold)
    found = sum(len(chunks(s)) for s in guess)
    correct = sum(len(chunks(g) & chunks(p)) for g, p in zip(gold, guess))
    return {"counts": (expected, found, correct), "scores": entity_scores(gold, guess)}


def test_entity_f1_equals_the_official_conlleval_on_its_stored_output():
    gold, guess = _scorer_sentences((FIXTURE / "input.txt").read_text(encoding="utf-8"))
    official = _official((FIXTURE / "output.txt").read_text(encoding="utf-8"))
    as_read = [[TAGS[t] for t in row["label"]] for row in read_sentences(EMBEDDED / "eng.testb")]
    assert as_read == [iob2(s) for s in gold]  # the task's gold tags are the scorer's, in IOB2
    for gold_tags in (gold, as_read):
        ours = _ours(gold_tags, guess)
        assert ours["counts"] == official["counts"]
        assert ours["scores"] == pytest.approx(official["scores"], abs=5e-5)  # conlleval prints 0.01%


@pytest.mark.skipif(not os.environ.get("CONLLEVAL_PL"), reason="CONLLEVAL_PL names no conlleval.pl to run")
def test_entity_f1_equals_a_fresh_run_of_conlleval():
    text = (FIXTURE / "input.txt").read_text(encoding="utf-8")
    done = subprocess.run(["perl", os.environ["CONLLEVAL_PL"]], input=text, capture_output=True, text=True, check=True)
    ours, official = _ours(*_scorer_sentences(text)), _official(done.stdout)
    assert ours["counts"] == official["counts"] and ours["scores"] == pytest.approx(official["scores"], abs=5e-5)


def test_hub_rows_and_the_release_folder_give_the_embedded_rows(tmp_path):
    import datasets

    from peftbench.tasks.conll2003 import _hub_splits

    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=list(TAGS)))})  # fmt: skip
    split = datasets.Dataset.from_dict({"tokens": [["Peter", "Blackburn"]], "ner_tags": [[1, 2]]}, features=features)
    assert _hub_splits(datasets.DatasetDict({"train": split})) == {
        "train": [{"text": "Peter Blackburn", "tokens": ["Peter", "Blackburn"], "label": [1, 2]}]}
    task = get_task("conll2003")
    embedded = task.load("embedded")
    assert embedded.sample and set(embedded.splits) == {"train", "validation", "test"} and task.test_splits == ("test",)
    shutil.copytree(EMBEDDED, tmp_path / "conll2003")
    assert task.load("dir", str(tmp_path)).splits == embedded.splits
    (tmp_path / "conll2003" / "eng.testb").unlink()
    with pytest.raises(UserError, match="missing .*eng.testb \\(CoNLL-2003 test\\)"):
        task.load("dir", str(tmp_path))


def test_a_tiny_bert_tags_words_and_scores_the_test_file_once(tmp_path):
    p = planned(tmp_path, "tiny-bert", "method=lora", "task=conll2003", "trainer.max_steps=2", "trainer.batch_size=4")
    record = execute(p)
    assert record["status"] == "complete" and record["format"] == "token_classification"
    best = record["metrics"]["best"]
    assert set(best) == {"validation", "test"} and set(best["test"]) == {"f1", "precision", "recall"}
    assert record["params"]["head"] == 32 * len(TAGS) + len(TAGS)


def test_a_decoder_is_refused_while_planning(tmp_path):
    with pytest.raises(UserError, match="task conll2003 tags words with a head over each token, which needs an encoder"):
        planned(tmp_path, "tiny-gpt2", "task=conll2003")
