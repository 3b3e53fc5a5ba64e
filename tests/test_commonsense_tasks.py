"""WinoGrande, HellaSwag, Social IQa, Cosmos QA and CommonsenseQA as multiple choice
(peftbench/tasks/commonsense.py): the release layouts on the shipped slices, the hub copies, the
rows each baseline pairs, and a run whose record fills a cell of conf/table/adapterfusion_table1.yaml.

The shipped slices (peftbench/tasks/data/README.md): Cosmos QA's are rows of the official
``valid.csv``; the others are the rows of the HF datasets library's test fixtures (its
``dummy_data.zip`` for each set), in the release formats."""

from __future__ import annotations

import json

import pytest

from peftbench.errors import UserError
from peftbench.tasks import get_task

MC = ("winogrande", "hellaswag", "social_iqa", "cosmos_qa", "commonsense_qa")


@pytest.mark.parametrize("name, sizes, choices", [
    ("winogrande", {"train": 4, "validation": 2}, 2),
    ("hellaswag", {"train": 2, "validation": 2}, 4),
    ("social_iqa", {"train": 2, "validation": 2}, 3),
    ("cosmos_qa", {"train": 20, "validation": 20}, 4),
    ("commonsense_qa", {"train": 5, "validation": 2}, 5),
])  # fmt: skip
def test_the_shipped_slices_read_as_the_release_layouts(name, sizes, choices):
    task = get_task(name)
    data = task.load("embedded", None)
    assert task.kind == "multiple_choice" and task.eval_splits == ("validation",) and task.main_metric == "accuracy"
    assert data.sample and {split: len(rows) for split, rows in data.splits.items()} == sizes
    for rows in data.splits.values():
        for row in rows:
            assert len(row["choices"]) == choices == len(task.label_names) and 0 <= row["label"] < choices
            assert task.prompt(row).strip()


def test_winogrande_splits_at_the_blank_as_allenais_processor():
    row = get_task("winogrande").load("embedded", None).splits["validation"][0]
    # dev.jsonl: "Ian volunteered to eat Dennis's menudo after already having a bowl because _ despised eating intestine."
    assert row["text"] == "Ian volunteered to eat Dennis's menudo after already having a bowl because "
    assert row["choices"] == ["Ian despised eating intestine.", "Dennis despised eating intestine."]
    assert row["label"] == 1  # answer "2"
    assert get_task("winogrande").prompt(row) == "Ian volunteered to eat Dennis's menudo after already having a bowl because"


def test_a_blank_that_opens_the_sentence_still_leaves_a_prompt():
    from peftbench.tasks.commonsense import SPECS

    row = SPECS["winogrande"].row({"sentence": "_ ran faster than Bob.", "option1": "Ann", "option2": "Bob", "answer": "1"})
    assert row["text"] == "" and row["choices"] == ["Ann ran faster than Bob.", "Bob ran faster than Bob."]
    assert get_task("winogrande").prompt(row) == "Complete the sentence:"


def test_hellaswag_pairs_ctx_a_with_ctx_b_and_each_ending():
    row = get_task("hellaswag").load("embedded", None).splits["validation"][0]
    assert row["text"] == "A man is sitting on a roof."
    assert row["choices"][3] == "he starts pulling up roofing on a roof." and row["label"] == 3
    assert get_task("hellaswag").prompt(row) == "Roof shingle removal: A man is sitting on a roof."


def test_social_iqa_takes_its_labels_from_the_lst_file():
    row = get_task("social_iqa").load("embedded", None).splits["validation"][0]
    assert row["text"] == "Tracy didn't go home that evening and resisted Riley's attacks. What does Tracy need to do before this?"
    assert row["choices"] == ["make a new plan", "Go home and see Riley", "Find somewhere to go"] and row["label"] == 2


def test_cosmos_and_commonsense_qa_rows():
    cosmos = get_task("cosmos_qa").load("embedded", None).splits["train"][0]
    assert cosmos["text"].startswith("Do i need to go for a legal divorce ?")
    assert cosmos["text"].endswith("Why is this person asking about divorce ?") and cosmos["label"] == 1
    csqa = get_task("commonsense_qa").load("embedded", None).splits["validation"][0]
    assert csqa["text"] == "A revolving door is convenient for two direction travel, but it also serves as a security measure at a what?"
    assert csqa["choices"][0] == "bank" and csqa["label"] == 0
    assert get_task("commonsense_qa").prompt(csqa).endswith("at a what?\nAnswer:")


