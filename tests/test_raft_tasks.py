"""RAFT tasks: names, rows from the csv files and the hub, prompts, folds, macro-F1, submissions.

Everything runs on the embedded files and on small csv files written in tmp; the check against the
full staged copy (../shared/data/raft, or $PEFTBENCH_SHARED_DATA/raft) is skipped where it is absent.
"""

import csv
import gzip
import hashlib
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from peftbench.errors import UserError
from peftbench.tasks import get_task, raft, task_names
from peftbench.tasks.folds import cross_validation_split, fold_assignment
from peftbench.tasks.metrics import macro_f1
from peftbench.tasks.raft_submission import write_submission

REPO_ROOT = Path(__file__).resolve().parents[1]
EMBEDDED_RAFT = REPO_ROOT / "peftbench" / "tasks" / "data" / "raft"
SHARED_RAFT = Path(os.environ.get("PEFTBENCH_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")) / "raft"

# The paper's eleven tasks, in its order.
BENCHMARK = [
    "raft_ade_corpus_v2", "raft_banking_77", "raft_neurips_impact_statement_risks", "raft_one_stop_english",
    "raft_overruling", "raft_semiconductor_org_types", "raft_systematic_review_inclusion",
    "raft_tai_safety_research", "raft_terms_of_service", "raft_tweet_eval_hate", "raft_twitter_complaints",
]
EXTRA = "raft_medical_subdomain_of_clinical_notes"
# sha256 of task.json and train.csv in oughtinc/raft-baselines@1f410eea45db (../shared/data/MANIFEST.md).
SHA256 = {
    "ade_corpus_v2": ("9f6b7f0593f45ead31ecd4e99d4322258270d6c2971d7e0245a425762bf7b7aa",
                      "b6c1268b8ce0fbf4fcaa0ee88562354b65d7ebd2527c3c3cc875e3a47757ae36"),
    "banking_77": ("899c2c5be4f9f305a27bc1f44bb8b349cee94030a6e9a405b75856bf65eadc3f",
                   "8c417cea66d12569cb3057b125a98358aea0642dda67cf6deea52d4ec1c28ae1"),
    "neurips_impact_statement_risks": ("c949ddbfb09efc9262156c3a8c3d38d31f70c99118864863941bc13975d12962",
                                       "76cd6aa2707cd99445ba69f8c392a89faa4bf718e967b07dc457f88529b3ff2e"),
    "one_stop_english": ("424af33b0e623e1a874b7a23a550e5c1ead905c3212859978d52380c721408ba",
                         "8c0102ea703677c23c3525e3bc7504c4b734d9298c5d3a25403d274034cb9d89"),
    "overruling": ("e2cebe970d8fbb5dc09bcb04747ce4ba73629ad80d01a6b2f5e549d15a407a4b",
                   "617061ba0dbd501d74896ccf2f9ebed00c35c4c4057f74afdd94c96cb514130e"),
    "semiconductor_org_types": ("4c1532b46e59a67e7537acb06ffe679f7cd7dffe5c6012d56d1da4f75995a1bf",
                                "b7e238cbfd0ed518c222b64e8656599ed13872de135c6e38d6f6123c355d2f64"),
    "systematic_review_inclusion": ("df1b1230b3f7bcf4ffe1be718a7c373dd745e08fad15869c2e4f95023d6f4d46",
                                    "2d2acd76f6acf1fd1359cf07323586fa134bbe76689e112f5c213b63271e2318"),
    "tai_safety_research": ("d5b1d148b9c40649a2f3e11b3d695280ccbd3cc62f1bd45abd9cb949a74a4141",
                            "fac15dde8a9f5536424289aa707dcfe1fa3128a7ee2d813cf3251c53092f7dbc"),
    "terms_of_service": ("e6cd3be4e5e80c460ffae504ee8eb9a0e3c907c3bbad0d0e6c9eef3d104f5c0d",
                         "8b46784b1e601d753ad44ce33fced828ec3bea95b6b575a2195322ead807f6c7"),
    "tweet_eval_hate": ("3521d3fa3c4e16810036ab22a8c3eee6372f27f26033936f80c9072f0ff15564",
                        "ab091c90e8afbb0dabe17cc6be93b1b80fd914e00a12d66b2dd7b194f355ba65"),
    "twitter_complaints": ("7dc144c959822d413d8233ef066cb3e04b260a35ea30a97a3cdac2651112a09c",
                           "365b067c2d2a7f30128d766baf4901936e047295bb2a693878164dbb84d828fa"),
}
SOT = "semiconductor_org_types"  # two data columns, three labels
SOT_HEADER = ["Paper title", "Organization name", "Label", "ID"]


