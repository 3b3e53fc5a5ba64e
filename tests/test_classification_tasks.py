"""SciTail, IMDB, Yelp polarity and PAWS (``peftbench/tasks/classification.py``): each release's file
layout, the hub's copy, the shipped real slices (IMDB, PAWS), and a run on each model family."""

from __future__ import annotations

import pytest

from peftbench.errors import UserError
from peftbench.tasks import get_task
from peftbench.tasks.base import TaskData

EMBEDDED = "peftbench/tasks/data"

# Rows WRITTEN BY US in the release formats (no copy of these releases could be read offline; see
# peftbench/tasks/data/README.md): not real data, only the layout is the release's.
SCITAIL_WRITTEN = (
    "Plants make food by photosynthesis.\tPhotosynthesis is how plants make food.\tentails\n"
    "Rocks are made of minerals.\tThe sun is a star.\tneutral\n"
)
YELP_WRITTEN = (
    '"2","Great tacos.\\nWill come back, said ""the regular"" again."\n'
    '"1","Cold food\\\\n and a \\""rude\\"" waiter."\n'
)

# The labels as the hub datasets declare them (their dataset cards and loaders): IMDB's
# ClassLabel neg/pos, Yelp polarity's "1"/"2", PAWS labeled_final's "0"/"1"; SciTail's tsv_format
# keeps the label as a string.
HUB_LABELS = {"imdb": ["neg", "pos"], "yelp_polarity": ["1", "2"], "paws": ["0", "1"]}