def test_missing_labels_and_mismatched_label_files_are_one_line(tmp_path):
    folder = tmp_path / "social_iqa"
    folder.mkdir()
    example = {"context": "c", "question": "q", "answerA": "a", "answerB": "b", "answerC": "c"}
    for split in ("train", "dev"):
        (folder / f"{split}.jsonl").write_text(json.dumps(example) + "\n" + json.dumps(example) + "\n")
        (folder / f"{split}-labels.lst").write_text("1\n")
    with pytest.raises(UserError, match=r"train-labels.lst has 1 labels for 2 questions in train.jsonl"):
        get_task("social_iqa").load("dir", tmp_path)
    for split in ("train", "dev"):
        (folder / f"{split}.jsonl").write_text(json.dumps(example) + "\n")
        (folder / f"{split}-labels.lst").write_text("4\n")
    with pytest.raises(UserError, match=r"train.jsonl:1: not a Social IQa example \(label '4' is not one of 1, 2, 3\)"):
        get_task("social_iqa").load("dir", tmp_path)
    wino = tmp_path / "winogrande"
    wino.mkdir()
    line = {"qID": "x", "sentence": "A _ b.", "option1": "x", "option2": "y"}
    (wino / "train_xl.jsonl").write_text(json.dumps(line) + "\n")
    (wino / "dev.jsonl").write_text(json.dumps({**line, "answer": "2"}) + "\n")
    with pytest.raises(UserError, match=r"train_xl.jsonl:1: not a WinoGrande example \('answer'\)"):
        get_task("winogrande").load("dir", tmp_path)


def test_no_release_folder_names_where_it_looked(tmp_path):
    (tmp_path / "hellaswag").mkdir()
    with pytest.raises(UserError) as raised:
        get_task("hellaswag").load("dir", tmp_path)
    assert "\n" not in str(raised.value) and "hellaswag_train.jsonl" in str(raised.value) and "data.dir" in str(raised.value)


# --- the hub copies, from rows in the hub's layout ---------------------------------------------

HUB = {
    "winogrande": ({"sentence": "A _ b.", "option1": "x", "option2": "y", "answer": "2"}, ("allenai/winogrande", "winogrande_xl")),
    "hellaswag": ({"ind": 1, "activity_label": "act", "ctx_a": "c", "ctx_b": "he", "ctx": "c he",
                   "endings": ["e0", "e1", "e2", "e3"], "source_id": "s", "split": "val", "split_type": "indomain",
                   "label": "1"}, ("Rowan/hellaswag",)),
    "social_iqa": ({"context": "c", "question": "q", "answerA": "a", "answerB": "b", "answerC": "d", "label": "3"},
                   ("allenai/social_i_qa",)),
    "cosmos_qa": ({"id": "i", "context": "c", "question": "q", "answer0": "a", "answer1": "b", "answer2": "d",
                   "answer3": "e", "label": 0}, ("allenai/cosmos_qa",)),
    "commonsense_qa": ({"id": "i", "question": "q", "question_concept": "k", "answerKey": "E",
                        "choices": {"label": ["A", "B", "C", "D", "E"], "text": ["a", "b", "c", "d", "e"]}},
                       ("tau/commonsense_qa",)),
}  # fmt: skip
EXPECTED = {"winogrande": 1, "hellaswag": 1, "social_iqa": 2, "cosmos_qa": 0, "commonsense_qa": 4}


@pytest.mark.parametrize("name", MC)
def test_the_hub_copy_gives_rows_and_its_unlabelled_test_split_is_left_out(monkeypatch, name):
    import datasets

    example, args = HUB[name]
    unlabelled = {**example, **({"answer": ""} if name == "winogrande" else {"answerKey": ""} if name == "commonsense_qa"
                                else {"label": -1 if name == "cosmos_qa" else ""})}  # fmt: skip
    calls = []

    def load_dataset(*given, **kwargs):
        calls.append(given)
        return datasets.DatasetDict({
            "train": datasets.Dataset.from_list([example]), "validation": datasets.Dataset.from_list([example]),
            "test": datasets.Dataset.from_list([unlabelled]),
        })  # fmt: skip

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    data = get_task(name).load("hub", None)
    assert calls == [args] and set(data.splits) == {"train", "validation"}
    assert data.splits["validation"][0]["label"] == EXPECTED[name]


# --- a run, and the table cell it fills --------------------------------------------------------


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("model, method, fmt", [("tiny-bert", "pfeiffer", "multiple_choice"), ("tiny-gpt2", "lora", "rank_classification")])
def test_a_multiple_choice_run_fills_adapterfusion_table_1(tmp_path, model, method, fmt):
    from pathlib import Path

    from peftbench.launch import compose
    from peftbench.plan import plan
    from peftbench.results.spec import load_spec
    from peftbench.results.table import build_table
    from peftbench.run import execute

    cfg = compose([f"model={model}", "task=cosmos_qa", f"results_dir={tmp_path}", "trainer.max_steps=1",
                   "trainer.batch_size=4", "trainer.progress=false", "task.max_length=64", f"method={method}"])  # fmt: skip
    record = execute(plan(cfg))
    assert record["status"] == "complete" and record["format"] == fmt
    assert set(record["metrics"]["best"]) == {"validation"}
    if method == "pfeiffer":  # the ST-A row: pfeiffer with its default reduction factor 16
        spec = load_spec("adapterfusion_table1", Path(__file__).resolve().parents[1] / "conf")
        table = build_table(spec, [record], model=model)
        column = [c.id for c in spec.columns].index("cosmos_qa")
        cell = next(row for row in table.rows if row.label == "ST-A").cells[column]
        assert cell.value == pytest.approx(100 * record["metrics"]["best"]["validation"]["accuracy"]) and cell.n == 1
        assert cell.caveats  # the shipped slice, marked