def one_line_user_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def sot_folder(root: Path, train_rows: list[list], test_rows: list[list] | None = None) -> Path:
    folder = root / "raft" / SOT
    folder.mkdir(parents=True)
    shutil.copy(EMBEDDED_RAFT / SOT / "task.json", folder / "task.json")
    write_csv(folder / "train.csv", SOT_HEADER, train_rows)
    if test_rows is not None:
        write_csv(folder / "test_unlabeled.csv", ["Paper title", "Organization name", "ID"], test_rows)
    return folder


# --- names and task definitions -------------------------------------------------------------------


def test_the_eleven_benchmark_tasks_and_the_extra_one_outside_them():
    assert list(raft.BENCHMARK_TASKS) == BENCHMARK
    assert raft.EXTRA_TASKS == (EXTRA,)
    assert EXTRA not in raft.BENCHMARK_TASKS
    assert list(raft.TASKS) == [*BENCHMARK, EXTRA]
    assert [name for name in task_names() if name.startswith("raft_")] == [*BENCHMARK, EXTRA]
    assert all(get_task(name).benchmark == "raft" for name in BENCHMARK)
    assert get_task(EXTRA).benchmark == "raft_extra" and not get_task(EXTRA).has_embedded
    assert [raft.PAPER_ABBREVIATIONS[name[len("raft_"):]] for name in BENCHMARK] == [
        "ADE", "B77", "NIS", "OSE", "Over", "SOT", "SRI", "TAI", "ToS", "TEH", "TC"
    ]


@pytest.mark.parametrize("name", [*BENCHMARK, EXTRA])
def test_task_definition_prompt_and_verbalizers(name):
    task = get_task(name)
    spec = raft.spec_for(name)
    assert (task.kind, task.train_split, task.eval_splits) == ("classification", "train", ("validation",))
    assert (task.main_metric, task.metric_names, task.num_labels) == ("macro_f1", ("macro_f1",), len(spec.label_names))
    assert task.label_names == spec.label_names and "Unlabeled" not in task.label_names
    assert len(task.verbalizers) == len(task.label_names) == len(set(task.verbalizers))
    assert all(word.strip() == word and word and "_" not in word for word in task.verbalizers)
    row = {"text": "Column: value\nOther: more", "text_pair": None, "label": None, "id": 7}
    prompt = task.prompt(row)
    instruction = raft.INSTRUCTIONS[spec.folder]
    assert prompt == f"{instruction}\nColumn: value\nOther: more\nLabel:"
    assert 20 < len(instruction) < 300 and "\n" not in instruction


def test_banking77_verbalizers_read_underscores_as_spaces_and_keep_the_label_names():
    task = get_task("raft_banking_77")
    assert len(task.label_names) == 77
    assert task.label_names[22] == "change_pin" and task.verbalizers[22] == "change pin"
    assert task.verbalizers[0] == "Refund not showing up"


# --- embedded files -------------------------------------------------------------------------------


