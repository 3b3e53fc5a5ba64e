"""The nine GLUE tasks (Wang et al., 2018, "GLUE: A Multi-Task Benchmark and Analysis Platform
for Natural Language Understanding"), read from the hub, from the original files, or from the
small slices shipped in the package.

A run with a task's unlabelled test split writes the GLUE server's file of it under
``<run>/submission/`` (``glue_submission.py``); ``peftbench submit glue RUN…`` zips them.

Labels, label order and split names are those of the hub dataset ``nyu-mll/glue`` (e.g. MNLI
entailment=0, neutral=1, contradiction=2; test labels are None). Metrics are GLUE's (see
``metrics.py``); the main metric is the one the LoRA paper's Table 2 reports: MCC for CoLA, Pearson
for STS-B, accuracy for the others (MNLI matched first, then mismatched).

Three sources (``tasks/sources.py``; ``load(source, data_dir)``):

- ``"dir"``: the folder layout written by GLUE's ``download_glue_data.py`` (``glue/RTE/train.tsv``,
  ``dev.tsv``, ``test.tsv``; MNLI ``dev_matched.tsv`` …, and the diagnostic set
  ``glue/diagnostic/diagnostic.tsv`` as MNLI's split ``test_ax``). Files are read with ``csv`` (tab,
  QUOTE_NONE) and columns are found by header name; CoLA's train and dev files have no header,
  and MRPC's header begins with a UTF-8 byte-order mark. When ``msr_paraphrase_train.txt`` and
  ``dev_ids.tsv`` are both there, MRPC train is rebuilt exactly as ``download_glue_data.py`` builds
  it (the msr train pairs not listed in ``dev_ids.tsv``: 3,668 rows).
- ``"hub"``: ``datasets.load_dataset("nyu-mll/glue", <task>)``.
- ``"embedded"``: real slices of the original files in ``peftbench/tasks/data/glue`` (built by
  ``scripts/make_embedded_slices.py``), read as ``"dir"`` is and marked as a sample.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

from peftbench.errors import UserError
from peftbench.tasks.base import Task, score_labels
from peftbench.tasks.glue_submission import SERVER_FILES, write_submission
from peftbench.tasks.metrics import glue_scorer
from peftbench.tasks.ptuning_templates import TEMPLATES as PTUNING_TEMPLATES
from peftbench.tasks.sources import FIX, DataSource, wanted

HUB_DATASET = "nyu-mll/glue"
EMBEDDED_ROOT = Path(__file__).parent / "data" / "glue"

_STANDARD_FILES = (("train", "train.tsv"), ("validation", "dev.tsv"), ("test", "test.tsv"))


@dataclass(frozen=True)
class GlueSpec:
    """One GLUE task: its label space, its main metric and where its data sits in each source."""

    folder: str  # the task folder written by download_glue_data.py
    label_names: tuple[str, ...]  # nyu-mll/glue's ClassLabel names, in order; () for regression
    file_labels: tuple[str, ...]  # the labels as the files spell them, in the same order
    text: str  # header name of the first text column in the files
    text_pair: str | None
    label: str  # header name of the label column in the files
    hub_text: str  # column names in nyu-mll/glue
    hub_text_pair: str | None
    main_metric: str
    eval_splits: tuple[str, ...] = ("validation",)
    files: tuple[tuple[str, str], ...] = _STANDARD_FILES  # (split, file name); test is optional
    headerless_columns: tuple[str, ...] = ()  # CoLA: its labelled files have no header row
    train_from_msr: bool = False  # MRPC: rebuild train from msr_paraphrase_train.txt + dev_ids.tsv
    embedded: bool = False


GLUE_SPECS: dict[str, GlueSpec] = {
    "cola": GlueSpec(
        folder="CoLA", label_names=("unacceptable", "acceptable"), file_labels=("0", "1"),
        text="sentence", text_pair=None, label="label",
        hub_text="sentence", hub_text_pair=None, main_metric="mcc",
        headerless_columns=("source", "label", "notes", "sentence"), embedded=True,
    ),
    "sst2": GlueSpec(
        folder="SST-2", label_names=("negative", "positive"), file_labels=("0", "1"),
        text="sentence", text_pair=None, label="label",
        hub_text="sentence", hub_text_pair=None, main_metric="accuracy", embedded=True,
    ),
    "mrpc": GlueSpec(
        folder="MRPC", label_names=("not_equivalent", "equivalent"), file_labels=("0", "1"),
        text="#1 String", text_pair="#2 String", label="Quality",
        hub_text="sentence1", hub_text_pair="sentence2", main_metric="accuracy",
        train_from_msr=True, embedded=True,
    ),
    "stsb": GlueSpec(
        folder="STS-B", label_names=(), file_labels=(),
        text="sentence1", text_pair="sentence2", label="score",
        hub_text="sentence1", hub_text_pair="sentence2", main_metric="pearson", embedded=True,
    ),
    "qqp": GlueSpec(
        folder="QQP", label_names=("not_duplicate", "duplicate"), file_labels=("0", "1"),
        text="question1", text_pair="question2", label="is_duplicate",
        hub_text="question1", hub_text_pair="question2", main_metric="accuracy",
    ),
    "mnli": GlueSpec(
        folder="MNLI", label_names=("entailment", "neutral", "contradiction"),
        file_labels=("entailment", "neutral", "contradiction"),
        text="sentence1", text_pair="sentence2", label="gold_label",
        hub_text="premise", hub_text_pair="hypothesis", main_metric="accuracy",
        eval_splits=("validation_matched", "validation_mismatched"),
        files=(
            ("train", "train.tsv"),
            ("validation_matched", "dev_matched.tsv"),
            ("validation_mismatched", "dev_mismatched.tsv"),
            ("test_matched", "test_matched.tsv"),
            ("test_mismatched", "test_mismatched.tsv"),
            ("test_ax", "../diagnostic/diagnostic.tsv"),  # the diagnostic set, which the MNLI model predicts
        ),
    ),
    "qnli": GlueSpec(
        folder="QNLI", label_names=("entailment", "not_entailment"),
        file_labels=("entailment", "not_entailment"),
        text="question", text_pair="sentence", label="label",
        hub_text="question", hub_text_pair="sentence", main_metric="accuracy", embedded=True,
    ),
    "rte": GlueSpec(
        folder="RTE", label_names=("entailment", "not_entailment"),
        file_labels=("entailment", "not_entailment"),
        text="sentence1", text_pair="sentence2", label="label",
        hub_text="sentence1", hub_text_pair="sentence2", main_metric="accuracy", embedded=True,
    ),
    "wnli": GlueSpec(
        folder="WNLI", label_names=("not_entailment", "entailment"), file_labels=("0", "1"),
        text="sentence1", text_pair="sentence2", label="label",
        hub_text="sentence1", hub_text_pair="sentence2", main_metric="accuracy", embedded=True,
    ),
}


def _has_labels(split: str) -> bool:
    return not split.startswith("test")


def _read_task_folder(spec: GlueSpec, folder: Path, wanted_splits=None) -> dict[str, list[dict]]:
    """Every split whose file is in ``folder`` (of ``wanted_splits``, all when None): train and
    eval files are required, test is not."""
    msr_train, dev_ids = folder / "msr_paraphrase_train.txt", folder / "dev_ids.tsv"
    rebuild_train = spec.train_from_msr and msr_train.is_file() and dev_ids.is_file()
    splits = {}
    for split, file_name in (item for item in spec.files if wanted(item[0], wanted_splits)):
        path = folder / file_name
        if split == "train" and rebuild_train:
            path, rows = msr_train, _rebuild_mrpc_train(spec, msr_train, dev_ids)
        elif path.is_file():
            rows = _read_tsv(spec, path, labelled=_has_labels(split))
        elif _has_labels(split):
            raise UserError(
                f"missing {path} (GLUE {spec.folder} {split} split); {FIX} to a complete GLUE copy"
            )
        else:
            continue
        if not rows:
            raise UserError(f"{path} has no rows; restore it from the original GLUE data")
        splits[split] = rows
    return splits


def _read_tsv(spec: GlueSpec, path: Path, labelled: bool) -> list[dict]:
    """Rows of one original GLUE tsv file (tab-separated, no quoting; blank lines skipped)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        has_header = not (labelled and spec.headerless_columns)
        columns = next(reader, []) if has_header else list(spec.headerless_columns)
        text = _column_index(columns, spec.text, path)
        text_pair = _column_index(columns, spec.text_pair, path) if spec.text_pair else None
        label = _column_index(columns, spec.label, path) if labelled else None
        rows = []
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(columns):
                raise UserError(
                    f"{path}:{reader.line_num}: expected {len(columns)} tab-separated columns, found "
                    f"{len(fields)}; repair the row or restore the file from the original GLUE data"
                )
            rows.append({
                "text": fields[text],
                "text_pair": None if text_pair is None else fields[text_pair],
                "label": None if label is None else _parse_label(spec, fields[label], path, reader.line_num),
            })
    return rows


