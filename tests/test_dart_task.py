"""DART v1.1.1 (``peftbench/tasks/dart.py``): the release's JSON files, prefix-tuning's input,
scoring per triple set, and a run that scores validation and, once, test."""

from __future__ import annotations

import json
import shutil

import pytest

from peftbench.errors import UserError
from peftbench.tasks import get_task
from peftbench.tasks.dart import EMBEDDED

TASK = get_task("dart")
needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="METEOR 1.5 needs Java")


def test_the_shipped_files_are_the_releases_first_triple_sets():
    data = TASK.load("embedded", None)
    assert {split: len({row["group"] for row in rows}) for split, rows in data.splits.items()} == {"validation": 15, "test": 15}
    assert data.sample and "train" not in data.splits  # the training file could not be found offline
    first = data.splits["test"][0]  # dart-v1.1.1-full-test.json (and .xml) Id1
    assert first == {
        "text": "Hawaii Five-O : notes : Episode: The Flight of the Jewels | [TABLECONTEXT] : [title] : Jeff Daniels"
                " | [TABLECONTEXT] : title : Hawaii Five-O",
        "label": "Jeff Daniels played in the Hawaii Five-O episode The Flight of the Jewels", "group": "0",
    }  # fmt: skip


def test_the_input_is_prefix_tuning_s():
    # LineByLineTriplesTextDataset: relations lowercased, " | " between triples, ' {src} <|endoftext|>'
    row = TASK.load("embedded", None).splits["test"][0]
    assert TASK.prompt(row) == (
        " Hawaii Five-O : notes : Episode: The Flight of the Jewels | [TABLECONTEXT] : [title] : Jeff Daniels"
        " | [TABLECONTEXT] : title : Hawaii Five-O <|endoftext|>"
    )


def test_a_run_on_the_embedded_data_stops_naming_the_missing_training_rows(tmp_path):
    from peftbench.launch import compose
    from peftbench.plan import plan

    cfg = compose(["model=tiny-gpt2", "task=dart", "method=lora", f"results_dir={tmp_path}"])
    with pytest.raises(UserError, match="task dart has no 'train' rows"):
        plan(cfg)
    assert not any(tmp_path.iterdir())


def test_a_folder_needs_only_the_files_of_the_splits_asked(tmp_path):
    folder = tmp_path / "dart"
    folder.mkdir()
    # triple sets written by us in the release's layout (not release data); the E2E and WebNLG
    # parts of DART have no subtree_was_extended
    sets = [{"tripleset": [["A", "EAT_TYPE", "pub"]], "annotations": [{"source": "e2e", "text": "A is a pub."},
                                                                       {"source": "e2e", "text": "A pub: A."}]}]  # fmt: skip
    (folder / "dart-v1.1.1-full-dev.json").write_text(json.dumps(sets), encoding="utf-8")
    assert TASK.load("dir", tmp_path).splits == {
        "validation": [{"text": "A : eat_type : pub", "label": "A is a pub.", "group": "0"},
                       {"text": "A : eat_type : pub", "label": "A pub: A.", "group": "0"}],
    }  # fmt: skip
    with pytest.raises(UserError, match="missing .*dart-v1.1.1-full-test.json"):
        TASK.load("dir", tmp_path, splits=("test",))
    (folder / "dart-v1.1.1-full-dev.json").write_text('[{"tripleset": []}]', encoding="utf-8")
    with pytest.raises(UserError, match="triple set 0 has no annotations"):
        TASK.load("dir", tmp_path)


def test_the_hub_copy_gives_the_same_rows(monkeypatch):
    import datasets

    split = datasets.Dataset.from_dict({"tripleset": [[["A", "EAT_TYPE", "pub"]]], "subtree_was_extended": [False],
                                        "annotations": [{"source": ["e2e"], "text": ["A is a pub."]}]})  # fmt: skip
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: datasets.DatasetDict({"test": split}))
    assert TASK.load("hub", None).splits == {"test": [{"text": "A : eat_type : pub", "label": "A is a pub.", "group": "0"}]}


@needs_java
@pytest.mark.usefixtures("one_thread")
def test_a_run_scores_validation_and_test_once(tmp_path):
    from peftbench.launch import compose
    from peftbench.plan import plan
    from peftbench.run import execute

    # DART's training file is not shipped: this run trains on a copy of the shipped dev slice
    folder = tmp_path / "data" / "dart"
    folder.mkdir(parents=True)
    for name in ("dart-v1.1.1-full-dev.json", "dart-v1.1.1-full-test.json"):
        shutil.copy(EMBEDDED / name, folder / name)
    shutil.copy(EMBEDDED / "dart-v1.1.1-full-dev.json", folder / "dart-v1.1.1-full-train.json")
    cfg = compose(["model=tiny-gpt2", "task=dart", "method=lora", f"results_dir={tmp_path / 'results'}",
                   f"data.dir={tmp_path / 'data'}", "trainer.max_steps=1", "trainer.batch_size=2",
                   "trainer.progress=false", "task.max_length=96", "task.max_new_tokens=4", "task.num_beams=1"])  # fmt: skip
    record = execute(plan(cfg))
    assert record["status"] == "complete" and record["format"] == "generation"
    for split in ("validation", "test"):
        assert set(record["metrics"]["best"][split]) == {"bleu", "meteor", "ter"}, split