def test_embedded_files_are_the_original_files_byte_for_byte():
    shipped = sorted(path.relative_to(EMBEDDED_RAFT).as_posix() for path in EMBEDDED_RAFT.rglob("*") if path.is_file())
    expected = sorted(
        [f"{folder}/task.json" for folder in SHA256] + [f"{folder}/train.csv.gz" for folder in SHA256]
        + [f"{EXTRA[len('raft_'):]}/task.json", "README.md"]
    )
    assert shipped == expected  # no test files, no medical train file
    for folder, (task_json_sha, train_sha) in SHA256.items():
        assert hashlib.sha256((EMBEDDED_RAFT / folder / "task.json").read_bytes()).hexdigest() == task_json_sha
        train_csv = gzip.decompress((EMBEDDED_RAFT / folder / "train.csv.gz").read_bytes())
        assert hashlib.sha256(train_csv).hexdigest() == train_sha
    assert sum(path.stat().st_size for path in EMBEDDED_RAFT.rglob("*")) < 400_000


@pytest.mark.parametrize("name", BENCHMARK)
def test_embedded_train_split_is_the_full_labelled_split(name):
    task = get_task(name)
    data = task.load("embedded", None)
    assert (data.source, data.sample, list(data.splits)) == ("embedded", False, ["train"])
    rows = data.splits["train"]
    assert [row["id"] for row in rows] == list(range(50))
    assert all(0 <= row["label"] < task.num_labels and row["text_pair"] is None for row in rows)
    assert all(row["text"] and not row["text"].startswith("ID:") for row in rows)
    assert all(task.prompt(row).endswith("\nLabel:") for row in rows)


def test_embedded_first_rows_match_the_hub_dataset_card():
    # ought/raft dataset card, "Data Instances": each task's first train row and its hub label.
    card = {
        "raft_ade_corpus_v2": ("Sentence: No regional side effects were noted.", 2),
        "raft_banking_77": ("Query: Is it possible for me to change my PIN number?", 23),
        "raft_overruling": ("Sentence: in light of both our holding today", 2),
        "raft_semiconductor_org_types": ("Paper title: 3Gb/s AC-coupled chip-to-chip communication", 3),
        "raft_twitter_complaints": ("Tweet text: @HMRCcustomers No this is my first job", 2),
    }
    for name, (start, hub_label) in card.items():
        first = get_task(name).load("embedded", None).splits["train"][0]
        assert first["text"].startswith(start) and first["label"] == hub_label - 1 and first["id"] == 0


def test_extra_task_has_no_embedded_data():
    with pytest.raises(UserError) as excinfo:
        get_task(EXTRA).load("embedded", None)
    assert "data.dir=" in one_line_user_error(excinfo)


# --- the csv layout -------------------------------------------------------------------------------


def test_multi_column_text_string_labels_and_ids(tmp_path):
    sot_folder(
        tmp_path,
        [["A 3Gb/s receiver", "North Carolina State Univ.,Raleigh,NC,USA", "university", "0"],
         ["Sub-Micron TFTs", "  Sony, Tokyo ", "company", "1"],
         ["", "imec,Leuven,Belgium", "research institute", "2"]],
        [["Line one\nline two", "Intel,Hillsboro,OR", "50"]],
    )
    data = get_task("raft_semiconductor_org_types").load("dir", str(tmp_path))
    assert data.splits["train"] == [
        {"text": "Paper title: A 3Gb/s receiver\nOrganization name: North Carolina State Univ.,Raleigh,NC,USA",
         "text_pair": None, "label": 2, "id": 0},
        {"text": "Paper title: Sub-Micron TFTs\nOrganization name: Sony, Tokyo", "text_pair": None,
         "label": 0, "id": 1},
        {"text": "Organization name: imec,Leuven,Belgium", "text_pair": None, "label": 1, "id": 2},
    ]
    assert data.splits["test"] == [
        {"text": "Paper title: Line one\nline two\nOrganization name: Intel,Hillsboro,OR",
         "text_pair": None, "label": None, "id": 50},
    ]
    assert get_task("raft_semiconductor_org_types").prompt(data.splits["train"][0]) == (
        f"{raft.INSTRUCTIONS[SOT]}\nPaper title: A 3Gb/s receiver\n"
        "Organization name: North Carolina State Univ.,Raleigh,NC,USA\nLabel:"
    )


