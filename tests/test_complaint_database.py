"""Houlsby et al.'s Customer complaint database (peftbench/tasks/houlsby_suite.py): the CFPB's
``complaints.csv`` layout, its hub copy's columns, a label set the snapshot decides (Table 3's 157
declared; another count refused before any model loads, or run with task.labels_from_data=true),
run ids and tables that tell snapshots apart, and a run whose record fills the table's column."""

from __future__ import annotations

import pytest

from peftbench.errors import UserError
from peftbench.tasks import get_task
from peftbench.tasks.houlsby_suite import SPLIT

TASK = "customer_complaint_database"
NARRATIVE = "Consumer complaint narrative"
HEADER = ("Date received", "Product", "Sub-product", "Issue", "Sub-issue", NARRATIVE, "Company public response",
          "Company", "State", "ZIP code", "Tags", "Consumer consent provided?", "Submitted via",
          "Date sent to company", "Company response to consumer", "Timely response?", "Consumer disputed?",
          "Complaint ID")  # fmt: skip

# --- rows WRITTEN BY US in the release's layout (not real complaints) ---------------------------
# Every field quoted, quotes doubled, as the release's header "Date received","Product",… is
# written; the real 2020 head of complaints.csv the package ships is read by the same reader.
DEBT = "Attempts to collect debt not owed"
REPORT = "Incorrect information on your report"
FORECLOSURE = "Loan modification,collection,foreclosure"  # the pre-2017 taxonomy, a comma inside
TACTICS = "Communication tactics"
MULTILINE = "I paid this debt in XX/XX/2018.\nThey still call me every day.\n\nPlease make it stop."
QUOTED = 'The agent said "pay now, or else", twice.'
WRITTEN = [  # (Issue, narrative); an empty narrative is dropped, and so is its Issue
    (DEBT, MULTILINE), (REPORT, QUOTED), (REPORT, "An account on my report is not mine."),
    (FORECLOSURE, "My modification was denied without a reason, {$1200.00} in fees."), (DEBT, "Not my debt."),
    (TACTICS, "Calls at XXXX in the morning."), ("Managing an account", ""), (REPORT, "Wrong balance."),
    (DEBT, "They sued on a debt I never had."), ("Managing an account", "   "), (TACTICS, "Calls at work."),
    (FORECLOSURE, "Foreclosure started during my trial plan."),
]  # fmt: skip
ISSUES = sorted({DEBT, REPORT, FORECLOSURE, TACTICS})


