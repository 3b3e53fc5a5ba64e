"""WebNLG 2017 (``peftbench/tasks/webnlg.py``): prefix-tuning's JSON files and input, the
challenge's seen / unseen test splits, scoring per input, and a run that fills prefix-tuning's
WebNLG cells."""

from __future__ import annotations

import json
import shutil

import pytest

from peftbench.errors import UserError
from peftbench.tasks import get_task
from peftbench.tasks.webnlg import UNSEEN

TASK = get_task("webnlg")
needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="METEOR 1.5 needs Java")


def test_the_shipped_files_are_the_releases_entries():
    data = TASK.load("embedded", None)
    groups = {split: len({row["group"] for row in rows}) for split, rows in data.splits.items()}
    assert groups == {"train": 15, "validation": 15, "test": 12, "test_seen": 7, "test_unseen": 5}
    assert data.sample
    first = data.splits["train"][0]  # train.json entry 1: 1triple_allSolutions_Airport_train_challenge.xml, Id1
    assert first == {"text": " | Aarhus_Airport : cityServed : \"Aarhus, Denmark\"",
                     "label": "The Aarhus is the airport of Aarhus, Denmark.", "group": "1triples/Airport/Id1"}  # fmt: skip
    test = data.splits["test"]
    assert test[0]["group"] == "1triples/Airport/Id1" and test[-1]["group"] == "4triples/Athlete/Id1568"


def test_seen_and_unseen_are_the_challenges_category_halves_of_test():
    data = TASK.load("embedded", None)
    category = lambda row: row["group"].split("/")[1]  # noqa: E731
    assert data.splits["test_seen"] + data.splits["test_unseen"] == data.splits["test"]  # seen inputs come first
    assert {category(row) for row in data.splits["test_unseen"]} == {"Politician", "Athlete"} <= UNSEEN
    assert not {category(row) for row in data.splits["test_seen"]} & UNSEEN


def test_the_input_is_prefix_tuning_s():
    # LineByLineWebNLGTextDataset: " | s : p : o" before every triple; then ' {src} <|endoftext|>'.
    # testdata_with_lex.xml, Id1568: <mtriple>Aaron_Hunt | club | SV_Werder_Bremen</mtriple>, ...
    rows = TASK.load("embedded", None).splits["test"]
    athlete = next(row for row in rows if row["group"] == "4triples/Athlete/Id1568")
    assert TASK.prompt(athlete) == (
        "  | Aaron_Hunt : club : SV_Werder_Bremen | SV_Werder_Bremen_II : manager : Alexander_Nouri"
        " | Aaron_Hunt : club : SV_Werder_Bremen_II | SV_Werder_Bremen_II : league : 3._Liga <|endoftext|>"
    )


def _write(folder, name, entries):
    payload = {"entries": [{str(key): entry} for key, entry in entries]}
    (folder / name).write_text(json.dumps(payload, ensure_ascii=False, indent=4, sort_keys=True), encoding="utf-8")


def _entry(category, eid, lexes, triples=(("A", "p", "B"),)):
    return {"category": category, "size": str(len(triples)), "xml_id": eid, "shape": "NA", "shape_type": "NA",
            "modifiedtripleset": [{"subject": s, "property": p, "object": o} for s, p, o in triples],
            "lexicalisations": [{"comment": comment, "lex": lex, "lang": "", "xml_id": f"Id{i}"}
                                for i, (lex, comment) in enumerate(lexes, start=1)]}  # fmt: skip