def test_data_dir_may_be_the_root_the_raft_folder_or_the_task_folder(tmp_path):
    folder = sot_folder(tmp_path, [["T", "O", "company", "0"]])
    task = get_task("raft_semiconductor_org_types")
    loaded = [task.load("dir", str(path)) for path in (tmp_path, tmp_path / "raft", folder)]
    assert all(data.location == str(folder) and data.source == "dir" for data in loaded)
    assert all(data.splits == {"train": [{"text": "Paper title: T\nOrganization name: O", "text_pair": None,
                                          "label": 0, "id": 0}]} for data in loaded)


def test_gzipped_csv_reads_as_the_plain_one(tmp_path):
    folder = sot_folder(tmp_path, [["T", "O", "company", "0"]])
    plain = get_task("raft_semiconductor_org_types").load("dir", str(folder)).splits
    (folder / "train.csv.gz").write_bytes(gzip.compress((folder / "train.csv").read_bytes()))
    (folder / "train.csv").unlink()
    assert get_task("raft_semiconductor_org_types").load("dir", str(folder)).splits == plain


def test_data_dir_from_the_environment(tmp_path, monkeypatch):
    sot_folder(tmp_path, [["T", "O", "company", "0"]])
    monkeypatch.setenv("PEFTBENCH_DATA", str(tmp_path))
    assert get_task("raft_semiconductor_org_types").load("dir", None).splits["train"][0]["label"] == 0


def test_missing_and_wrong_folders_are_user_errors(tmp_path, monkeypatch):
    task = get_task("raft_semiconductor_org_types")
    monkeypatch.delenv("PEFTBENCH_DATA", raising=False)
    with pytest.raises(UserError) as excinfo:
        task.load("dir", None)
    assert "data.dir=" in one_line_user_error(excinfo)
    with pytest.raises(UserError) as excinfo:
        task.load("dir", str(tmp_path / "nowhere"))
    message = one_line_user_error(excinfo)
    assert str(tmp_path / "nowhere") in message and "raft/semiconductor_org_types" in message
    (tmp_path / "raft" / SOT).mkdir(parents=True)  # the folder, but no train.csv
    with pytest.raises(UserError) as excinfo:
        task.load("dir", str(tmp_path))
    assert str(tmp_path / "raft" / SOT / "train.csv") in one_line_user_error(excinfo)


def test_another_tasks_folder_is_a_user_error(tmp_path):
    other = tmp_path / "overruling"
    other.mkdir()
    shutil.copy(EMBEDDED_RAFT / "overruling" / "task.json", other / "task.json")
    write_csv(other / "train.csv", ["Sentence", "Label", "ID"], [["s", "overruling", "0"]])
    with pytest.raises(UserError) as excinfo:
        get_task("raft_semiconductor_org_types").load("dir", str(other))
    assert "'overruling'" in one_line_user_error(excinfo)


def test_bad_labels_columns_and_rows_are_user_errors(tmp_path):
    task = get_task("raft_semiconductor_org_types")
    folder = sot_folder(tmp_path, [["T", "O", "startup", "0"]])
    with pytest.raises(UserError) as excinfo:
        task.load("dir", str(folder))
    assert f"{folder / 'train.csv'}:2: label 'startup'" in one_line_user_error(excinfo)
    write_csv(folder / "train.csv", ["Paper title", "Label", "ID"], [["T", "company", "0"]])
    with pytest.raises(UserError) as excinfo:
        task.load("dir", str(folder))
    assert "'Organization name'" in one_line_user_error(excinfo)
    write_csv(folder / "train.csv", SOT_HEADER, [["T", "O", "company"]])
    with pytest.raises(UserError) as excinfo:
        task.load("dir", str(folder))
    assert "expected 4 comma-separated columns" in one_line_user_error(excinfo)
    write_csv(folder / "train.csv", SOT_HEADER, [])
    with pytest.raises(UserError) as excinfo:
        task.load("dir", str(folder))
    assert "has no rows" in one_line_user_error(excinfo)