def _column_index(columns: list[str], name: str, path: Path) -> int:
    if name not in columns:
        found = ", ".join(columns) or "an empty file"
        raise UserError(
            f"{path}: no column {name!r} in the header (found {found}); "
            "use the original GLUE files written by download_glue_data.py"
        )
    return columns.index(name)


def _parse_label(spec: GlueSpec, raw: str, path: Path, line: int) -> int | float:
    """A file label as nyu-mll/glue has it: the class index, or the float similarity score."""
    if spec.file_labels:
        if raw not in spec.file_labels:
            raise UserError(
                f"{path}:{line}: label {raw!r} is not one of {', '.join(spec.file_labels)}; "
                "repair the row or restore the file from the original GLUE data"
            )
        return spec.file_labels.index(raw)
    try:
        score = float(raw)
    except ValueError:
        score = math.nan
    if not math.isfinite(score):
        raise UserError(
            f"{path}:{line}: score {raw!r} is not a number; repair the row or restore the file "
            "from the original GLUE data"
        )
    return score


def _rebuild_mrpc_train(spec: GlueSpec, msr_train: Path, dev_ids: Path) -> list[dict]:
    """MRPC train as download_glue_data.py writes it: each stripped msr_paraphrase_train.txt line
    split on tabs, keeping the pairs whose (id1, id2) is not in dev_ids.tsv."""
    dev_pairs = set()
    with dev_ids.open(encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            ids = line.strip().split("\t")
            if len(ids) != 2:
                raise UserError(
                    f"{dev_ids}:{line_number}: expected 2 tab-separated ids, found {len(ids)}; "
                    "restore the file from the original GLUE data"
                )
            dev_pairs.add(tuple(ids))
    rows = []
    with msr_train.open(encoding="utf-8-sig") as handle:
        next(handle, None)  # header: Quality, #1 ID, #2 ID, #1 String, #2 String
        for line_number, line in enumerate(handle, start=2):
            fields = line.strip().split("\t")
            if len(fields) != 5:
                raise UserError(
                    f"{msr_train}:{line_number}: expected 5 tab-separated columns, found {len(fields)}; "
                    "repair the row or restore the file from the original MRPC data"
                )
            quality, id1, id2, sentence1, sentence2 = fields
            if (id1, id2) not in dev_pairs:
                label = _parse_label(spec, quality, msr_train, line_number)
                rows.append({"text": sentence1, "text_pair": sentence2, "label": label})
    return rows


def _hub_splits(name: str, spec: GlueSpec, dataset_dict) -> dict[str, list[dict]]:
    hub_id = f"{HUB_DATASET}/{name}"
    return {split: _hub_rows(hub_id, spec, dataset) for split, dataset in dataset_dict.items()}


def _hub_rows(hub_id: str, spec: GlueSpec, dataset) -> list[dict]:
    """Rows of one hub split; the hub marks missing (test) labels as -1."""
    hub_label_names = tuple(getattr(dataset.features["label"], "names", ()))
    if hub_label_names != spec.label_names:
        raise ValueError(f"{hub_id} labels are {hub_label_names}, peftbench expects {spec.label_names}")
    texts = dataset[spec.hub_text]
    pairs = dataset[spec.hub_text_pair] if spec.hub_text_pair else [None] * len(dataset)
    return [
        {"text": text, "text_pair": pair, "label": None if label == -1 else label}
        for text, pair, label in zip(texts, pairs, dataset["label"], strict=True)
    ]


# --- prompts for rank classification --------------------------------------------------------------
# GPT-3's (Brown et al. 2020, Appendix G) and PET's question-answer patterns, as the SuperGLUE
# prompts: the row, a question, "Answer:", and each label's word (in label order) scored after it.
# STS-B, a regression, is read as text as T5 reads it (Raffel et al. 2020, Appendix B; Hyperformer
# trains it so among the eight GLUE tasks): its score rounded to the nearest 0.2 and written "3.8",
# so its label words are the 26 values 0.0 … 5.0; the ranked word's value is the prediction.

STSB_VALUES = tuple(step / 5 for step in range(26))
VERBALIZERS: dict[str, tuple[str, ...]] = {
    "cola": ("No", "Yes"), "sst2": ("negative", "positive"), "mrpc": ("No", "Yes"), "qqp": ("No", "Yes"),
    "mnli": ("True", "Neither", "False"), "qnli": ("Yes", "No"), "rte": ("True", "False"), "wnli": ("False", "True"),
    "stsb": tuple(f"{value:.1f}" for value in STSB_VALUES),
}
PROMPTS: dict[str, Callable[[dict], str]] = {
    "cola": lambda row: f"{row['text']}\nQuestion: Is this sentence grammatical?\nAnswer:",
    "sst2": lambda row: f"{row['text']}\nQuestion: Is this sentence positive or negative?\nAnswer:",
    "mrpc": lambda row: (
        f"Sentence 1: {row['text']}\nSentence 2: {row['text_pair']}\n"
        "Question: Do both sentences mean the same thing?\nAnswer:"
    ),
    "qqp": lambda row: (
        f"Question 1: {row['text']}\nQuestion 2: {row['text_pair']}\n"
        "Question: Do both questions ask the same thing?\nAnswer:"
    ),
    "stsb": lambda row: (
        f"Sentence 1: {row['text']}\nSentence 2: {row['text_pair']}\n"
        "Question: How similar are the two sentences, from 0.0 to 5.0?\nAnswer:"
    ),
    "mnli": lambda row: f"{row['text']}\nQuestion: {row['text_pair']} True, False or Neither?\nAnswer:",
    "qnli": lambda row: (
        f"Question: {row['text']}\nSentence: {row['text_pair']}\n"
        "Question: Does the sentence answer the question?\nAnswer:"
    ),
    "rte": lambda row: f"{row['text']}\nQuestion: {row['text_pair']} True or False?\nAnswer:",
    "wnli": lambda row: f"{row['text']}\nQuestion: {row['text_pair']} True or False?\nAnswer:",
}


def data_source(name: str, spec: GlueSpec) -> DataSource:
    """GLUE task ``name`` in a data folder (``glue/<Task>/``), on the hub and shipped."""
    return DataSource(
        what=f"GLUE {spec.folder}", benchmark="glue", folder=spec.folder,
        files=tuple(f for _, f in spec.files if not f.startswith("../")),  # the task's own: they mark its folder
        hub_id=HUB_DATASET, hub_config=name,
        read_folder=partial(_read_task_folder, spec), read_hub=partial(_hub_splits, name, spec),
        embedded=EMBEDDED_ROOT / spec.folder if spec.embedded else None,
    )  # fmt: skip


def _task(name: str, spec: GlueSpec) -> Task:
    scorer, metric_names = glue_scorer(name)
    source = data_source(name, spec)
    return Task(
        name=name,
        benchmark="glue",
        label_names=spec.label_names,
        train_split="train",
        eval_splits=spec.eval_splits,
        main_metric=spec.main_metric,
        score=score_labels(scorer),
        load=source.load,
        has_embedded=source.embedded is not None,
        metric_names=metric_names,
        verbalizers=VERBALIZERS.get(name, ()),
        prompt=PROMPTS.get(name),
        verbalized_values=STSB_VALUES if name == "stsb" else (),
        ptuning_template=PTUNING_TEMPLATES.get(name),
        submit=partial(write_submission, name, spec.file_labels),
        submission_splits=tuple(split for task, split in SERVER_FILES if task == name),
    )


TASKS: dict[str, Task] = {name: _task(name, spec) for name, spec in GLUE_SPECS.items()}
