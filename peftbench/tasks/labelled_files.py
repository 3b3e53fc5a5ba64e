"""Text classification data sets released as files of labelled records: one declarative reader.

A ``FileSpec`` says everything a data set needs: the release files (read in order), the columns
that hold the text, an optional second text and the label, the label set as the release spells
it (in the task's label order), which raw labels a row is dropped for, how the release marks its
splits, its hub copy (if any) and the prompt for language models. Every data set of
``houlsby_suite.py`` (Houlsby et al. 2019, Table 2) and SICK and UKP Argument of
``adapterfusion_suite.py`` (Pfeiffer et al. 2021, Table 1) is one such table entry.

**A label set the data decides.** A release whose label set changes with the copy read (the CFPB
complaint database, republished daily, its ``Issue`` values those of the snapshot) gives no
``label_names`` but the paper's class count (``classes``): the task's labels are then the sorted
distinct labels of every row read (``TaskData.label_names``), and a run checks their count against
the paper's before any model loads (``peftbench.plan``).

**Records.** ``read_delimited`` reads comma- or tab-separated files with a header row (or, for
header-less releases, the column names the spec gives), decoded as UTF-8 (a byte-order mark
dropped) or, where the bytes are not UTF-8, as Latin-1: the Crowdflower "Data for Everyone"
exports are a mix of both. A spec may read its release otherwise (20 Newsgroups: one file per
message) by giving ``read``; either way a record is a dict of column → text, with ``_where`` (file
and line) for messages.

**Splits.** ``ColumnSplit``: the release marks each record's split in a column (SICK's
``SemEval_set``, UKP's ``set``). ``ProportionSplit``: the release has no split and the paper drew
one at random in fixed proportions (Houlsby et al.'s 80/10/10); the records, in file order, are
shuffled with a fixed seed, so every run and every machine sees the same split. A hub copy whose
splits are not the paper's (20 Newsgroups' train/test, SMS spam's single train) is pooled in the
hub's split order and split by the same rule.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import random
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

from peftbench.errors import UserError
from peftbench.tasks.base import Task, TaskData, score_labels
from peftbench.tasks.metrics import accuracy
from peftbench.tasks.sources import FIX, DataSource, release_folder

EMBEDDED_ROOT = Path(__file__).parent / "data"
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class ColumnSplit:
    """Each record's split is the value of ``column``, named by ``names`` (raw value → split)."""

    column: str
    names: dict[str, str]

    def __call__(self, spec: FileSpec, records: list[dict], rows: list[dict]) -> dict[str, list[dict]]:
        splits: dict[str, list[dict]] = {}
        for record, row in zip(records, rows, strict=True):
            raw = record[self.column].strip()
            if raw not in self.names:
                raise _unreadable(spec, record, f"{self.column} {raw!r} is not one of {', '.join(self.names)}")
            splits.setdefault(self.names[raw], []).append(row)
        return splits


@dataclass(frozen=True)
class ProportionSplit:
    """A random split in fixed proportions: ``train`` = ⌊train_fraction·n⌋ rows, validation half of
    the rest rounded down, test the remainder, after shuffling the rows (in release order) with
    ``random.Random(seed)``."""

    train_fraction: float
    seed: int

    def sizes(self, n: int) -> tuple[int, int, int]:
        train = int(self.train_fraction * n)
        validation = (n - train) // 2
        return train, validation, n - train - validation

    def __call__(self, spec: FileSpec | None, records: list[dict], rows: list[dict]) -> dict[str, list[dict]]:
        order = list(range(len(rows)))
        random.Random(self.seed).shuffle(order)
        train, validation, _ = self.sizes(len(rows))
        shuffled = [rows[i] for i in order]
        return {
            "train": shuffled[:train],
            "validation": shuffled[train : train + validation],
            "test": shuffled[train + validation :],
        }