def test_unknown_source_is_a_user_error():
    with pytest.raises(UserError) as excinfo:
        get_task("raft_overruling").load("s3", None)
    assert "dir, hub or embedded" in one_line_user_error(excinfo)


# --- the hub path (load_dataset replaced by in-memory datasets of ought/raft's layout) -----------


def hub_split(spec, columns: dict, labels: list[int]):
    import datasets

    features = {name: datasets.Value("string") for name in columns}
    features.update(ID=datasets.Value("int32"), Label=datasets.ClassLabel(names=["Unlabeled", *spec.label_names]))
    return datasets.Dataset.from_dict(
        {**columns, "ID": list(range(len(labels))), "Label": labels}, features=datasets.Features(features)
    )


@pytest.fixture
def fake_hub(monkeypatch):
    import datasets

    calls = []

    def install(loader):
        def load_dataset(path, name):
            calls.append((path, name))
            return loader(path, name)

        monkeypatch.setattr(datasets, "load_dataset", load_dataset)
        return calls

    return install


def test_hub_integer_labels_are_shifted_past_unlabeled(fake_hub, tmp_path):
    import datasets

    spec = raft.spec_for("raft_semiconductor_org_types")
    titles, orgs = ["T1", "T2", "T3"], ["O1", "O2", ""]
    calls = fake_hub(lambda path, name: datasets.DatasetDict({
        "train": hub_split(spec, {"Paper title": titles, "Organization name": orgs}, [1, 3, 2]),
        "test": hub_split(spec, {"Paper title": ["X"], "Organization name": ["Y"]}, [0]),
    }))
    data = get_task("raft_semiconductor_org_types").load("hub", None)
    assert calls == [("ought/raft", "semiconductor_org_types")]
    assert (data.source, data.location, data.sample) == ("hub", "ought/raft/semiconductor_org_types", False)
    assert [row["label"] for row in data.splits["train"]] == [0, 2, 1]
    assert data.splits["test"] == [{"text": "Paper title: X\nOrganization name: Y", "text_pair": None,
                                    "label": None, "id": 0}]
    # The same rows written as the csv files spell them load identically.
    sot_folder(tmp_path, [[t, o, spec.label_names[k - 1], str(i)] for i, (t, o, k) in
                          enumerate(zip(titles, orgs, [1, 3, 2]))])
    assert get_task("raft_semiconductor_org_types").load("dir", str(tmp_path)).splits["train"] == data.splits["train"]


def test_hub_label_names_must_match(fake_hub):
    import datasets

    spec = raft.spec_for("raft_overruling")
    fake_hub(lambda path, name: datasets.DatasetDict({
        "train": hub_split(spec, {"Sentence": ["s"]}, [1]).cast_column(
            "Label", datasets.ClassLabel(names=["Unlabeled", "overruling", "not overruling"])
        ),
    }))
    with pytest.raises(ValueError, match="labels"):
        get_task("raft_overruling").load("hub", None)


def test_hub_offline_is_a_user_error_naming_data_dir(fake_hub):
    def offline(path, name):
        raise ConnectionError("Couldn't reach 'ought/raft' on the Hub (OfflineModeIsEnabled)\nmore detail")

    fake_hub(offline)
    with pytest.raises(UserError) as excinfo:
        get_task("raft_overruling").load("hub", None)
    message = one_line_user_error(excinfo)
    assert "ought/raft/overruling" in message and "OfflineModeIsEnabled" in message
    assert "data.dir=" in message and "data.source=embedded" in message


