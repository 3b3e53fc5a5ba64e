"""SuperGLUE tasks: rows from the jsonl layout, FewGLUE_32dev, the hub path, the embedded slices.

Data folders are written in tmp from hand-made lines in the official jsonl layout; the embedded
slices are read from the package. The checks against the staged copies (../shared/data, or
$PEFTBENCH_SHARED_DATA) are skipped where they are absent.
"""

import json
import os
from pathlib import Path

import pytest

from peftbench.errors import UserError
from peftbench.tasks import get_task, task_names
from peftbench.tasks.superglue import highlights_as_sentences

REPO_ROOT = Path(__file__).resolve().parents[1]
EMBEDDED = REPO_ROOT / "peftbench" / "tasks" / "data" / "superglue"
SHARED_DATA = Path(os.environ.get("PEFTBENCH_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

TASKS = ("boolq", "cb", "copa", "multirc", "record", "wic", "wsc")
FOLDERS = {
    "boolq": "BoolQ", "cb": "CB", "copa": "COPA", "multirc": "MultiRC", "record": "ReCoRD",
    "wic": "WiC", "wsc": "WSC",
}
# aps/super_glue's ClassLabel names, in order (ReCoRD has no label column).
HUB_LABEL_NAMES = {
    "boolq": ("False", "True"),
    "cb": ("entailment", "contradiction", "neutral"),
    "copa": ("choice1", "choice2"),
    "multirc": ("False", "True"),
    "record": (),
    "wic": ("False", "True"),
    "wsc": ("False", "True"),
}
MAIN_METRICS = {
    "boolq": "accuracy", "cb": "f1", "copa": "accuracy", "multirc": "f1a", "record": "f1",
    "wic": "accuracy", "wsc": "accuracy",
}


def one_line_user_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def write_jsonl(path: Path, objects: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(obj) + "\n" for obj in objects), encoding="utf-8")
    return path


def write_task(root: Path, name: str, train: list, val: list, test: list | None = None) -> Path:
    folder = root / FOLDERS[name]
    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "val.jsonl", val)
    if test is not None:
        write_jsonl(folder / "test.jsonl", test)
    return folder


# --- hand-made examples, one per task, in the jsonl layout and in the hub's -----------------------

RECORD_TEXT = "Alice Smith met Bob in Paris.\n@highlight\nBob visited Paris\n@highlight\nAlice was happy"


def span(text: str, entity: str, nth: int = 0) -> dict:
    """A ReCoRD span: start and inclusive end of the nth occurrence of ``entity``."""
    start = -1
    for _ in range(nth + 1):
        start = text.index(entity, start + 1)
    return {"start": start, "end": start + len(entity) - 1}


# Entity spans deliberately out of passage order, with repeated texts.
RECORD_ENTITIES = [
    span(RECORD_TEXT, "Paris"), span(RECORD_TEXT, "Alice Smith"), span(RECORD_TEXT, "Bob"),
    span(RECORD_TEXT, "Bob", 1), span(RECORD_TEXT, "Paris", 1), span(RECORD_TEXT, "Alice", 1),
]
RECORD_LINE = {
    "source": "Daily mail",
    "passage": {"text": RECORD_TEXT, "entities": RECORD_ENTITIES},
    "qas": [{
        "query": "@placeholder was happy to meet Bob.",
        "answers": [{**span(RECORD_TEXT, "Alice Smith"), "text": "Alice Smith"}],
        "idx": 7,
    }],
    "idx": 3,
}

JSONL_EXAMPLES = {
    "boolq": {"question": "is paris in france", "passage": "Paris -- Paris is the capital of France.",
              "idx": 0, "label": True},
    "cb": {"premise": "She said it might rain.", "hypothesis": "it might rain", "label": "neutral", "idx": 0},
    "copa": {"premise": "The man turned on the faucet.", "choice1": "The toilet filled with water.",
             "choice2": "Water flowed from the spout.", "question": "effect", "label": 1, "idx": 0},
    "multirc": {"idx": 5, "version": 1.1, "passage": {"text": "Sent 1: Tom has a red bike.", "questions": [
        {"question": "What colour is the bike?", "idx": 2, "answers": [
            {"text": "Red", "idx": 0, "label": 1}, {"text": "Blue", "idx": 1, "label": 0}]},
    ]}},
    "record": RECORD_LINE,
    "wic": {"word": "bed", "sentence1": "The bed of the river.", "sentence2": "I went to bed.", "idx": 0,
            "label": False, "start1": 4, "start2": 10, "end1": 7, "end2": 13, "version": 1.1},
    "wsc": {"text": "Mark told Pete many lies about himself. He should have been more skeptical.",
            "target": {"span2_index": 7, "span1_index": 0, "span1_text": "Mark", "span2_text": "He"},
            "idx": 0, "label": False},
}