@dataclass(frozen=True)
class FileSpec:
    """One data set of labelled records: its release, its columns, its labels, its splits."""

    what: str  # as messages name it
    files: tuple[str, ...]  # the release files, read in this order
    text: str  # the column of the text
    label: str  # the column of the label
    label_names: tuple[str, ...]  # the labels as the release spells them, in the task's order
    split: Callable[[FileSpec, list[dict], list[dict]], dict[str, list[dict]]]
    question: str  # the prompt's question for language models
    verbalizers: tuple[str, ...]  # each label as words, for rank classification (empty: the names')
    text_pair: str | None = None  # the column of a second text
    release: tuple[str, ...] = ("",)  # sub-folders of the task folder where the files may sit
    delimiter: str = ","
    columns: tuple[str, ...] | None = None  # a header-less release: its column names
    # A raw label → the label name; None drops the record (a "not sure" answer). Default: as is.
    label_of: Callable[[str], str | None] = str.strip
    read: Callable[[FileSpec, Path], list[dict]] | None = None  # default: read_delimited
    hub_id: str | None = None  # None: no public hub copy (the docstring says so)
    hub_config: str | None = None
    hub_revision: str | None = None
    hub_columns: dict[str, str] = field(default_factory=dict)  # our column name → the hub's
    embedded: str | None = None  # the shipped slice's folder under tasks/data/
    # label_names empty: the label set is the data's (its labels sorted), and the paper had this
    # many classes (``Task.declared_classes``)
    classes: int = 0
    needs_text: bool = False  # a record with an empty text is dropped (complaints without a narrative)


def _unreadable(spec: FileSpec, record: dict, problem: str) -> UserError:
    return UserError(f"{record['_where']}: {problem}; repair the row or restore the file from the {spec.what} release")


def decode(path: Path) -> str:
    """A release file's text: UTF-8 (without a byte-order mark) where it is, else Latin-1."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_delimited(spec: FileSpec, folder: Path) -> list[dict]:
    """Every record of ``spec.files`` in ``folder``, in file order; a tab-separated release is read
    without quoting (its texts hold bare quotes), a comma-separated one with CSV quoting."""
    records = []
    for name in spec.files:
        path = folder / name
        if not path.is_file():
            raise UserError(f"missing {path} ({spec.what}); {FIX} to the folder holding {', '.join(spec.files)}")
        quoting = csv.QUOTE_NONE if spec.delimiter == "\t" else csv.QUOTE_MINIMAL
        reader = csv.reader(io.StringIO(decode(path), newline=""), delimiter=spec.delimiter, quoting=quoting)
        header = list(spec.columns) if spec.columns else next(reader, [])
        for fields in reader:
            if not fields or fields == [""]:
                continue
            where = f"{path}:{reader.line_num}"
            if len(fields) != len(header):
                raise UserError(
                    f"{where}: expected {len(header)} fields ({', '.join(header)}), found {len(fields)}; "
                    f"repair the row or restore the file from the {spec.what} release"
                )
            records.append({**dict(zip(header, fields)), "_where": where})
    return records


def _rows(spec: FileSpec, records: list[dict]) -> tuple[list[dict], list[dict]]:
    """The records that carry a label of the task (and a text, where the spec needs one), and
    their rows; a row's label is its index, or its name where the data decides the label set."""
    kept, rows = [], []
    for record in records:
        for column in (spec.text, spec.label, spec.text_pair):
            if column and column not in record:
                raise _unreadable(spec, record, f"no column {column!r}")
        name = spec.label_of(record[spec.label])
        if name is None or (spec.needs_text and not (record[spec.text] or "").strip()):
            continue
        if spec.label_names and name not in spec.label_names:
            raise _unreadable(spec, record, f"label {record[spec.label]!r} is not one of {', '.join(spec.label_names)}")
        kept.append(record)
        rows.append({
            "text": record[spec.text],
            "text_pair": record[spec.text_pair] if spec.text_pair else None,
            "label": spec.label_names.index(name) if spec.label_names else name,
        })  # fmt: skip
    return kept, rows