def _write(folder, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


def test_imdb_reads_the_release_folders_in_id_order(tmp_path):
    data = get_task("imdb").load("embedded", None)
    assert isinstance(data, TaskData) and data.sample and set(data.splits) == {"train", "test"}
    test = data.splits["test"]
    assert [row["label"] for row in test] == [0] * 12 + [1] * 12  # neg/ then pos/
    # ids 0..11 in numeric order: 10_*.txt comes after 9_*.txt, not after 1_*.txt
    from pathlib import Path

    negatives = sorted(Path(EMBEDDED, "imdb/aclImdb/test/neg").iterdir(), key=lambda p: int(p.name.split("_")[0]))
    assert [row["text"] for row in test[:12]] == [path.read_text(encoding="utf-8") for path in negatives]
    assert "<br />" in "".join(row["text"] for row in data.splits["train"])  # the files as released


def test_paws_reads_the_release_tsv_with_its_crlf_line_ends():
    data = get_task("paws").load("embedded", None)
    assert {split: len(rows) for split, rows in data.splits.items()} == {"train": 20, "validation": 20, "test": 40}
    first = data.splits["train"][0]
    assert first["text"].startswith("Bradd Crellin represented BARLA Cumbria") and first["label"] == 0
    assert not any("\r" in row["text_pair"] for rows in data.splits.values() for row in rows)
    assert {row["label"] for row in data.splits["validation"]} == {0, 1}


def test_scitail_reads_the_tsv_format_under_the_release_folder(tmp_path):
    release = tmp_path / "scitail" / "SciTailV1.1" / "tsv_format"
    for split in ("train", "dev", "test"):
        _write(release, f"scitail_1.0_{split}.tsv", SCITAIL_WRITTEN)
    data = get_task("scitail").load("dir", tmp_path)
    assert [row["label"] for row in data.splits["validation"]] == [0, 1]  # entails, neutral
    assert data.splits["train"][1] == {"text": "Rocks are made of minerals.", "text_pair": "The sun is a star.", "label": 1}


def test_scitail_refuses_an_unknown_label_naming_the_line(tmp_path):
    _write(tmp_path, "scitail_1.0_train.tsv", "a\tb\tentailment\n")
    _write(tmp_path, "scitail_1.0_dev.tsv", SCITAIL_WRITTEN)
    with pytest.raises(UserError, match=r"scitail_1.0_train.tsv:1: label 'entailment' is not one of entails, neutral"):
        get_task("scitail").load("dir", tmp_path)


def test_yelp_unescapes_as_the_hub_loader_and_maps_1_2_to_negative_positive(tmp_path):
    release = tmp_path / "yelp_polarity" / "yelp_review_polarity_csv"
    _write(release, "train.csv", YELP_WRITTEN)
    _write(release, "test.csv", YELP_WRITTEN)
    rows = get_task("yelp_polarity").load("dir", tmp_path).splits["test"]
    assert rows[0] == {"text": 'Great tacos.\nWill come back, said "the regular" again.', "text_pair": None, "label": 1}
    # the hub loader's replace("\\n", "\n") then replace('\\"', '"'), in that order
    assert rows[1]["text"] == 'Cold food\\\n and a "rude" waiter.' and rows[1]["label"] == 0


def test_a_missing_evaluated_split_names_the_file(tmp_path):
    _write(tmp_path / "yelp_polarity", "train.csv", YELP_WRITTEN)
    with pytest.raises(UserError, match=r"missing .*test\.csv \(Yelp polarity test split\)"):
        get_task("yelp_polarity").load("dir", tmp_path)


def test_no_release_files_is_one_line_naming_where_it_looked(tmp_path):
    (tmp_path / "paws").mkdir()
    with pytest.raises(UserError) as raised:
        get_task("paws").load("dir", tmp_path)
    assert "\n" not in str(raised.value) and "final" in str(raised.value) and "data.dir" in str(raised.value)


def _hub_split(name: str, rows: list[tuple]):
    import datasets

    text, pair = {"scitail": ("premise", "hypothesis"), "paws": ("sentence1", "sentence2")}.get(name, ("text", None))
    columns = {text: [r[0] for r in rows], "label": [r[-1] for r in rows]}
    features = {text: datasets.Value("string")}
    if pair:
        columns[pair] = [r[1] for r in rows]
        features[pair] = datasets.Value("string")
    names = HUB_LABELS.get(name)
    features["label"] = datasets.ClassLabel(names=names) if names else datasets.Value("string")
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


@pytest.mark.parametrize("name, rows, labels", [
    ("scitail", [("p", "h", "neutral"), ("p", "h", "entails")], [1, 0]),
    ("imdb", [("bad", 0), ("good", 1)], [0, 1]),
    ("yelp_polarity", [("bad", 0), ("good", 1)], [0, 1]),
    ("paws", [("a", "b", 1), ("a", "c", 0)], [1, 0]),
])  # fmt: skip
def test_the_hub_copy_gives_the_same_rows_as_the_release(monkeypatch, name, rows, labels):
    import datasets

    splits = {"train": _hub_split(name, rows), "test": _hub_split(name, rows)}
    if name == "imdb":  # its unlabelled reviews (-1) are not a split a run reads
        splits["unsupervised"] = _hub_split(name, [("no label", -1)])
    monkeypatch.setattr(datasets, "load_dataset", lambda *args: datasets.DatasetDict(splits))
    data = get_task(name).load("hub", None)
    assert set(data.splits) == {"train", "test"} and data.source == "hub"
    assert [row["label"] for row in data.splits["test"]] == labels


def test_hub_labels_in_another_order_are_refused(monkeypatch):
    import datasets

    dataset = datasets.Dataset.from_dict(
        {"text": ["x"], "label": [0]},
        features=datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["pos", "neg"])}),
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda *args: datasets.DatasetDict({"train": dataset}))
    with pytest.raises(ValueError, match="labels are"):
        get_task("imdb").load("hub", None)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("model, fmt", [("tiny-bert", "classification"), ("tiny-t5", "rank_classification")])
@pytest.mark.parametrize("task", ["imdb", "paws"])
def test_a_run_records_accuracy_on_the_evaluated_split(tmp_path, model, fmt, task):
    from peftbench.launch import compose
    from peftbench.plan import plan
    from peftbench.run import execute

    cfg = compose([f"model={model}", f"task={task}", f"results_dir={tmp_path}", "trainer.max_steps=1",
                   "trainer.batch_size=4", "trainer.progress=false", "task.max_length=64", "method=lora"])  # fmt: skip
    record = execute(plan(cfg))
    split = get_task(task).main_split
    assert record["status"] == "complete" and record["format"] == fmt
    assert set(record["metrics"]["best"][split]) == {"accuracy"}
    assert split == ("test" if task == "imdb" else "validation")
    assert set(record["metrics"]["best"]["test"]) == {"accuracy"}  # PAWS: its labelled test split, scored once