HUB_EXAMPLES = {
    "boolq": [{"question": "is paris in france", "passage": "Paris -- Paris is the capital of France.",
               "idx": 0, "label": 1}],
    "cb": [{"premise": "She said it might rain.", "hypothesis": "it might rain", "idx": 0, "label": 2}],
    "copa": [{"premise": "The man turned on the faucet.", "choice1": "The toilet filled with water.",
              "choice2": "Water flowed from the spout.", "question": "effect", "idx": 0, "label": 1}],
    "multirc": [
        {"paragraph": "Sent 1: Tom has a red bike.", "question": "What colour is the bike?", "answer": "Red",
         "idx": {"paragraph": 5, "question": 2, "answer": 0}, "label": 1},
        {"paragraph": "Sent 1: Tom has a red bike.", "question": "What colour is the bike?", "answer": "Blue",
         "idx": {"paragraph": 5, "question": 2, "answer": 1}, "label": 0},
    ],
    "record": [{
        "passage": RECORD_TEXT, "query": "@placeholder was happy to meet Bob.",
        "entities": ["Alice", "Alice Smith", "Bob", "Paris"],  # the hub stores a sorted set
        "entity_spans": [  # in passage order, end exclusive, as aps/super_glue has them
            {"text": text, "start": s["start"], "end": s["end"] + 1}
            for text, s in [("Alice Smith", span(RECORD_TEXT, "Alice Smith")), ("Bob", span(RECORD_TEXT, "Bob")),
                            ("Paris", span(RECORD_TEXT, "Paris")), ("Bob", span(RECORD_TEXT, "Bob", 1)),
                            ("Paris", span(RECORD_TEXT, "Paris", 1)), ("Alice", span(RECORD_TEXT, "Alice", 1))]
        ],
        "answers": ["Alice Smith"], "idx": {"passage": 3, "query": 7},
    }],
    "wic": [{"word": "bed", "sentence1": "The bed of the river.", "sentence2": "I went to bed.", "start1": 4,
             "start2": 10, "end1": 7, "end2": 13, "idx": 0, "label": 0}],
    "wsc": [{"text": "Mark told Pete many lies about himself. He should have been more skeptical.",
             "span1_index": 0, "span2_index": 7, "span1_text": "Mark", "span2_text": "He", "idx": 0, "label": 0}],
}

EXPECTED_ROWS = {
    "boolq": [{"text": "is paris in france", "text_pair": "Paris -- Paris is the capital of France.", "label": 1}],
    "cb": [{"text": "She said it might rain.", "text_pair": "it might rain", "label": 2}],
    "copa": [{"text": "The man turned on the faucet. What happened as a result?",
              "choices": ["The toilet filled with water.", "Water flowed from the spout."], "label": 1}],
    "multirc": [
        {"text": "Sent 1: Tom has a red bike.", "text_pair": "What colour is the bike?\nRed", "label": 1,
         "group": "5-2"},
        {"text": "Sent 1: Tom has a red bike.", "text_pair": "What colour is the bike?\nBlue", "label": 0,
         "group": "5-2"},
    ],
    "record": [{
        "text": "Alice Smith met Bob in Paris. Bob visited Paris. Alice was happy",
        "choices": ["Alice Smith was happy to meet Bob.", "Bob was happy to meet Bob.",
                    "Paris was happy to meet Bob.", "Alice was happy to meet Bob."],
        "choice_names": ["Alice Smith", "Bob", "Paris", "Alice"],
        "answers": ["Alice Smith"],
        "label": 0,
    }],
    "wic": [{"text": "bed: The bed of the river.", "text_pair": "bed: I went to bed.", "label": 0}],
    "wsc": [{"text": "He: Mark told Pete many lies about himself. He should have been more skeptical.",
             "text_pair": "Mark", "label": 0}],
}