def test_a_folder_holds_prefix_tunings_files(tmp_path):
    folder = tmp_path / "webnlg_challenge_2017"
    folder.mkdir()
    # rows written by us in the corpus-reader's JSON layout (not release data)
    _write(folder, "train.json", [(1, _entry("Food", "Id1", [("Good text.", "good"), ("Bad text.", "toFix")]))])
    _write(folder, "dev.json", [(1, _entry("Food", "Id1", [("One.", "good"), ("Two.", "toFix")]))])
    data = TASK.load("dir", tmp_path)
    assert set(data.splits) == {"train", "validation"}  # test.json is optional
    assert [row["label"] for row in data.splits["train"]] == ["Good text."]  # training keeps the "good" texts
    assert [row["label"] for row in data.splits["validation"]] == ["One.", "Two."]  # scoring keeps them all
    _write(folder, "test.json", [(7, _entry("Artist", "Id7", [("X.", "good")])), (8, _entry("City", "Id8", [("Y.", "good")]))])
    only_unseen = TASK.load("dir", tmp_path, splits=("test_unseen",)).splits
    assert list(only_unseen) == ["test_unseen"] and only_unseen["test_unseen"][0]["group"] == "1triples/Artist/Id7"
    (folder / "dev.json").write_text('{"entries": [{"1": {"category": "Food"}}]}', encoding="utf-8")
    with pytest.raises(UserError, match="entry 1 has no size, xml_id, modifiedtripleset, lexicalisations"):
        TASK.load("dir", tmp_path)
    (folder / "dev.json").unlink()
    with pytest.raises(UserError, match="missing .*dev.json"):
        TASK.load("dir", tmp_path)


def test_the_hub_copy_gives_the_same_rows(monkeypatch):
    import datasets

    example = {"category": ["Artist"], "size": [2], "eid": ["Id3"],
               "lex": [{"comment": ["good", "toFix"], "text": ["T1.", "T2."]}],
               "modified_triple_sets": [{"mtriple_set": [["A | p | B", "B | q | C"]]}]}  # fmt: skip
    split = datasets.Dataset.from_dict(example)
    hub = datasets.DatasetDict({"train": split, "dev": split, "test": split})
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: hub)
    splits = TASK.load("hub", None).splits
    assert splits["train"] == [{"text": " | A : p : B | B : q : C", "label": "T1.", "group": "2triples/Artist/Id3"}]
    assert len(splits["validation"]) == len(splits["test_unseen"]) == 2 and splits["test_seen"] == []


@needs_java
def test_each_input_is_scored_once_against_its_first_three_texts():
    texts = ("The cat sat.", "A cat sat.", "Cats sit.", "The cat sat down.")
    rows = [{"text": "x", "label": label, "group": "a"} for label in texts]
    rows.append({"text": "y", "label": "A dog ran.", "group": "b"})
    scores = TASK.score(["The cat sat down.", "ignored", "ignored", "ignored", "A dog ran."], rows)
    # the fourth text, the only exact match of the first output, is not a reference
    assert 0 < scores["bleu"] < 1 and scores["ter"] > 0
    assert TASK.score(["The cat sat.", "", "", "", "A dog ran."], rows) == {"bleu": 1.0, "meteor": 1.0, "ter": 0.0}


@needs_java
@pytest.mark.usefixtures("one_thread")
def test_a_run_scores_validation_and_the_three_test_splits_and_fills_the_prefix_table(tmp_path):
    from peftbench.launch import compose
    from peftbench.plan import plan
    from peftbench.results.spec import load_spec
    from peftbench.results.table import build_table
    from peftbench.run import execute
    from tests.test_table_specs import CONF

    cfg = compose(["model=tiny-gpt2", "task=webnlg", "method=prefix", "method.length=5", f"results_dir={tmp_path}",
                   "trainer.max_steps=1", "trainer.batch_size=2", "trainer.progress=false", "task.max_length=96",
                   "task.max_new_tokens=4", "task.num_beams=1"])  # fmt: skip
    record = execute(plan(cfg))
    assert record["status"] == "complete" and record["format"] == "generation"
    for split in ("validation", "test_seen", "test_unseen", "test"):
        assert set(record["metrics"]["best"][split]) == {"bleu", "meteor", "ter"}, split
    for name in ("prefix_table1_acl", "prefix_table1_arxiv"):
        table = build_table(load_spec(name, CONF), [record], model="tiny-gpt2")
        row = next(row for row in table.rows if row.label.startswith("GPT-2 M Prefix"))
        filled = {header for header, cell in zip(table.headers, row.cells) if getattr(cell, "value", None) is not None}
        assert {header for header in filled if header.startswith("WebNLG")} == {
            f"WebNLG {metric} {part}" for metric in ("BLEU", "MET", "TER") for part in "SUA"
        }, name
