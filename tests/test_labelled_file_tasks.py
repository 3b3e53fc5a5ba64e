"""Houlsby et al.'s additional classification tasks (peftbench/tasks/houlsby_suite.py) and SICK and
UKP Argument (adapterfusion_suite.py), all read by peftbench/tasks/labelled_files.py: the release
layouts, the shipped real slices, the hub copies, the 80/10/10 split of the paper's Table 3, and a
run whose record fills a cell of conf/table/houlsby_table2.yaml."""

from __future__ import annotations

import pytest

from peftbench.errors import UserError
from peftbench.tasks import get_task
from peftbench.tasks.houlsby_suite import SPECS, SPLIT

# Houlsby et al. 2019, Appendix A, Table 3: train / validation / test examples per data set.
TABLE3 = {
    "newsgroups20": (15076, 1885, 1885),
    "crowdflower_airline": (11712, 1464, 1464),
    "crowdflower_corporate_messaging": (2494, 312, 312),
    "crowdflower_disasters": (8688, 1086, 1086),
    "crowdflower_economic_news_relevance": (6392, 799, 800),
    "crowdflower_emotion": (32000, 4000, 4000),
    "crowdflower_global_warming": (3380, 422, 423),
    "crowdflower_political_audience": (4000, 500, 500),
    "crowdflower_political_bias": (4000, 500, 500),
    "crowdflower_political_message": (4000, 500, 500),
    "crowdflower_primary_emotions": (2019, 252, 253),
    "crowdflower_progressive_opinion": (927, 116, 116),
    "crowdflower_progressive_stance": (927, 116, 116),
    "crowdflower_us_economic_performance": (3961, 495, 496),
    "customer_complaint_database": (146667, 18333, 18334),
    "news_aggregator": (338349, 42294, 42294),
    "sms_spam": (4459, 557, 558),
}
# Table 3's classes (the complaint database's 157 are declared: its label set is the snapshot's).
CLASSES = {
    "newsgroups20": 20, "crowdflower_airline": 3, "crowdflower_corporate_messaging": 4, "crowdflower_disasters": 2,
    "crowdflower_economic_news_relevance": 2, "crowdflower_emotion": 13, "crowdflower_global_warming": 2,
    "crowdflower_political_audience": 2, "crowdflower_political_bias": 2, "crowdflower_political_message": 9,
    "crowdflower_primary_emotions": 18, "crowdflower_progressive_opinion": 3, "crowdflower_progressive_stance": 4,
    "crowdflower_us_economic_performance": 2, "customer_complaint_database": 157, "news_aggregator": 4,
    "sms_spam": 2,
}  # fmt: skip


def _write(folder, name: str, text: str, encoding: str = "utf-8") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(text.encode(encoding))


# --- the split and the label sets against the paper --------------------------------------------


@pytest.mark.parametrize("name", sorted(TABLE3))
def test_the_split_rule_gives_table_3_sizes(name):
    train, validation, test = TABLE3[name]
    assert SPLIT.sizes(train + validation + test) == (train, validation, test)


def test_every_table_3_set_is_a_task_with_its_class_count():
    assert set(SPECS) == set(TABLE3)
    assert {name: get_task(name).num_labels for name in SPECS} == CLASSES


def test_the_split_is_a_fixed_partition_of_the_rows():
    rows = [{"text": str(i), "text_pair": None, "label": 0} for i in range(97)]
    first, again = SPLIT(None, [], rows), SPLIT(None, [], list(rows))
    assert first == again and [len(first[s]) for s in ("train", "validation", "test")] == [77, 10, 10]
    assert sorted(int(r["text"]) for part in first.values() for r in part) == list(range(97))


# --- shipped real slices ---------------------------------------------------------------------


@pytest.mark.parametrize("name, rows, labels", [
    ("crowdflower_airline", 40, {"negative", "neutral", "positive"}),
    ("crowdflower_corporate_messaging", 40, {"Action", "Information"}),
    ("crowdflower_disasters", 40, {"Not Relevant", "Relevant"}),
    ("crowdflower_emotion", 40, None),
    ("crowdflower_global_warming", 38, {"No", "Yes"}),  # 2 of the first 40 answer N/A
    ("crowdflower_primary_emotions", 40, None),
    ("sms_spam", 40, {"ham", "spam"}),
])  # fmt: skip
def test_the_shipped_slices_split_80_10_10(name, rows, labels):
    data = get_task(name).load("embedded", None)
    assert data.sample and {s: len(r) for s, r in data.splits.items()} == dict(zip(("train", "validation", "test"), SPLIT.sizes(rows)))
    found = {get_task(name).label_names[row["label"]] for part in data.splits.values() for row in part}
    assert labels is None or found == labels