# --- registry and task definitions ------------------------------------------------------------------


def test_registry_has_the_superglue_tasks_and_rte_stays_glue():
    names = task_names()
    assert [name for name in names if name in TASKS] == list(TASKS)
    assert names.count("rte") == 1 and get_task("rte").benchmark == "glue"
    for name in TASKS:
        task = get_task(name)
        assert (task.name, task.benchmark) == (name, "superglue")
        assert task.label_names == HUB_LABEL_NAMES[name]
        assert task.main_metric == MAIN_METRICS[name] and task.main_metric in task.metric_names
        assert (task.train_split, task.eval_splits) == ("train", ("validation",))
        assert task.kind == ("multiple_choice" if name in {"copa", "record"} else "classification")
        assert task.has_embedded == (name != "record")
    assert get_task("cb").metric_names == ("accuracy", "f1")
    assert get_task("multirc").metric_names == ("f1a", "em")
    assert get_task("record").metric_names == ("f1", "em")


@pytest.mark.parametrize("name", TASKS)
def test_rows_from_the_jsonl_layout(tmp_path, name):
    example = JSONL_EXAMPLES[name]
    write_task(tmp_path / "superglue", name, [example], [example])
    data = get_task(name).load("dir", str(tmp_path))
    assert (data.source, data.location, data.sample) == ("dir", str(tmp_path / "superglue" / FOLDERS[name]), False)
    assert data.splits == {"train": EXPECTED_ROWS[name], "validation": EXPECTED_ROWS[name]}


@pytest.mark.parametrize("name", TASKS)
def test_prompt_renders_and_verbalizers_match_the_labels(name):
    task = get_task(name)
    for row in EXPECTED_ROWS[name]:
        prompt = task.prompt(row)
        assert isinstance(prompt, str) and prompt.strip() and "{" not in prompt
    if task.kind == "classification":
        assert len(task.verbalizers) == task.num_labels == len(task.label_names)
        assert len(set(task.verbalizers)) == len(task.verbalizers)
    else:
        assert task.verbalizers == ()


def test_prompts_keep_every_part_of_the_example():
    boolq = get_task("boolq").prompt(EXPECTED_ROWS["boolq"][0])
    assert boolq == "Paris -- Paris is the capital of France.\nQuestion: is paris in france?\nAnswer:"
    assert get_task("cb").prompt(EXPECTED_ROWS["cb"][0]) == (
        "She said it might rain.\nQuestion: it might rain True, False or Neither?\nAnswer:"
    )
    assert get_task("cb").verbalizers == ("true", "false", "neither")  # entailment, contradiction, neutral
    assert get_task("wic").prompt(EXPECTED_ROWS["wic"][0]) == (
        "The bed of the river.\nI went to bed.\nQuestion: Does bed have the same meaning in both sentences?\nAnswer:"
    )
    assert get_task("wsc").prompt(EXPECTED_ROWS["wsc"][0]) == (
        "Mark told Pete many lies about himself. He should have been more skeptical.\n"
        "Question: In the passage above, does the pronoun \"He\" refer to Mark?\nAnswer:"
    )
    assert get_task("multirc").prompt(EXPECTED_ROWS["multirc"][1]) == (
        "Sent 1: Tom has a red bike.\nQuestion: What colour is the bike?\nIs the correct answer \"Blue\"?\nAnswer:"
    )
    assert get_task("record").prompt(EXPECTED_ROWS["record"][0]) == EXPECTED_ROWS["record"][0]["text"] + "\n"


def test_copa_choices_and_because_so_prompts(tmp_path):
    cause = {"premise": "My body cast a shadow over the grass.", "choice1": "The sun was rising.",
             "choice2": "The grass was cut.", "question": "cause", "label": 0, "idx": 1}
    write_task(tmp_path, "copa", [cause, JSONL_EXAMPLES["copa"]], [cause])
    task = get_task("copa")
    rows = task.load("dir", str(tmp_path)).splits["train"]
    assert rows[0] == {"text": "My body cast a shadow over the grass. What was the cause of this?",
                       "choices": ["The sun was rising.", "The grass was cut."], "label": 0}
    assert task.prompt(rows[0]) == "My body cast a shadow over the grass because"
    assert task.prompt(rows[1]) == "The man turned on the faucet so"
    assert task.score([0, 0], rows) == {"accuracy": 0.5}


