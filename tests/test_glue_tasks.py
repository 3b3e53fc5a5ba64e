"""GLUE tasks: reading the original tsv layout, the hub path, the embedded slices, the registry.

The GLUE folders used here are built in tmp from the package's embedded slices, plus tiny MNLI and
QQP files written in their official column layout. The checks against the full staged copy
(../shared/data, or $PEFTBENCH_SHARED_DATA) are skipped where it is absent.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from peftbench.errors import UserError
from peftbench.tasks import get_task, task_names

REPO_ROOT = Path(__file__).resolve().parents[1]
EMBEDDED_GLUE = REPO_ROOT / "peftbench" / "tasks" / "data" / "glue"
SHARED_DATA = Path(os.environ.get("PEFTBENCH_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

FOLDERS = {
    "cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "qqp": "QQP",
    "mnli": "MNLI", "qnli": "QNLI", "rte": "RTE", "wnli": "WNLI",
}
# The ClassLabel names of nyu-mll/glue, in order.
HUB_LABEL_NAMES = {
    "cola": ("unacceptable", "acceptable"),
    "sst2": ("negative", "positive"),
    "mrpc": ("not_equivalent", "equivalent"),
    "stsb": (),
    "qqp": ("not_duplicate", "duplicate"),
    "mnli": ("entailment", "neutral", "contradiction"),
    "qnli": ("entailment", "not_entailment"),
    "rte": ("entailment", "not_entailment"),
    "wnli": ("not_entailment", "entailment"),
}
RTE_HEADER = "index\tsentence1\tsentence2\tlabel"
MRPC_HEADER = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"
MNLI_TEXT_COLUMNS = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
    "sentence1_parse\tsentence2_parse\tsentence1\tsentence2"
)


def write_tsv(path: Path, header: str | None, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ([header] if header is not None else []) + rows
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def mnli_row(index: int, premise: str, hypothesis: str, *labels: str) -> str:
    parses = f"( {premise} )\t( {hypothesis} )\t(ROOT {premise})\t(ROOT {hypothesis})"
    return "\t".join([str(index), str(100 + index), f"{100 + index}e", "fiction", parses, premise, hypothesis, *labels])


def write_mnli(folder: Path) -> None:
    write_tsv(folder / "train.tsv", MNLI_TEXT_COLUMNS + "\tlabel1\tgold_label", [
        mnli_row(0, "The cat sat.", "A cat sat.", "entailment", "entailment"),
        mnli_row(1, "The cat sat.", "The cat is old.", "neutral", "neutral"),
        mnli_row(2, "The cat sat.", "The cat stood.", "contradiction", "contradiction"),
    ])
    dev_header = MNLI_TEXT_COLUMNS + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label"
    write_tsv(folder / "dev_matched.tsv", dev_header, [
        mnli_row(0, "It rains.", "It is wet.", *["entailment"] * 5, "entailment"),
        mnli_row(1, "It rains.", "It is dry.", *["contradiction"] * 4, "neutral", "contradiction"),
    ])
    write_tsv(folder / "dev_mismatched.tsv", dev_header, [
        mnli_row(0, "He left.", "He is tall.", *["neutral"] * 5, "neutral"),
    ])
    write_tsv(folder / "test_matched.tsv", MNLI_TEXT_COLUMNS, [mnli_row(0, "She ran.", "She moved.")])
    write_tsv(folder / "test_mismatched.tsv", MNLI_TEXT_COLUMNS, [mnli_row(0, "We ate.", "We were hungry.")])


def write_qqp(folder: Path) -> None:
    header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"
    write_tsv(folder / "train.tsv", header, [
        "0\t1\t2\tHow do I learn Python?\tWhat is the best way to learn Python?\t1",
        "1\t3\t4\tWhy is the sky blue?\tHow tall is Everest?\t0",
    ])
    write_tsv(folder / "dev.tsv", header, ["2\t5\t6\tWhat is AI?\tWhat is artificial intelligence?\t1"])
    write_tsv(folder / "test.tsv", "id\tquestion1\tquestion2", ["0\tIs tea healthy?\tIs coffee healthy?"])


@pytest.fixture
def data_root(tmp_path) -> Path:
    """A data root holding glue/<Task>/ for all nine tasks."""
    shutil.copytree(EMBEDDED_GLUE, tmp_path / "data" / "glue")
    write_mnli(tmp_path / "data" / "glue" / "MNLI")
    write_qqp(tmp_path / "data" / "glue" / "QQP")
    return tmp_path / "data"


def one_line_user_error(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


# --- reading the original layout -------------------------------------------------------------


@pytest.mark.parametrize("name", list(FOLDERS))
def test_reads_from_the_data_root_the_glue_folder_and_the_task_folder(name, data_root):
    task = get_task(name)
    task_folder = data_root / "glue" / FOLDERS[name]
    loaded = [task.load("dir", str(path)) for path in (data_root, data_root / "glue", task_folder)]
    assert all(data.splits == loaded[0].splits for data in loaded)
    data = loaded[0]
    assert (data.source, data.location, data.sample) == ("dir", str(task_folder), False)
    for split in (task.train_split, *task.eval_splits):
        rows = data.splits[split]
        assert rows
        for row in rows:
            assert set(row) == {"text", "text_pair", "label"}
            assert isinstance(row["text"], str) and row["text"]
            assert (row["text_pair"] is None) == (name in ("cola", "sst2"))
            if task.is_regression:
                assert isinstance(row["label"], float) and 0.0 <= row["label"] <= 5.0
            else:
                assert row["label"] in range(task.num_labels)


def test_data_dir_defaults_to_peftbench_data(data_root, monkeypatch):
    monkeypatch.setenv("PEFTBENCH_DATA", str(data_root))
    assert get_task("rte").load("dir", None).location == str(data_root / "glue" / "RTE")


def test_label_names_and_order_match_nyu_mll_glue():
    for name, label_names in HUB_LABEL_NAMES.items():
        task = get_task(name)
        assert task.label_names == label_names
        assert task.num_labels == (len(label_names) or 1)
        assert task.is_regression == (name == "stsb")


@pytest.mark.parametrize(
    "folder, header, rows, expected",
    [
        ("RTE", "index\tsentence1\tsentence2\tlabel",
         ["0\tA b.\tA.\tentailment", "1\tA b.\tC.\tnot_entailment"], [0, 1]),
        ("QNLI", "index\tquestion\tsentence\tlabel",
         ["0\tWho?\tHe did.\tnot_entailment", "1\tWho?\tShe did.\tentailment"], [1, 0]),
        ("WNLI", "index\tsentence1\tsentence2\tlabel", ["0\tA.\tB.\t1", "1\tA.\tC.\t0"], [1, 0]),
        ("SST-2", "sentence\tlabel", ["a fine film \t1", "dull \t0"], [1, 0]),
        ("STS-B", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
         ["0\tmain-news\tx\t2012\t0\tnone\tnone\tA.\tB.\t3.800", "1\tmain-news\tx\t2012\t1\tnone\tnone\tC.\tD.\t0.000"],
         [3.8, 0.0]),
    ],
)
def test_file_labels_map_to_the_hub_label_indices(tmp_path, folder, header, rows, expected):
    write_tsv(tmp_path / folder / "train.tsv", header, rows)
    write_tsv(tmp_path / folder / "dev.tsv", header, rows)
    name = {value: key for key, value in FOLDERS.items()}[folder]
    data = get_task(name).load("dir", str(tmp_path))
    assert [row["label"] for row in data.splits["validation"]] == expected


def test_cola_labelled_files_have_no_header_and_test_has_one(tmp_path):
    folder = tmp_path / "CoLA"
    write_tsv(folder / "train.tsv", None, ["gj04\t1\t\tThe dog barked.", "gj04\t0\t*\tThe dog barked the cat."])
    write_tsv(folder / "dev.tsv", None, ["bc01\t0\t*\tHim left."])
    write_tsv(folder / "test.tsv", "index\tsentence", ["0\tShe sang.", "1\tSang she the."])
    splits = get_task("cola").load("dir", str(folder)).splits
    assert splits["train"] == [
        {"text": "The dog barked.", "text_pair": None, "label": 1},
        {"text": "The dog barked the cat.", "text_pair": None, "label": 0},
    ]
    assert splits["validation"] == [{"text": "Him left.", "text_pair": None, "label": 0}]
    assert splits["test"] == [
        {"text": "She sang.", "text_pair": None, "label": None},
        {"text": "Sang she the.", "text_pair": None, "label": None},
    ]


def test_cola_rows_match_the_raw_embedded_lines():
    data = get_task("cola").load("embedded", None)
    raw = (EMBEDDED_GLUE / "CoLA" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    assert [(row["label"], row["text"]) for row in data.splits["validation"]] == [
        (int(line.split("\t")[1]), line.split("\t")[3]) for line in raw
    ]


def test_mrpc_header_with_a_byte_order_mark_is_read_by_name(tmp_path):
    folder = tmp_path / "MRPC"
    rows = ["1\t11\t12\tHe came .\tHe arrived .", "0\t13\t14\tShe left .\tIt rained ."]
    write_tsv(folder / "train.tsv", MRPC_HEADER, rows)
    write_tsv(folder / "dev.tsv", MRPC_HEADER, rows[:1])
    write_tsv(folder / "test.tsv", "index\t#1 ID\t#2 ID\t#1 String\t#2 String", ["0\t15\t16\tA .\tB ."])
    assert (folder / "train.tsv").read_bytes().startswith(b"\xef\xbb\xbfQuality")
    splits = get_task("mrpc").load("dir", str(folder)).splits
    assert splits["train"] == [
        {"text": "He came .", "text_pair": "He arrived .", "label": 1},
        {"text": "She left .", "text_pair": "It rained .", "label": 0},
    ]
    assert splits["test"] == [{"text": "A .", "text_pair": "B .", "label": None}]


def test_mrpc_train_is_rebuilt_from_the_msr_file_minus_the_dev_ids(tmp_path):
    folder = tmp_path / "MRPC"
    # train.tsv lacks the pair 21/22, as the staged copy lacks one pair; the rebuild restores it.
    write_tsv(folder / "train.tsv", MRPC_HEADER, ["1\t11\t12\tHe came .\tHe arrived ."])
    write_tsv(folder / "dev.tsv", MRPC_HEADER, ["0\t31\t32\tDev one .\tDev two ."])
    write_tsv(folder / "msr_paraphrase_train.txt", MRPC_HEADER, [
        "1\t11\t12\tHe came .\tHe arrived .",
        '1\t21\t22\tAn " extremely " sad day .\t" This is " a sad day . ',
        "0\t31\t32\tDev one .\tDev two .",
        "0\t41\t42\tX .\tY .",
    ])
    write_tsv(folder / "dev_ids.tsv", None, ["31\t32"])
    train = get_task("mrpc").load("dir", str(folder)).splits["train"]
    assert train == [
        {"text": "He came .", "text_pair": "He arrived .", "label": 1},
        {"text": 'An " extremely " sad day .', "text_pair": '" This is " a sad day .', "label": 1},
        {"text": "X .", "text_pair": "Y .", "label": 0},
    ]
    (folder / "dev_ids.tsv").unlink()
    assert len(get_task("mrpc").load("dir", str(folder)).splits["train"]) == 1


def test_mnli_has_matched_and_mismatched_eval_splits(data_root):
    task = get_task("mnli")
    assert task.eval_splits == ("validation_matched", "validation_mismatched")
    assert task.main_split == "validation_matched"
    splits = task.load("dir", str(data_root)).splits
    assert sorted(splits) == sorted(["train", *task.eval_splits, "test_matched", "test_mismatched"])
    assert [row["label"] for row in splits["train"]] == [0, 1, 2]
    assert [row["label"] for row in splits["validation_matched"]] == [0, 2]
    assert splits["validation_mismatched"] == [{"text": "He left.", "text_pair": "He is tall.", "label": 1}]
    assert splits["test_matched"] == [{"text": "She ran.", "text_pair": "She moved.", "label": None}]


def test_qqp_reads_its_own_column_names(data_root):
    splits = get_task("qqp").load("dir", str(data_root)).splits
    assert splits["train"][0] == {
        "text": "How do I learn Python?", "text_pair": "What is the best way to learn Python?", "label": 1,
    }
    assert splits["test"] == [{"text": "Is tea healthy?", "text_pair": "Is coffee healthy?", "label": None}]


def test_blank_lines_are_skipped(tmp_path):
    write_tsv(tmp_path / "RTE" / "train.tsv", RTE_HEADER, ["0\tA.\tB.\tentailment", "", "1\tA.\tC.\tnot_entailment", ""])
    write_tsv(tmp_path / "RTE" / "dev.tsv", RTE_HEADER, ["0\tA.\tB.\tentailment"])
    assert [row["label"] for row in get_task("rte").load("dir", str(tmp_path)).splits["train"]] == [0, 1]


def test_test_split_is_optional_and_train_eval_splits_are_required(data_root):
    folder = data_root / "glue" / "RTE"
    write_tsv(folder / "test.tsv", "index\tsentence1\tsentence2", ["0\tA.\tB."])
    assert get_task("rte").load("dir", str(folder)).splits["test"] == [{"text": "A.", "text_pair": "B.", "label": None}]
    (folder / "test.tsv").unlink()
    assert "test" not in get_task("rte").load("dir", str(folder)).splits


# --- errors a user can cause ------------------------------------------------------------------


def test_missing_folder_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(UserError) as excinfo:
        get_task("rte").load("dir", str(tmp_path / "nowhere"))
    message = one_line_user_error(excinfo)
    assert str(tmp_path / "nowhere") in message and "data.dir=" in message and "PEFTBENCH_DATA" in message


def test_no_data_dir_at_all_is_a_user_error(monkeypatch):
    monkeypatch.delenv("PEFTBENCH_DATA", raising=False)
    with pytest.raises(UserError) as excinfo:
        get_task("rte").load("dir", None)
    assert "PEFTBENCH_DATA" in one_line_user_error(excinfo)


def test_missing_train_file_names_it(data_root):
    (data_root / "glue" / "QNLI" / "train.tsv").unlink()
    with pytest.raises(UserError) as excinfo:
        get_task("qnli").load("dir", str(data_root))
    assert str(data_root / "glue" / "QNLI" / "train.tsv") in one_line_user_error(excinfo)



@pytest.mark.parametrize(
    "bad_row, line, problem",
    [
        ("2\tA.\tB.", 4, "expected 4 tab-separated columns, found 3"),
        ("2\tA.\tB.\tneutral", 4, "label 'neutral' is not one of entailment, not_entailment"),
    ],
)
def test_malformed_row_names_the_file_and_line(tmp_path, bad_row, line, problem):
    write_tsv(tmp_path / "RTE" / "train.tsv", RTE_HEADER, ["0\tA.\tB.\tentailment"])
    write_tsv(tmp_path / "RTE" / "dev.tsv", RTE_HEADER, ["0\tA.\tB.\tentailment", "1\tA.\tC.\tnot_entailment", bad_row])
    with pytest.raises(UserError) as excinfo:
        get_task("rte").load("dir", str(tmp_path))
    message = one_line_user_error(excinfo)
    assert message.startswith(f"{tmp_path / 'RTE' / 'dev.tsv'}:{line}: {problem}")


def test_unparsable_score_names_the_file_and_line(tmp_path):
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    row = "0\tmain-news\tx\t2012\t0\tnone\tnone\tA.\tB.\t{}"
    write_tsv(tmp_path / "STS-B" / "train.tsv", header, [row.format("1.0"), row.format("four")])
    write_tsv(tmp_path / "STS-B" / "dev.tsv", header, [row.format("2.5")])
    with pytest.raises(UserError) as excinfo:
        get_task("stsb").load("dir", str(tmp_path))
    assert one_line_user_error(excinfo).startswith(f"{tmp_path / 'STS-B' / 'train.tsv'}:3: score 'four' is not a number")


def test_headerless_cola_counts_lines_from_the_first_row(tmp_path):
    write_tsv(tmp_path / "CoLA" / "train.tsv", None, ["gj04\t1\t\tGood.", "gj04\t7\t\tBad label."])
    write_tsv(tmp_path / "CoLA" / "dev.tsv", None, ["gj04\t1\t\tGood."])
    with pytest.raises(UserError) as excinfo:
        get_task("cola").load("dir", str(tmp_path))
    assert one_line_user_error(excinfo).startswith(f"{tmp_path / 'CoLA' / 'train.tsv'}:2: label '7'")


def test_malformed_msr_line_names_the_file_and_line(tmp_path):
    folder = tmp_path / "MRPC"
    write_tsv(folder / "dev.tsv", MRPC_HEADER, ["0\t31\t32\tA .\tB ."])
    write_tsv(folder / "msr_paraphrase_train.txt", MRPC_HEADER, ["1\t11\t12\tA .\tB .", "1\t21\tonly three"])
    write_tsv(folder / "dev_ids.tsv", None, ["31\t32"])
    with pytest.raises(UserError) as excinfo:
        get_task("mrpc").load("dir", str(folder))
    assert one_line_user_error(excinfo).startswith(f"{folder / 'msr_paraphrase_train.txt'}:3: expected 5")


def test_missing_header_column_is_a_user_error(tmp_path):
    write_tsv(tmp_path / "RTE" / "train.tsv", "index\tpremise\thypothesis\tlabel", ["0\tA.\tB.\tentailment"])
    write_tsv(tmp_path / "RTE" / "dev.tsv", RTE_HEADER, ["0\tA.\tB.\tentailment"])
    with pytest.raises(UserError) as excinfo:
        get_task("rte").load("dir", str(tmp_path))
    message = one_line_user_error(excinfo)
    assert str(tmp_path / "RTE" / "train.tsv") in message and "'sentence1'" in message


def test_empty_split_is_a_user_error(tmp_path):
    write_tsv(tmp_path / "RTE" / "train.tsv", RTE_HEADER, ["0\tA.\tB.\tentailment"])
    write_tsv(tmp_path / "RTE" / "dev.tsv", RTE_HEADER, [])
    with pytest.raises(UserError) as excinfo:
        get_task("rte").load("dir", str(tmp_path))
    assert one_line_user_error(excinfo).startswith(f"{tmp_path / 'RTE' / 'dev.tsv'} has no rows")


def test_unknown_source_and_missing_embedded_slice_are_user_errors():
    with pytest.raises(UserError) as excinfo:
        get_task("rte").load("s3", None)
    assert "dir, hub or embedded" in one_line_user_error(excinfo)
    with pytest.raises(UserError) as excinfo:
        get_task("mnli").load("embedded", None)
    assert "data.dir=" in one_line_user_error(excinfo)


def test_unknown_task_lists_the_known_names():
    with pytest.raises(UserError) as excinfo:
        get_task("sst-2")
    message = one_line_user_error(excinfo)
    assert all(name in message for name in FOLDERS)


def test_registry_lists_the_glue_tasks_in_glue_order():
    assert task_names()[:9] == list(FOLDERS)
    assert all(get_task(name).benchmark == "glue" and get_task(name).name == name for name in FOLDERS)


# --- hub path (load_dataset replaced by in-memory datasets of the hub's layout) -------------------


def hub_split(columns: dict, label_names: tuple[str, ...]):
    import datasets

    label = datasets.ClassLabel(names=list(label_names)) if label_names else datasets.Value("float32")
    features = {name: datasets.Value("string") for name in columns if name != "label"}
    features.update(label=label, idx=datasets.Value("int32"))
    size = len(columns["label"])
    return datasets.Dataset.from_dict({**columns, "idx": list(range(size))}, features=datasets.Features(features))


@pytest.fixture
def fake_hub(monkeypatch):
    import datasets

    calls = []

    def install(dataset_dict):
        def load_dataset(path, name):
            calls.append((path, name))
            return dataset_dict

        monkeypatch.setattr(datasets, "load_dataset", load_dataset)
        return calls

    return install


def test_hub_rows_and_missing_test_labels(fake_hub):
    import datasets

    names = HUB_LABEL_NAMES["rte"]
    calls = fake_hub(datasets.DatasetDict({
        "train": hub_split({"sentence1": ["A.", "B."], "sentence2": ["a", "b"], "label": [0, 1]}, names),
        "validation": hub_split({"sentence1": ["C."], "sentence2": ["c"], "label": [1]}, names),
        "test": hub_split({"sentence1": ["D."], "sentence2": ["d"], "label": [-1]}, names),
    }))
    data = get_task("rte").load("hub", None)
    assert calls == [("nyu-mll/glue", "rte")]
    assert (data.source, data.location, data.sample) == ("hub", "nyu-mll/glue/rte", False)
    assert data.splits == {
        "train": [{"text": "A.", "text_pair": "a", "label": 0}, {"text": "B.", "text_pair": "b", "label": 1}],
        "validation": [{"text": "C.", "text_pair": "c", "label": 1}],
        "test": [{"text": "D.", "text_pair": "d", "label": None}],
    }


def test_hub_mnli_uses_premise_hypothesis_and_its_split_names(fake_hub):
    import datasets

    names = HUB_LABEL_NAMES["mnli"]
    columns = {"premise": ["P."], "hypothesis": ["H."], "label": [2]}
    fake_hub(datasets.DatasetDict({
        split: hub_split(columns, names)
        for split in ("train", "validation_matched", "validation_mismatched", "test_matched", "test_mismatched")
    }))
    data = get_task("mnli").load("hub", None)
    assert set(get_task("mnli").eval_splits) <= set(data.splits)
    assert data.splits["validation_mismatched"] == [{"text": "P.", "text_pair": "H.", "label": 2}]


def test_hub_single_sentence_and_regression_tasks(fake_hub):
    import datasets

    fake_hub(datasets.DatasetDict({"train": hub_split({"sentence": ["ok"], "label": [1]}, HUB_LABEL_NAMES["sst2"])}))
    assert get_task("sst2").load("hub", None).splits["train"] == [{"text": "ok", "text_pair": None, "label": 1}]

    fake_hub(datasets.DatasetDict({
        "validation": hub_split({"sentence1": ["A."], "sentence2": ["B."], "label": [3.8]}, ()),
        "test": hub_split({"sentence1": ["C."], "sentence2": ["D."], "label": [-1.0]}, ()),
    }))
    splits = get_task("stsb").load("hub", None).splits
    assert splits["validation"][0]["label"] == pytest.approx(3.8)
    assert splits["test"][0]["label"] is None


def test_hub_with_other_label_names_is_refused(fake_hub):
    import datasets

    fake_hub(datasets.DatasetDict({
        "train": hub_split({"sentence1": ["A."], "sentence2": ["a"], "label": [0]}, ("not_entailment", "entailment")),
    }))
    with pytest.raises(ValueError, match="labels"):
        get_task("rte").load("hub", None)


def test_unreachable_hub_is_a_user_error(monkeypatch):
    import datasets

    def offline(path, name):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (OfflineModeIsEnabled)\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserError) as excinfo:
        get_task("rte").load("hub", None)
    message = one_line_user_error(excinfo)
    assert "nyu-mll/glue/rte" in message and "OfflineModeIsEnabled" in message and "data.dir=" in message


# --- embedded slices ---------------------------------------------------------------------------

EMBEDDED_ROWS = {
    "sst2": {"train": 4000, "validation": 872},
    **{name: {"train": 64, "validation": 64} for name in ("cola", "mrpc", "stsb", "qnli", "rte", "wnli")},
}


def test_has_embedded_matches_the_shipped_folders():
    for name, folder in FOLDERS.items():
        assert get_task(name).has_embedded == (name in EMBEDDED_ROWS) == (EMBEDDED_GLUE / folder).is_dir()


@pytest.mark.parametrize("name", sorted(EMBEDDED_ROWS))
def test_embedded_slices(name):
    task = get_task(name)
    data = task.load("embedded", None)
    assert (data.source, data.location, data.sample) == ("embedded", str(EMBEDDED_GLUE / FOLDERS[name]), True)
    assert {split: len(rows) for split, rows in data.splits.items()} == EMBEDDED_ROWS[name]
    if not task.is_regression:
        assert {row["label"] for row in data.splits["train"]} == set(range(task.num_labels))


def test_embedded_slices_stay_small():
    total = sum(path.stat().st_size for path in EMBEDDED_GLUE.rglob("*") if path.is_file())
    assert total < 1_200_000


def test_embedded_qnli_train_and_dev_do_not_overlap():
    splits = get_task("qnli").load("embedded", None).splits
    assert not {(r["text"], r["text_pair"]) for r in splits["train"]} & {(r["text"], r["text_pair"]) for r in splits["validation"]}


# --- the full staged copy (skipped where absent) ---------------------------------------------------

needs_shared_data = pytest.mark.skipif(not (SHARED_DATA / "glue").is_dir(), reason=f"no GLUE copy at {SHARED_DATA}")

# Row counts from ../shared/data/MANIFEST.md (MRPC train after the rebuild); MNLI and QQP, which are
# not staged, at their published sizes.
MANIFEST_ROWS = {
    "cola": {"train": 8551, "validation": 1043, "test": 1063},
    "sst2": {"train": 67349, "validation": 872, "test": 1821},
    "mrpc": {"train": 3668, "validation": 408, "test": 1725},
    "stsb": {"train": 5749, "validation": 1500, "test": 1379},
    "rte": {"train": 2490, "validation": 277, "test": 3000},
    "wnli": {"train": 635, "validation": 71, "test": 146},
    "mnli": {"train": 392702, "validation_matched": 9815, "validation_mismatched": 9832,
             "test_matched": 9796, "test_mismatched": 9847},
    "qqp": {"train": 363846, "validation": 40430, "test": 390965},
}


@needs_shared_data
@pytest.mark.parametrize("name", sorted(MANIFEST_ROWS))
def test_shared_glue_copy_loads_with_the_manifest_row_counts(name):
    if not (SHARED_DATA / "glue" / FOLDERS[name]).is_dir():
        pytest.skip(f"{FOLDERS[name]} is not staged")
    data = get_task(name).load("dir", str(SHARED_DATA))
    assert {split: len(rows) for split, rows in data.splits.items()} == MANIFEST_ROWS[name]


@needs_shared_data
def test_shared_mrpc_rebuild_adds_exactly_the_pair_missing_from_train_tsv(tmp_path):
    staged = SHARED_DATA / "glue" / "MRPC"
    rebuilt = get_task("mrpc").load("dir", str(staged)).splits["train"]
    for file_name in ("train.tsv", "dev.tsv"):
        shutil.copy(staged / file_name, tmp_path / file_name)
    from_train_tsv = get_task("mrpc").load("dir", str(tmp_path)).splits["train"]
    assert len(from_train_tsv) == 3667
    missing = [row for row in rebuilt if row not in from_train_tsv]
    assert missing == [{
        "text": 'Officials at Brandeis said this was an " extremely heartrending " time for the campus .',
        "text_pair": '" This is an extremely heartrending time for the entire Brandeis University community .',
        "label": 1,
    }]
    assert [row for row in rebuilt if row != missing[0]] == from_train_tsv


@needs_shared_data
def test_shared_qnli_copy_lacks_its_train_file():
    with pytest.raises(UserError, match="QNLI/train.tsv"):
        get_task("qnli").load("dir", str(SHARED_DATA))


@needs_shared_data
def test_the_script_regenerates_the_shipped_slices_byte_for_byte(tmp_path):
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "make_embedded_slices.py"),
         "--glue", str(SHARED_DATA / "glue"), "--out", str(tmp_path)],
        check=True, capture_output=True,
    )
    shipped = sorted(path.relative_to(EMBEDDED_GLUE) for path in EMBEDDED_GLUE.rglob("*.tsv"))
    assert shipped == sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*.tsv"))
    for relative in shipped:
        assert (tmp_path / relative).read_bytes() == (EMBEDDED_GLUE / relative).read_bytes(), relative