def test_release_text_as_released_latin1_where_not_utf8():
    rows = [row for part in get_task("crowdflower_airline").load("embedded", None).splits.values() for row in part]
    assert any(row["text"] == "@VirginAmerica What @dhepburn said." for row in rows)
    sms = [row["text"] for part in get_task("sms_spam").load("embedded", None).splits.values() for row in part]
    assert "Ok lar... Joking wif u oni..." in sms


def test_sick_reads_its_semeval_sets_and_lower_cases_the_labels():
    data = get_task("sick").load("embedded", None)
    assert {s: len(r) for s, r in data.splits.items()} == {"train": 74, "validation": 6, "test": 105}
    trial = data.splits["validation"][0]  # pair 4, the file's first TRIAL row
    assert trial == {"text": "The young boys are playing outdoors and the man is smiling nearby",
                     "text_pair": "There is no boy playing outdoors and there is no man smiling", "label": 2}  # fmt: skip
    assert get_task("sick").label_names == ("entailment", "neutral", "contradiction")


# --- release layouts from rows WRITTEN BY US (no copy readable offline; data/README.md) --------

UKP_HEADER = "topic\tretrievedUrl\tarchivedUrl\tsentenceHash\tsentence\tannotation\tset\n"


def test_argument_reads_the_eight_topic_files_with_topic_and_sentence(tmp_path):
    """Rows written by us in the UKP corpus' completed tsv layout; not real data."""
    from peftbench.tasks.adapterfusion_suite import UKP_TOPICS

    folder = tmp_path / "argument" / "data" / "complete"
    for i, topic in enumerate(UKP_TOPICS):
        rows = [f"{topic}\thttp://a\thttp://b\th{i}{j}\tSentence {j} on {topic} \"quoted\".\t{label}\t{split}\n"
                for j, (label, split) in enumerate([("Argument_for", "train"), ("NoArgument", "val"), ("Argument_against", "test")])]  # fmt: skip
        _write(folder, f"{topic}.tsv", UKP_HEADER + "".join(rows))
    data = get_task("argument").load("dir", tmp_path)
    assert {s: len(r) for s, r in data.splits.items()} == {"train": 8, "validation": 8, "test": 8}
    assert data.splits["train"][0] == {"text": "abortion", "text_pair": 'Sentence 0 on abortion "quoted".', "label": 2}
    assert {r["label"] for r in data.splits["validation"]} == {0}  # NoArgument


def test_argument_has_no_hub_copy_and_a_missing_topic_or_unknown_set_is_one_line(tmp_path):
    from peftbench.tasks.adapterfusion_suite import UKP_TOPICS

    with pytest.raises(UserError, match="UKP Sentential Argument Mining Corpus has no copy on the Hugging Face hub; pass data.dir"):
        get_task("argument").load("hub", None)
    _write(tmp_path / "argument", "abortion.tsv", UKP_HEADER + "abortion\ta\tb\th\ts\tArgument_for\tdev\n")
    with pytest.raises(UserError, match=r"missing .*cloning\.tsv \(UKP Sentential Argument Mining Corpus\)"):
        get_task("argument").load("dir", tmp_path)
    for topic in UKP_TOPICS[1:]:
        _write(tmp_path / "argument", f"{topic}.tsv", UKP_HEADER + f"{topic}\ta\tb\th\ts\tNoArgument\ttrain\n")
    with pytest.raises(UserError, match=r"abortion.tsv:2: set 'dev' is not one of train, val, test"):
        get_task("argument").load("dir", tmp_path)


def test_newsgroups_reads_the_bydate_folders_whole_messages_in_id_order(tmp_path):
    """Messages written by us in the 20news-bydate layout; not real posts."""
    from peftbench.tasks.houlsby_suite import NEWSGROUPS

    for part in ("20news-bydate-train", "20news-bydate-test"):
        for g, group in enumerate(NEWSGROUPS):
            for message in (9, 10):  # 10 sorts after 9 numerically
                _write(tmp_path / "newsgroups20" / "20news-bydate" / part / group, str(message + g),
                       f"From: someone\nSubject: {group} {part} {message}\n\nBody é.", "latin-1")
    data = get_task("newsgroups20").load("dir", tmp_path)
    rows = [row for part in data.splits.values() for row in part]
    assert [len(data.splits[s]) for s in ("train", "validation", "test")] == list(SPLIT.sizes(80))
    assert {row["label"] for row in rows} == set(range(20)) and all(row["text"].endswith("Body é.") for row in rows)
    order = SPLIT(None, [], [{"i": i} for i in range(80)])["train"][0]["i"]  # the first training row's release index
    assert data.splits["train"][0]["text"].split("\n")[1] == (
        f"Subject: {NEWSGROUPS[order % 40 // 2]} {('20news-bydate-train', '20news-bydate-test')[order // 40]} {9 + order % 2}")