# --- labels -----------------------------------------------------------------------------------------


def test_cb_string_labels_map_to_the_hub_indices(tmp_path):
    lines = [{"premise": "P.", "hypothesis": h, "label": label, "idx": i}
             for i, (h, label) in enumerate([("a", "entailment"), ("b", "contradiction"), ("c", "neutral")])]
    write_task(tmp_path, "cb", lines, lines)
    rows = get_task("cb").load("dir", str(tmp_path)).splits["train"]
    assert [row["label"] for row in rows] == [0, 1, 2]


@pytest.mark.parametrize("name", ["boolq", "wic", "wsc"])
def test_boolean_labels(tmp_path, name):
    true, false = dict(JSONL_EXAMPLES[name], label=True), dict(JSONL_EXAMPLES[name], label=False)
    write_task(tmp_path, name, [true, false], [false])
    splits = get_task(name).load("dir", str(tmp_path)).splits
    assert [row["label"] for row in splits["train"]] == [1, 0]
    assert [row["label"] for row in splits["validation"]] == [0]


@pytest.mark.parametrize(("name", "bad_label", "expected"), [
    ("cb", "Neutral", "not one of entailment, contradiction, neutral"),
    ("boolq", "yes", "not true or false"),
    ("copa", 2, "not 0 or 1"),
])
def test_bad_label_is_a_user_error_with_file_and_line(tmp_path, name, bad_label, expected):
    good = JSONL_EXAMPLES[name]
    path = write_task(tmp_path, name, [good, dict(good, label=bad_label)], [good]) / "train.jsonl"
    with pytest.raises(UserError) as excinfo:
        get_task(name).load("dir", str(tmp_path))
    message = one_line_user_error(excinfo)
    assert message.startswith(f"{path}:2: ") and expected in message and "restore the file" in message


def test_test_split_has_no_labels(tmp_path):
    def unlabelled(obj):
        return {key: value for key, value in obj.items() if key != "label"}

    for name in ("cb", "copa", "wic"):
        write_task(tmp_path, name, [JSONL_EXAMPLES[name]], [JSONL_EXAMPLES[name]], [unlabelled(JSONL_EXAMPLES[name])])
        test = get_task(name).load("dir", str(tmp_path)).splits["test"]
        assert len(test) == 1 and test[0]["label"] is None

    paragraph = json.loads(json.dumps(JSONL_EXAMPLES["multirc"]))
    for answer in paragraph["passage"]["questions"][0]["answers"]:
        del answer["label"]
    write_task(tmp_path, "multirc", [JSONL_EXAMPLES["multirc"]], [JSONL_EXAMPLES["multirc"]], [paragraph])
    assert [row["label"] for row in get_task("multirc").load("dir", str(tmp_path)).splits["test"]] == [None, None]

    query = json.loads(json.dumps(RECORD_LINE))
    del query["qas"][0]["answers"]
    write_task(tmp_path, "record", [RECORD_LINE], [RECORD_LINE], [query])
    (row,) = get_task("record").load("dir", str(tmp_path)).splits["test"]
    assert (row["label"], row["answers"]) == (None, []) and len(row["choices"]) == 4


def test_missing_label_in_a_labelled_split_is_a_user_error(tmp_path):
    no_label = {key: value for key, value in JSONL_EXAMPLES["wic"].items() if key != "label"}
    path = write_task(tmp_path, "wic", [JSONL_EXAMPLES["wic"]], [no_label]) / "val.jsonl"
    with pytest.raises(UserError) as excinfo:
        get_task("wic").load("dir", str(tmp_path))
    assert one_line_user_error(excinfo).startswith(f"{path}:1: no field 'label'")


# --- MultiRC and ReCoRD -----------------------------------------------------------------------------


def multirc_paragraph(idx: int, text: str, questions: list[tuple[int, str, list[tuple[str, int]]]]) -> dict:
    return {"idx": idx, "version": 1.1, "passage": {"text": text, "questions": [
        {"question": q, "idx": qi,
         "answers": [{"text": a, "idx": ai, "label": lab} for ai, (a, lab) in enumerate(answers)]}
        for qi, q, answers in questions
    ]}}


