"""XNLI (``xnli``): the XNLI-1.0 / XNLI-MT-1.0 release layout read as the hub's loading script read
it, the hub's rows, zero-shot cross-lingual splits (English train and dev, the target's test), a
tiny-BERT run that scores the target test once, and bad options refused before a model loads.

The rows are real rows of the release files (``peftbench/tasks/data/README.md``); the one-line
files written in ``tmp_path`` are WRITTEN BY US in the release format to exercise the reader.
"""

from __future__ import annotations

import shutil

import pytest

from peftbench.errors import UserError
from peftbench.run import execute
from peftbench.tasks import get_task
from peftbench.tasks.xnli import EMBEDDED, LABELS, LANGUAGES
from tests.cli import peftbench
from tests.helpers import planned


def test_the_release_files_give_each_languages_pairs_and_the_mt_training_labels():
    data = get_task("xnli", {"language": "de"}).load("embedded")
    assert data.splits["train"][0] == {
        "text": "Conceptually cream skimming has two basic dimensions - product and geography .",
        "text_pair": "Product and geography are what make cream skimming work .",
        "label": LABELS.index("neutral"), "language": "en",
    }  # fmt: skip
    assert [row["language"] for row in data.splits["validation"]] == ["en"]  # one row per language in the dev file
    assert data.splits["test"] == [{
        "text": "Nun, daran dachte ich nicht einmal, aber ich war so frustriert, dass ich am Ende doch mit ihm redete.",
        "text_pair": "Ich habe nicht wieder mit ihm gesprochen.", "label": LABELS.index("contradiction"), "language": "de",
    }]  # fmt: skip
    assert "train, validation: " in data.location and "test: " in data.location


def test_contradictory_is_contradiction_and_a_missing_file_or_language_is_one_line(tmp_path):
    release = tmp_path / "xnli"
    shutil.copytree(EMBEDDED, release)
    train = release / "XNLI-MT-1.0" / "multinli" / "multinli.train.en.tsv"
    train.write_text("premise\thypo\tlabel\nA man sleeps .\tA man is awake .\tcontradictory\n", encoding="utf-8")  # ours
    data = get_task("xnli").load("dir", str(tmp_path))
    assert data.splits["train"] == [{"text": "A man sleeps .", "text_pair": "A man is awake .",
                                     "label": LABELS.index("contradiction"), "language": "en"}]  # fmt: skip
    assert data.splits["test"][0]["language"] == "en" and data.source == "dir"
    train.unlink()
    with pytest.raises(UserError, match="missing .*multinli.train.en.tsv \\(XNLI en train\\); .*XNLI-MT-1.0.zip unpacked"):
        get_task("xnli").load("dir", str(tmp_path))
    assert get_task("xnli", {"language": "sw"}).load("dir", str(tmp_path), ("test",)).splits["test"][0]["language"] == "sw"
    dev = release / "XNLI-1.0" / "xnli.dev.tsv"
    dev.write_text(dev.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")  # the header alone
    with pytest.raises(UserError, match="xnli.dev.tsv has no en rows"):
        get_task("xnli").load("dir", str(tmp_path), ("validation",))


def test_hub_rows_and_a_hub_failure():
    import datasets

    from peftbench.tasks.xnli import _hub_splits

    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=list(LABELS))})  # fmt: skip
    split = datasets.Dataset.from_dict({"premise": ["p"], "hypothesis": ["h"], "label": [2]}, features=features)
    assert _hub_splits("fr", datasets.DatasetDict({"test": split})) == {
        "test": [{"text": "p", "text_pair": "h", "label": 2, "language": "fr"}]}
    with pytest.raises(UserError) as raised:  # offline here: one line naming the data folder and the shipped slice
        get_task("xnli", {"language": "fr"}).load("hub")
    message = str(raised.value)
    assert "\n" not in message and "facebook/xnli/en" in message and "data.dir=" in message and "data.source=embedded" in message


def test_a_tiny_bert_trains_on_english_and_scores_the_target_test_once(tmp_path):
    p = planned(tmp_path, "tiny-bert", "method=lora", "task=xnli", "task.language=es", "trainer.max_steps=2",
                "trainer.batch_size=2")  # fmt: skip
    record = execute(p)
    assert record["status"] == "complete" and record["format"] == "classification"
    assert set(record["metrics"]["best"]) == {"validation", "test"}
    history = (p.run_dir / "history.jsonl").read_text().splitlines()
    assert sum('"phase": "test"' in line for line in history) == 1  # the Spanish test, once, with the best weights
    assert p.parts[0].data.splits["test"][0]["language"] == "es"
    other = planned(tmp_path, "tiny-bert", "method=lora", "task=xnli", "task.language=de", "trainer.max_steps=2",
                    "trainer.batch_size=2")  # fmt: skip
    assert other.run_id != p.run_id  # the language is part of the run's identity


def test_bad_languages_are_refused_in_one_line(tmp_path):
    with pytest.raises(UserError, match=f"XNLI has no language 'xx'; set task.language to one of: {', '.join(LANGUAGES)}"):
        planned(tmp_path, "tiny-bert", "task=xnli", "task.language=xx")
    done = peftbench("run", "model=tiny-bert", "task=xnli", "task.language=pt", f"results_dir={tmp_path / 'results'}",
                     cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "XNLI has no language 'pt'" in done.stderr
    assert not (tmp_path / "results").exists()