def test_news_aggregator_reads_the_headerless_tsv_titles(tmp_path):
    """Rows written by us in newsCorpora.csv's layout (tab-separated, no header); not real."""
    lines = "".join(f"{i}\tHeadline {i} \"q\"\thttp://u\tPub\t{'betm'[i % 4]}\tS\th.com\t1394470370698\n" for i in range(20))
    _write(tmp_path, "newsCorpora.csv", lines)
    rows = [row for part in get_task("news_aggregator").load("dir", tmp_path).splits.values() for row in part]
    assert sorted(row["text"] for row in rows)[:2] == ['Headline 0 "q"', 'Headline 1 "q"']
    assert sorted(row["label"] for row in rows) == sorted(i % 4 for i in range(20))


def test_one_release_file_serves_three_political_tasks(tmp_path):
    """Rows written by us with Political-media-DFE.csv's columns; not real posts."""
    text = "_unit_id,audience,bias,message,text\n" + "".join(
        f"{i},{('national', 'constituency')[i % 2]},{('neutral', 'partisan')[i % 2]},{('policy', 'attack', 'media')[i % 3]},\"Post {i}, text\"\n"
        for i in range(10)
    )  # fmt: skip
    _write(tmp_path, "Political-media-DFE.csv", text)
    labels = {}
    for name in ("crowdflower_political_audience", "crowdflower_political_bias", "crowdflower_political_message"):
        splits = get_task(name).load("dir", tmp_path).splits
        labels[name] = {row["text"]: get_task(name).label_names[row["label"]] for part in splits.values() for row in part}
    assert labels["crowdflower_political_audience"]["Post 3, text"] == "constituency"
    assert labels["crowdflower_political_bias"]["Post 3, text"] == "partisan"
    assert labels["crowdflower_political_message"]["Post 4, text"] == "attack"


def test_answers_that_are_no_class_are_dropped_and_long_answers_read_by_their_lead(tmp_path):
    """Rows written by us; the answer strings are those of progressive-tweet-sentiment.csv."""
    against = "AGAINST: We can infer from the tweet that the tweeter is against the target (e.g., directly or indirectly)."
    none = "NONE OF THE ABOVE: There is no clue in the tweet to reveal the stance of the tweeter towards the target."
    explicit = "1.  The tweet explicitly expresses opinion about the target, a part of the target, or an aspect of the target."
    other = "2. The tweet does NOT expresses opinion about the target but it HAS opinion about something or someone other than the target."  # noqa: E501
    from peftbench.tasks.houlsby_suite import _OPINION, _STANCE

    rows = "".join(f"\"{(against, none)[i % 2]}\",\"{(explicit, other)[i % 2]}\",tweet {i}\n" for i in range(10))
    _write(tmp_path, "progressive-tweet-sentiment.csv", f"{_STANCE},{_OPINION},tweet\n{rows}")
    stance = get_task("crowdflower_progressive_stance").load("dir", tmp_path).splits
    opinion = get_task("crowdflower_progressive_opinion").load("dir", tmp_path).splits
    assert {row["label"] for part in stance.values() for row in part} == {0, 3}  # AGAINST, NONE OF THE ABOVE
    assert {row["label"] for part in opinion.values() for row in part} == {0, 1}  # "1", "2"

    _write(tmp_path, "Full-Economic-News-DFE-839861.csv",
           "relevance,text\n" + "".join(f"{('yes', 'no', 'not sure')[i % 3]},Article {i}\n" for i in range(12)))  # fmt: skip
    economy = get_task("crowdflower_economic_news_relevance").load("dir", tmp_path).splits
    assert sum(len(part) for part in economy.values()) == 8  # the 4 "not sure" rows dropped