def _field(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _write_release(folder, rows=WRITTEN) -> None:
    """``complaints.csv`` with ``rows`` as records of the release's 18 columns."""
    lines = [",".join(map(_field, HEADER))]
    for number, (issue, narrative) in enumerate(rows):
        record = {name: "" for name in HEADER}
        record.update({"Date received": "2018-03-0%d" % (1 + number % 9), "Product": "Debt collection", "Issue": issue,
                       NARRATIVE: narrative, "Company": "Example Corp, Inc.", "State": "CA",
                       "Complaint ID": str(2800000 + number)})  # fmt: skip
        lines.append(",".join(_field(record[name]) for name in HEADER))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "complaints.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _all(data) -> list[dict]:
    return [row for split in ("train", "validation", "test") for row in data.splits[split]]


def test_the_release_layout_quotes_line_breaks_and_records_without_a_narrative(tmp_path):
    """Rows written by us (above)."""
    _write_release(tmp_path / "houlsby" / TASK)
    data = get_task(TASK).load("dir", tmp_path)
    assert [len(data.splits[s]) for s in ("train", "validation", "test")] == list(SPLIT.sizes(10))  # 2 dropped
    assert not data.sample and data.declared_classes == 157
    assert data.label_names == tuple(ISSUES)  # sorted; "Managing an account" had no narrative
    texts = {row["text"]: data.label_names[row["label"]] for row in _all(data)}
    assert texts[MULTILINE] == DEBT and texts[QUOTED] == REPORT
    fingerprint = data.fingerprint()
    assert fingerprint["label_names"] == ISSUES and fingerprint["declared_classes"] == 157


def test_the_shipped_slice_is_the_release_head_with_its_narratives():
    """The real slice (tasks/data/README.md): 60 records of a 2020 complaints.csv, 38 with a narrative."""
    data = get_task(TASK).load("embedded", None)
    rows = _all(data)
    assert data.sample and [len(data.splits[s]) for s in ("train", "validation", "test")] == list(SPLIT.sizes(38))
    assert len(data.label_names) == 14 and list(data.label_names) == sorted(data.label_names)
    first = "transworld systems inc. \nis trying to collect a debt that is not mine, not owed and is inaccurate."
    assert {data.label_names[row["label"]] for row in rows if row["text"] == first} == {DEBT}
    assert all(row["text"].strip() for row in rows)


def test_the_hub_copy_is_read_at_its_parquet_export_with_its_column_names(monkeypatch):
    import datasets

    texts = ["Narrative one.", "", "Narrative\ntwo.", "Three.", "Four.", "Five.", "Six.", "Seven.", "Eight.", "Nine.",
             "Ten."]  # fmt: skip
    issues = [DEBT, "Fraud or scam", REPORT, TACTICS, DEBT, REPORT, DEBT, REPORT, TACTICS, DEBT, REPORT]
    split = datasets.Dataset.from_dict({"Complaint Text": texts, "Issue": issues, "Company": ["C"] * len(texts)})
    called = {}

    def load_dataset(*args, **kwargs):
        called.update(args=args, kwargs=kwargs)
        return datasets.DatasetDict({"train": split})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    data = get_task(TASK).load("hub", None)
    assert called == {"args": ("CFPB/consumer-finance-complaints",), "kwargs": {"revision": "refs/convert/parquet"}}
    assert data.location == "CFPB/consumer-finance-complaints@refs/convert/parquet"
    assert [len(data.splits[s]) for s in ("train", "validation", "test")] == list(SPLIT.sizes(10))
    assert data.label_names == tuple(sorted({DEBT, REPORT, TACTICS}))  # "Fraud or scam" only had no narrative
    assert {row["text"]: data.label_names[row["label"]] for row in _all(data)}["Narrative\ntwo."] == REPORT


def test_table_3_declares_157_classes_for_counting_before_any_data():
    from peftbench.counting import counts_from_config
    from peftbench.launch import compose

    counts = counts_from_config(compose(["model=bert-base", "method=houlsby", f"task={TASK}"]))
    assert counts["format"] == "classification" and counts["head"] == counts["hidden"] * 157 + 157


def _plan(tmp_path, data_dir, *overrides):
    from peftbench.launch import compose
    from peftbench.plan import plan

    return plan(compose(["model=tiny-bert", "method=houlsby", "method.bottleneck=8", f"task={TASK}",
                         f"data.dir={data_dir}", f"results_dir={tmp_path / 'results'}", *overrides]))  # fmt: skip


def test_a_snapshot_without_157_classes_is_refused_in_one_line_unless_labels_from_data(tmp_path):
    _write_release(tmp_path / "snapshot")
    with pytest.raises(UserError) as refused:
        _plan(tmp_path, tmp_path / "snapshot")
    message = str(refused.value)
    assert "names 4 classes, not the 157 of the paper's data" in message
    assert "task.labels_from_data=true to run these 4" in message
    assert "\n" not in message
    part = _plan(tmp_path, tmp_path / "snapshot", "task.labels_from_data=true").parts[0]
    assert part.task.label_names == tuple(ISSUES) and part.task.num_labels == 4
    assert part.task.verbalizers == tuple(issue.lower() for issue in ISSUES)


def test_the_label_set_is_part_of_the_run_id(tmp_path):
    """Two snapshots with the same settings but other Issue values are other runs (data.dir is
    not in the id); the same snapshot read again is the same run."""
    _write_release(tmp_path / "a")
    _write_release(tmp_path / "a_again")
    _write_release(tmp_path / "b", [(issue.replace(TACTICS, "Threatened to contact someone"), text)
                                    for issue, text in WRITTEN])  # fmt: skip
    ids = {name: _plan(tmp_path, tmp_path / name, "task.labels_from_data=true").run_id for name in ("a", "a_again", "b")}
    assert ids["a"] == ids["a_again"] != ids["b"]


def test_labels_from_data_is_refused_for_a_task_that_names_its_labels(tmp_path):
    from peftbench.launch import compose
    from peftbench.plan import plan

    with pytest.raises(UserError, match="task.labels_from_data=true is for tasks whose label set their data decides"):
        plan(compose(["model=tiny-bert", "task=sms_spam", "task.labels_from_data=true", f"results_dir={tmp_path}"]))


def test_tables_mark_runs_on_another_class_count():
    from peftbench.results.table import data_caveats

    other = {"data": {"sample": False, "label_names": ISSUES, "declared_classes": 157}}
    assert data_caveats(other) == ("runs on data with 4 classes, not the paper's 157",)
    paper = {"data": {"sample": False, "label_names": [f"issue {i}" for i in range(157)], "declared_classes": 157}}
    assert data_caveats(paper) == ()


@pytest.mark.usefixtures("one_thread")
def test_a_run_on_written_rows_fills_houlsby_table_2_with_its_caveat(tmp_path):
    """Rows written by us (above), run with their own 4 classes."""
    from pathlib import Path

    from peftbench.results.spec import load_spec
    from peftbench.results.table import build_table
    from peftbench.run import execute

    _write_release(tmp_path / "snapshot")
    record = execute(_plan(tmp_path, tmp_path / "snapshot", "task.labels_from_data=true", "trainer.max_steps=1",
                           "trainer.batch_size=4", "trainer.progress=false", "task.max_length=64"))  # fmt: skip
    assert record["status"] == "complete" and set(record["metrics"]["best"]) == {"validation", "test"}
    assert record["data"]["label_names"] == ISSUES and record["params"]["head"] == 4 * 32 + 4  # tiny-bert: hidden 32
    spec = load_spec("houlsby_table2", Path(__file__).resolve().parents[1] / "conf")
    table = build_table(spec, [record], model="tiny-bert", replacing="bert-base")
    cell = next(row for row in table.rows if row.label == "BERT-base adapters").cells[
        [column.id for column in spec.columns].index(TASK)]
    assert cell.value == pytest.approx(100 * record["metrics"]["best"]["test"]["accuracy"])
    assert cell.caveats == ("runs on data with 4 classes, not the paper's 157",)