def test_multirc_groups_are_unique_across_paragraphs_and_drive_em(tmp_path):
    # Question idx 0 appears in both paragraphs: the group must tell them apart.
    paragraphs = [
        multirc_paragraph(0, "Tom has a red bike.", [(0, "What colour?", [("red", 1), ("blue", 0)]),
                                                     (1, "Who?", [("Tom", 1)])]),
        multirc_paragraph(1, "Ann has a cat.", [(0, "What pet?", [("cat", 1), ("dog", 0)])]),
    ]
    write_task(tmp_path, "multirc", paragraphs, paragraphs)
    task = get_task("multirc")
    rows = task.load("dir", str(tmp_path)).splits["validation"]
    assert [row["group"] for row in rows] == ["0-0", "0-0", "0-1", "1-0", "1-0"]
    assert [row["label"] for row in rows] == [1, 0, 1, 1, 0]
    # Wrong on one option of paragraph 0's question 0 only: 2 of 3 questions exactly right.
    scores = task.score([1, 1, 1, 1, 0], rows)
    assert scores["em"] == pytest.approx(2 / 3)
    assert scores["f1a"] == pytest.approx(2 * 0.75 * 1.0 / 1.75)  # P = 3/4, R = 3/3


def test_multirc_embedded_groups_are_per_paragraph_question():
    rows = get_task("multirc").load("embedded", None).splits["train"]
    lines = [json.loads(line) for line in (EMBEDDED / "MultiRC" / "train.jsonl").read_text().splitlines()]
    questions = [(p["idx"], q["idx"]) for p in lines for q in p["passage"]["questions"]]
    assert len({row["group"] for row in rows}) == len(questions)
    assert len(rows) == sum(len(q["answers"]) for p in lines for q in p["passage"]["questions"])


def test_record_candidates_answers_label_and_score(tmp_path):
    other = json.loads(json.dumps(RECORD_LINE))
    other["qas"] = [
        {"query": "@placeholder lives in Rome.", "answers": [{"start": 0, "end": 4, "text": "Carol"}], "idx": 8}
    ]
    write_task(tmp_path, "record", [RECORD_LINE, other], [RECORD_LINE, other])
    task = get_task("record")
    splits = task.load("dir", str(tmp_path)).splits
    (row,) = splits["train"]  # the train query with no gold entity is dropped
    assert row == EXPECTED_ROWS["record"][0]
    assert row["text"] == highlights_as_sentences(RECORD_TEXT)
    assert len(splits["validation"]) == 2 and splits["validation"][1]["label"] is None
    assert task.score([0], [row]) == {"f1": 1.0, "em": 1.0}
    scores = task.score([3], [row])  # "Alice" against "Alice Smith"
    assert scores["em"] == 0.0 and scores["f1"] == pytest.approx(2 / 3)
    assert task.score([0, 3], splits["validation"]) == {"f1": 0.5, "em": 0.5}
    with pytest.raises(ValueError, match="not a choice"):
        task.score([4], [row])


def test_record_highlights_become_sentences():
    assert highlights_as_sentences("A won.\n@highlight\nB lost\n@highlight\nC drew") == "A won. B lost. C drew"
    quoted = 'He said "no"\n@highlight\nIt rained?\n@highlight\nYes'
    assert highlights_as_sentences(quoted) == 'He said "no" It rained? Yes'


# --- layouts, FewGLUE and bad folders ---------------------------------------------------------------


def test_data_root_superglue_folder_or_task_folder(tmp_path):
    folder = write_task(tmp_path / "superglue", "cb", [JSONL_EXAMPLES["cb"]], [JSONL_EXAMPLES["cb"]])
    for given in (tmp_path, tmp_path / "superglue", folder):
        assert get_task("cb").load("dir", str(given)).location == str(folder)


def test_data_dir_from_the_environment(tmp_path, monkeypatch):
    write_task(tmp_path / "superglue", "wsc", [JSONL_EXAMPLES["wsc"]], [JSONL_EXAMPLES["wsc"]])
    monkeypatch.setenv("PEFTBENCH_DATA", str(tmp_path))
    assert get_task("wsc").load("dir", None).splits["train"] == EXPECTED_ROWS["wsc"]