def labelled_by_data(data: TaskData, classes: int) -> TaskData:
    """``data`` whose rows carry label names, their labels made indices into the sorted distinct
    names of every row read (every split: the label set is the snapshot's, not a split's)."""
    names = tuple(sorted({row["label"] for rows in data.splits.values() for row in rows}))
    index = {name: number for number, name in enumerate(names)}
    splits = {split: [{**row, "label": index[row["label"]]} for row in rows] for split, rows in data.splits.items()}
    return dataclasses.replace(data, splits=splits, label_names=names, declared_classes=classes)


def read_folder(spec: FileSpec, folder: Path, wanted_splits=None) -> dict[str, list[dict]]:
    """The release's rows, split as the spec says (every split: the proportion rule needs all rows)."""
    release = release_folder(folder, spec.release, spec.files[:1], spec.what)
    records = (spec.read or read_delimited)(spec, release)
    kept, rows = _rows(spec, records)
    if not rows:
        raise UserError(f"no labelled rows in {release} ({spec.what}); restore the files from the release")
    return spec.split(spec, kept, rows)


def read_hub(spec: FileSpec, dataset_dict) -> dict[str, list[dict]]:
    """The hub copy's rows: its splits as they are where the release marks splits, else pooled in
    the hub's split order and split by the proportion rule."""
    names = {ours: spec.hub_columns.get(ours, ours) for ours in (spec.text, spec.label, spec.text_pair) if ours}
    per_split = {}
    for split, dataset in dataset_dict.items():
        label_names = getattr(dataset.features[names[spec.label]], "names", None)
        records = []
        for number, example in enumerate(dataset):
            record = {ours: example[hub] for ours, hub in names.items()}
            if label_names is not None:  # a ClassLabel: its name is the raw label
                record[spec.label] = label_names[record[spec.label]]
            records.append({**record, "_where": f"{spec.hub_id} {split} row {number}"})
        per_split[split] = _rows(spec, records)
    if isinstance(spec.split, ColumnSplit):
        return {split: rows for split, (_, rows) in per_split.items() if split in SPLITS}
    pooled_records = [record for records, _ in per_split.values() for record in records]
    return spec.split(spec, pooled_records, [row for _, rows in per_split.values() for row in rows])


def data_source(name: str, benchmark: str, folder: str | None, spec: FileSpec) -> DataSource:
    return DataSource(
        what=spec.what, benchmark=benchmark, folder=folder, files=spec.files,
        hub_id=spec.hub_id or "", hub_config=spec.hub_config, hub_revision=spec.hub_revision,
        read_folder=partial(read_folder, spec), read_hub=partial(read_hub, spec),
        embedded=EMBEDDED_ROOT / spec.embedded if spec.embedded else None,
        hint=f" (the folder holding {spec.files[0]})",
    )  # fmt: skip


def _load(source: DataSource, spec: FileSpec, kind: str, directory=None, splits=None) -> TaskData:
    if kind == "hub" and spec.hub_id is None:
        raise UserError(
            f"{spec.what} has no copy on the Hugging Face hub; {FIX} to the folder holding {', '.join(spec.files)}"
        )
    data = source.load(kind, directory, splits)
    return data if spec.label_names else labelled_by_data(data, spec.classes)


def prompt(spec: FileSpec, row: dict) -> str:
    """The text (and second text), then the spec's question, for rank classification."""
    pair = f"\n{row['text_pair']}" if row.get("text_pair") else ""
    return f"{row['text']}{pair}\nQuestion: {spec.question}\nAnswer:"


def make_task(name: str, benchmark: str, folder: str | None, spec: FileSpec) -> Task:
    """The task: accuracy on validation for selection, the labelled test split scored once."""
    source = data_source(name, benchmark, folder, spec)
    return Task(
        name=name,
        benchmark=benchmark,
        label_names=spec.label_names,
        train_split="train",
        eval_splits=("validation",),
        main_metric="accuracy",
        score=score_labels(accuracy),
        load=partial(_load, source, spec),
        has_embedded=spec.embedded is not None,
        metric_names=("accuracy",),
        verbalizers=spec.verbalizers,
        prompt=partial(prompt, spec),
        test_splits=("test",),
        declared_classes=spec.classes,
    )