def test_a_label_outside_the_set_and_a_short_row_name_the_line(tmp_path):
    _write(tmp_path, "SMSSpamCollection", "ham\tHi\nspamm\tWin!\n")
    with pytest.raises(UserError, match=r"SMSSpamCollection:2: label 'spamm' is not one of ham, spam"):
        get_task("sms_spam").load("dir", tmp_path)
    _write(tmp_path, "SMSSpamCollection", "ham\tHi\nspam\n")
    with pytest.raises(UserError, match=r"SMSSpamCollection:2: expected 2 fields \(label, sms\), found 1"):
        get_task("sms_spam").load("dir", tmp_path)


def test_crowdflower_sets_have_no_hub_copy_and_say_so():
    with pytest.raises(UserError, match="Crowdflower emotion in text has no copy on the Hugging Face hub; pass data.dir"):
        get_task("crowdflower_emotion").load("hub", None)


# --- the hub copies, from rows in the hub's layout ---------------------------------------------


def _dataset(columns: dict, labels: tuple | None = None, label: str = "label"):
    import datasets

    features = {name: datasets.Value("string") for name in columns}
    if labels:
        features[label] = datasets.ClassLabel(names=list(labels))
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def test_sick_hub_splits_are_kept_and_its_class_labels_named(monkeypatch):
    import datasets

    split = _dataset({"sentence_A": ["a", "b"], "sentence_B": ["c", "d"], "label": [2, 0]},
                     ("entailment", "neutral", "contradiction"))  # fmt: skip
    called = {}

    def load_dataset(*args, **kwargs):
        called.update(args=args, kwargs=kwargs)
        return datasets.DatasetDict({"train": split, "validation": split, "test": split})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    data = get_task("sick").load("hub", None)
    assert called == {"args": ("RobZamp/sick",), "kwargs": {"revision": "refs/convert/parquet"}}
    assert data.splits["validation"] == [{"text": "a", "text_pair": "c", "label": 2}, {"text": "b", "text_pair": "d", "label": 0}]


def test_sms_spam_hub_train_split_is_pooled_and_split_80_10_10(monkeypatch):
    import datasets

    split = _dataset({"sms": [f"m{i}" for i in range(20)], "label": [i % 2 for i in range(20)]}, ("ham", "spam"))
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.DatasetDict({"train": split}))
    data = get_task("sms_spam").load("hub", None)
    assert [len(data.splits[s]) for s in ("train", "validation", "test")] == [16, 2, 2]
    assert data.location == "ucirvine/sms_spam/plain_text"


def test_newsgroups_hub_reads_the_label_text(monkeypatch):
    import datasets

    from peftbench.tasks.houlsby_suite import NEWSGROUPS

    train = _dataset({"text": [f"t{i}" for i in range(20)], "label_text": list(NEWSGROUPS)})
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.DatasetDict({"train": train, "test": train}))
    rows = [row for part in get_task("newsgroups20").load("hub", None).splits.values() for row in part]
    assert sorted((row["text"], row["label"]) for row in rows) == sorted((f"t{i}", i) for i in range(20) for _ in (0, 1))


# --- a run, and the table cell it fills --------------------------------------------------------


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("model, method, fmt", [("tiny-bert", "houlsby", "classification"), ("tiny-t5", "lora", "rank_classification")])
def test_a_run_records_test_accuracy_that_fills_houlsby_table_2(tmp_path, model, method, fmt):
    from peftbench.launch import compose
    from peftbench.plan import plan
    from peftbench.results.spec import load_spec
    from peftbench.results.table import build_table
    from peftbench.run import execute

    overrides = ["method.bottleneck=8"] if method == "houlsby" else []  # tiny-bert's hidden size is 32
    cfg = compose([f"model={model}", "task=crowdflower_airline", f"results_dir={tmp_path}", "trainer.max_steps=1",
                   "trainer.batch_size=4", "trainer.progress=false", "task.max_length=64", f"method={method}", *overrides])  # fmt: skip
    record = execute(plan(cfg))
    assert record["status"] == "complete" and record["format"] == fmt
    assert set(record["metrics"]["best"]) == {"validation", "test"}
    if method == "houlsby":
        from pathlib import Path

        spec = load_spec("houlsby_table2", Path(__file__).resolve().parents[1] / "conf")
        table = build_table(spec, [record], model="tiny-bert", replacing="bert-base")  # the first rows are AutoML's
        column = [c.id for c in spec.columns].index("crowdflower_airline")
        cell = next(row for row in table.rows if row.label == "BERT-base adapters").cells[column]
        assert cell.value == pytest.approx(100 * record["metrics"]["best"]["test"]["accuracy"]) and cell.n == 1
        assert cell.caveats  # a run on the shipped slice is marked as such