def test_fewglue_layout(tmp_path):
    root = tmp_path / "fewglue" / "FewGLUE_32dev"
    write_jsonl(root / "CB" / "train.jsonl", [JSONL_EXAMPLES["cb"]] * 2)
    write_jsonl(root / "CB" / "dev32.jsonl", [JSONL_EXAMPLES["cb"]])
    data = get_task("cb").load("dir", str(root))
    assert {split: len(rows) for split, rows in data.splits.items()} == {"train": 2, "validation": 1}
    assert data.location.startswith(str(root / "CB")) and "FewGLUE_32dev" in data.location
    assert "dev32.jsonl" in data.location and data.sample is False
    # A data root holding fewglue/FewGLUE_32dev is not searched.
    with pytest.raises(UserError) as excinfo:
        get_task("cb").load("dir", str(tmp_path))
    assert "data.dir=" in one_line_user_error(excinfo)


def test_fewglue_folder_with_the_superglue_val_file(tmp_path):
    folder = write_task(tmp_path, "wic", [JSONL_EXAMPLES["wic"]] * 3, [JSONL_EXAMPLES["wic"]])
    write_jsonl(folder / "dev32.jsonl", [JSONL_EXAMPLES["wic"]] * 2)
    data = get_task("wic").load("dir", str(tmp_path))
    assert {split: len(rows) for split, rows in data.splits.items()} == {"train": 3, "validation": 1, "dev32": 2}
    assert data.location == str(folder)