# --- folds ----------------------------------------------------------------------------------------


def labelled(labels):
    return [{"text": str(i), "text_pair": None, "label": label, "id": i} for i, label in enumerate(labels)]


@pytest.mark.parametrize("name", ["raft_ade_corpus_v2", "raft_banking_77", "raft_systematic_review_inclusion"])
@pytest.mark.parametrize("folds", [2, 5, 10])
def test_folds_partition_the_fifty_rows(name, folds):
    rows = get_task(name).load("embedded", None).splits["train"]
    seen = []
    for fold in range(folds):
        train_rows, validation_rows = cross_validation_split(rows, folds, fold, seed=3)
        assert cross_validation_split(rows, folds, fold, seed=3) == (train_rows, validation_rows)
        ids = {row["id"] for row in validation_rows}
        assert ids.isdisjoint(row["id"] for row in train_rows)
        assert len(train_rows) + len(validation_rows) == 50
        assert len(validation_rows) in (50 // folds, -(-50 // folds))
        assert [r["id"] for r in train_rows] == sorted(r["id"] for r in train_rows)  # original order
        seen += ids
    assert sorted(seen) == list(range(50))  # each row validated exactly once


def test_folds_are_stratified_when_every_class_fills_every_fold():
    labels = [0] * 23 + [1] * 17 + [2] * 10
    assignment = fold_assignment(labels, 5, seed=0)
    for fold in range(5):
        counts = Counter(label for label, k in zip(labels, assignment) if k == fold)
        assert all(abs(counts[c] - total / 5) < 1 for c, total in Counter(labels).items())
    assert Counter(assignment) == {k: 10 for k in range(5)}
    ade = [row["label"] for row in get_task("raft_ade_corpus_v2").load("embedded", None).splits["train"]]
    for fold in range(5):
        counts = Counter(label for label, k in zip(ade, fold_assignment(ade, 5, seed=1)) if k == fold)
        assert all(abs(counts[c] - total / 5) < 1 for c, total in Counter(ade).items())


def test_folds_fall_back_to_a_seeded_shuffle_when_a_class_is_rare():
    labels = [0] * 46 + [1] * 4  # class 1 cannot fill 5 folds
    assignment = fold_assignment(labels, 5, seed=0)
    assert Counter(assignment) == {k: 10 for k in range(5)}
    assert fold_assignment(labels, 5, seed=0) == assignment
    assert fold_assignment(labels, 5, seed=1) != assignment  # the seed picks the shuffle
    # The plain shuffle: position p of the seeded permutation goes to fold p mod K.
    import random

    order = list(range(50))
    random.Random(0).shuffle(order)
    assert [assignment[index] for index in order] == [p % 5 for p in range(50)]


def test_fold_arguments_are_checked():
    rows = labelled([0, 1] * 5)
    for folds, fold in [(1, 0), (11, 0), (5, 5), (5, -1), (2.0, 0), (5, "1")]:
        with pytest.raises(UserError) as excinfo:
            cross_validation_split(rows, folds, fold, seed=0)
        assert "data.fold" in one_line_user_error(excinfo)
    with pytest.raises(UserError, match="labelled"):
        cross_validation_split(labelled([0, None, 1, 1]), 2, 0, seed=0)


# --- metric ---------------------------------------------------------------------------------------


def test_macro_f1_by_hand():
    # class 0: TP 1 FP 1 FN 1 → 2/4; class 1: TP 2 FP 1 FN 0 → 4/5; class 2: TP 0 FN 1 → 0.
    assert macro_f1([0, 1, 1, 1, 0], [0, 0, 1, 1, 2]) == {"macro_f1": pytest.approx((0.5 + 0.8 + 0.0) / 3)}
    # Classes in neither labels nor predictions do not count; a predicted-only class counts as 0.
    assert macro_f1([0, 0], [0, 0]) == {"macro_f1": 1.0}
    assert macro_f1([0, 1], [0, 0]) == {"macro_f1": pytest.approx((2 / 3 + 0.0) / 2)}
    task = get_task("raft_semiconductor_org_types")
    rows = labelled([0, 0, 1, 1, 2])
    assert task.score([0, 1, 1, 1, 0], rows) == {"macro_f1": pytest.approx(1.3 / 3)}
    with pytest.raises(ValueError):
        macro_f1([0], [0, 1])


# --- submissions ----------------------------------------------------------------------------------


def read_submission(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_submission_csv_round_trip(tmp_path):
    task = get_task("raft_neurips_impact_statement_risks")
    ids, predictions = [50, 51, 52], [0, 1, 0]
    path = write_submission(tmp_path / "data", raft.spec_for(task.name), ids, predictions)
    assert path == tmp_path / "data" / "neurips_impact_statement_risks" / "predictions.csv"
    assert path.read_text(encoding="utf-8").splitlines()[0] == "ID,Label"
    table = read_submission(path)
    assert table[1:] == [["50", "doesn't mention a harmful application"], ["51", "mentions a harmful application"],
                         ["52", "doesn't mention a harmful application"]]
    assert [task.label_names.index(label) for _, label in table[1:]] == predictions
    assert [raft.parse_id(identifier) for identifier, _ in table[1:]] == ids
    # Rewriting replaces the file whole (by folder name or task name, indices or label texts).
    write_submission(tmp_path / "data", raft.spec_for("neurips_impact_statement_risks"), [50], ["mentions a harmful application"])
    assert read_submission(path) == [["ID", "Label"], ["50", "mentions a harmful application"]]
    assert sorted(p.name for p in path.parent.iterdir()) == ["predictions.csv"]  # no temp file left


def test_submission_quotes_labels_and_covers_every_task(tmp_path):
    for name in [*BENCHMARK, EXTRA]:
        task = get_task(name)
        indices = list(range(task.num_labels))
        path = write_submission(tmp_path, raft.spec_for(name), [100 + i for i in indices], indices)
        assert read_submission(path) == [["ID", "Label"], *[[str(100 + i), task.label_names[i]] for i in indices]]


def test_bad_submissions_are_refused(tmp_path):
    with pytest.raises(ValueError):
        write_submission(tmp_path, raft.spec_for("raft_overruling"), [1, 2], [0])
    with pytest.raises(ValueError):
        write_submission(tmp_path, raft.spec_for("raft_overruling"), [1], [2])
    with pytest.raises(ValueError):
        write_submission(tmp_path, raft.spec_for("raft_overruling"), [1], ["maybe"])
    with pytest.raises(ValueError):
        write_submission(tmp_path, raft.spec_for("raft_overruling"), [1, 1], [0, 1])
    with pytest.raises(UserError):
        write_submission(tmp_path, raft.spec_for("raft_nothing"), [1], [0])
    assert not (tmp_path / "overruling" / "predictions.csv").exists()


# --- the full staged copy, when present ----------------------------------------------------------


@pytest.mark.skipif(not SHARED_RAFT.is_dir(), reason="no staged RAFT copy (../shared/data/raft)")
def test_staged_copy_loads_and_matches_the_embedded_files():
    for name in [*BENCHMARK, EXTRA]:
        task = get_task(name)
        spec = raft.spec_for(name)
        data = task.load("dir", str(SHARED_RAFT.parent))
        assert data.location == str(SHARED_RAFT / spec.folder)
        assert len(data.splits["train"]) == 50 and len(data.splits["test"]) > 100
        assert all(row["label"] is None for row in data.splits["test"])
        shipped_task_json = (EMBEDDED_RAFT / spec.folder / "task.json").read_bytes()
        assert (SHARED_RAFT / spec.folder / "task.json").read_bytes() == shipped_task_json
        if task.has_embedded:
            assert data.splits["train"] == task.load("embedded", None).splits["train"]