def test_bad_data_folders_are_user_errors(tmp_path):
    with pytest.raises(UserError) as excinfo:
        get_task("cb").load("dir", None)
    assert "data.dir=" in one_line_user_error(excinfo)

    with pytest.raises(UserError) as excinfo:
        get_task("cb").load("dir", str(tmp_path / "nowhere"))
    message = one_line_user_error(excinfo)
    assert "no SuperGLUE CB folder" in message and "data.dir=" in message

    write_jsonl(tmp_path / "CB" / "train.jsonl", [JSONL_EXAMPLES["cb"]])
    with pytest.raises(UserError) as excinfo:
        get_task("cb").load("dir", str(tmp_path))
    message = one_line_user_error(excinfo)
    assert f"missing {tmp_path / 'CB' / 'val.jsonl'}" in message and "dev32.jsonl" in message

    (tmp_path / "CB" / "val.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(UserError) as excinfo:
        get_task("cb").load("dir", str(tmp_path))
    assert one_line_user_error(excinfo).startswith(f"{tmp_path / 'CB' / 'val.jsonl'} has no rows")


def test_broken_lines_are_user_errors_with_file_and_line(tmp_path):
    folder = write_task(tmp_path, "cb", [JSONL_EXAMPLES["cb"]], [JSONL_EXAMPLES["cb"]])
    with (folder / "train.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"premise": "P.", "hypothesis": \n')
    with pytest.raises(UserError) as excinfo:
        get_task("cb").load("dir", str(tmp_path))
    message = one_line_user_error(excinfo)
    assert message.startswith(f"{folder / 'train.jsonl'}:2: not a JSON object")

    write_jsonl(folder / "train.jsonl", [{"premise": "P.", "label": "neutral", "idx": 0}])
    with pytest.raises(UserError) as excinfo:
        get_task("cb").load("dir", str(tmp_path))
    assert one_line_user_error(excinfo).startswith(f"{folder / 'train.jsonl'}:1: no field 'hypothesis'")

    broken = json.loads(json.dumps(JSONL_EXAMPLES["multirc"]))
    del broken["passage"]["questions"][0]["idx"]
    folder = write_task(tmp_path, "multirc", [JSONL_EXAMPLES["multirc"]], [broken])
    with pytest.raises(UserError) as excinfo:
        get_task("multirc").load("dir", str(tmp_path))
    assert one_line_user_error(excinfo).startswith(f"{folder / 'val.jsonl'}:1: no field 'idx'")


def test_unknown_source_and_missing_embedded_slice_are_user_errors():
    with pytest.raises(UserError) as excinfo:
        get_task("cb").load("s3", None)
    assert "dir, hub or embedded" in one_line_user_error(excinfo)
    with pytest.raises(UserError) as excinfo:
        get_task("record").load("embedded", None)
    message = one_line_user_error(excinfo)
    assert "data.dir=" in message and "data.source=hub" in message


# --- hub path (load_dataset replaced by in-memory datasets of aps/super_glue's layout) --------------


def hub_split(name: str, examples: list[dict]):
    import datasets

    dataset = datasets.Dataset.from_list(examples)
    if HUB_LABEL_NAMES[name]:
        dataset = dataset.cast_column("label", datasets.ClassLabel(names=list(HUB_LABEL_NAMES[name])))
    return dataset


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


@pytest.mark.parametrize("name", TASKS)
def test_hub_rows_equal_the_jsonl_rows(tmp_path, fake_hub, name):
    import datasets

    write_task(tmp_path, name, [JSONL_EXAMPLES[name]], [JSONL_EXAMPLES[name]])
    from_files = get_task(name).load("dir", str(tmp_path)).splits["train"]
    calls = fake_hub(datasets.DatasetDict({"train": hub_split(name, HUB_EXAMPLES[name])}))
    data = get_task(name).load("hub", None)
    assert calls == [("aps/super_glue", name)]
    assert (data.source, data.location, data.sample) == ("hub", f"aps/super_glue/{name}", False)
    assert data.splits["train"] == from_files == EXPECTED_ROWS[name]


def test_hub_test_labels_and_record_without_entity_spans(fake_hub):
    import datasets

    unlabelled = [dict(HUB_EXAMPLES["cb"][0], label=-1)]
    fake_hub(datasets.DatasetDict({"test": hub_split("cb", unlabelled)}))
    assert get_task("cb").load("hub", None).splits["test"][0]["label"] is None

    old = {key: value for key, value in HUB_EXAMPLES["record"][0].items() if key != "entity_spans"}
    fake_hub(datasets.DatasetDict({
        "validation": hub_split("record", [old]),
        "test": hub_split("record", [dict(old, answers=[])]),
    }))
    splits = get_task("record").load("hub", None).splits
    assert splits["validation"][0]["choice_names"] == ["Alice", "Alice Smith", "Bob", "Paris"]  # as stored
    assert splits["validation"][0]["label"] == 1
    assert splits["test"][0]["label"] is None


def test_hub_with_other_label_names_is_refused(fake_hub):
    import datasets

    dataset = datasets.Dataset.from_list(HUB_EXAMPLES["cb"]).cast_column(
        "label", datasets.ClassLabel(names=["entailment", "neutral", "contradiction"])
    )
    fake_hub(datasets.DatasetDict({"train": dataset}))
    with pytest.raises(ValueError, match="labels"):
        get_task("cb").load("hub", None)


def test_unreachable_hub_is_a_user_error(monkeypatch):
    import datasets

    def offline(path, name):
        raise ConnectionError("Couldn't reach 'aps/super_glue' on the Hub (OfflineModeIsEnabled)\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserError) as excinfo:
        get_task("boolq").load("hub", None)
    message = one_line_user_error(excinfo)
    assert "aps/super_glue/boolq" in message and "OfflineModeIsEnabled" in message and "data.dir=" in message


# --- embedded slices --------------------------------------------------------------------------------

EMBEDDED_ROWS = {
    **{name: {"train": 48, "validation": 48} for name in ("boolq", "cb", "copa", "wic", "wsc")},
    "multirc": {"train": 209, "validation": 87},  # 3 and 2 paragraphs, one row per answer option
}


@pytest.mark.parametrize("name", sorted(EMBEDDED_ROWS))
def test_embedded_slices(name):
    task = get_task(name)
    data = task.load("embedded", None)
    assert (data.source, data.location, data.sample) == ("embedded", str(EMBEDDED / FOLDERS[name]), True)
    assert {split: len(rows) for split, rows in data.splits.items()} == EMBEDDED_ROWS[name]
    for rows in data.splits.values():
        for row in rows:
            keys = {"text", "choices", "label"} if task.kind == "multiple_choice" else {"text", "text_pair", "label"}
            assert set(row) == keys | ({"group"} if name == "multirc" else set())
            assert row["label"] in range(max(task.num_labels, 2))
            assert isinstance(task.prompt(row), str)
        assert task.score([row["label"] for row in rows], rows)[task.main_metric] == pytest.approx(1.0)


def test_embedded_slices_are_small():
    assert sum(path.stat().st_size for path in EMBEDDED.rglob("*") if path.is_file()) < 300_000


# --- the staged copies (skipped where absent) -------------------------------------------------------

needs_shared = pytest.mark.skipif(not (SHARED_DATA / "superglue").is_dir(), reason="no staged SuperGLUE copy")


@needs_shared
@pytest.mark.parametrize(("folder", "file_name", "source", "start"), [
    *[(f, n, n, 0) for f in ("CB", "COPA", "WiC", "WSC", "MultiRC") for n in ("train.jsonl", "val.jsonl")],
    ("BoolQ", "train.jsonl", "val.jsonl", 0),
    ("BoolQ", "val.jsonl", "val.jsonl", 48),
])
def test_embedded_lines_are_the_first_lines_of_the_staged_files(folder, file_name, source, start):
    embedded = (EMBEDDED / folder / file_name).read_bytes().splitlines(keepends=True)
    staged = (SHARED_DATA / "superglue" / folder / source).read_bytes().splitlines(keepends=True)
    assert embedded == staged[start : start + len(embedded)]


@needs_shared
def test_staged_superglue_copy_reads_completely():
    counts = {
        "cb": {"train": 250, "validation": 56, "test": 250},
        "copa": {"train": 400, "validation": 100, "test": 500},
        "wsc": {"train": 554, "validation": 104, "test": 146},
        "multirc": {"train": 27243, "validation": 4848, "test": 9693},
    }
    for name, expected in counts.items():
        data = get_task(name).load("dir", str(SHARED_DATA))
        assert {split: len(rows) for split, rows in data.splits.items()} == expected
    validation = get_task("multirc").load("dir", str(SHARED_DATA)).splits["validation"]
    assert len({row["group"] for row in validation}) == 953
    with pytest.raises(UserError, match="missing .*BoolQ/train.jsonl"):  # not staged
        get_task("boolq").load("dir", str(SHARED_DATA))


@needs_shared
@pytest.mark.skipif(not (SHARED_DATA / "fewglue" / "FewGLUE_32dev").is_dir(), reason="no staged FewGLUE copy")
@pytest.mark.parametrize("name", TASKS)
def test_staged_fewglue_reads(name):
    task = get_task(name)
    data = task.load("dir", str(SHARED_DATA / "fewglue" / "FewGLUE_32dev"))
    assert "FewGLUE_32dev layout" in data.location
    if name == "multirc":
        assert len({row["group"] for row in data.splits["train"]}) == 32
    else:
        assert {split: len(rows) for split, rows in data.splits.items()} == {"train": 32, "validation": 32}
    for rows in data.splits.values():
        assert all(row["label"] is not None for row in rows)
        assert all(isinstance(task.prompt(row), str) for row in rows)


def test_fewglue_and_superglue_runs_of_one_config_have_different_ids(tmp_path):
    """data.dir is not in the run id (the same files may live anywhere), so the FewGLUE subset must
    be: otherwise a FewGLUE run would be skipped as the finished full-data run, or the reverse."""
    from peftbench.launch import compose
    from peftbench.plan import plan

    fewglue = tmp_path / "FewGLUE_32dev"
    write_jsonl(fewglue / "CB" / "train.jsonl", [JSONL_EXAMPLES["cb"]] * 2)
    write_jsonl(fewglue / "CB" / "dev32.jsonl", [JSONL_EXAMPLES["cb"]])
    full = write_task(tmp_path / "superglue", "cb", [JSONL_EXAMPLES["cb"]] * 2, [JSONL_EXAMPLES["cb"]])
    common = ["model=tiny-bert", "task=cb", "data.source=dir", f"results_dir={tmp_path / 'results'}"]
    few = plan(compose([*common, f"data.dir={fewglue}"]))
    whole = plan(compose([*common, f"data.dir={full}"]))
    assert few.parts[0].data.subset == "fewglue" and whole.parts[0].data.subset is None
    assert few.run_id != whole.run_id
    assert few.parts[0].data.fingerprint()["subset"] == "fewglue"
