"""The RAFT benchmark (Alex et al., 2021, "RAFT: A Real-World Few-Shot Text Classification
Benchmark", NeurIPS Datasets and Benchmarks): eleven real-world text classification tasks with
50 labelled training rows each and a hidden-label test set scored on the leaderboard.

**Tasks.** Each task is named ``raft_<folder>``, after its folder in the RAFT data (and its config
in the hub dataset ``ought/raft``). The benchmark is the eleven tasks of the paper's results table
(ADE, B77, NIS, OSE, Over, SOT, SRI, TAI, ToS, TEH, TC; ``PAPER_ABBREVIATIONS``), in that order
(``BENCHMARK_TASKS``). The RAFT data also holds a twelfth folder,
``medical_subdomain_of_clinical_notes``, that is not one of the eleven: the paper's results, the
``ought/raft`` dataset card (its split table lists eleven tasks, 550 training rows) and the
RAFT baselines' prompt settings all leave it out, while the submission template still carries a
``predictions.csv`` for it. It is registered as ``raft_medical_subdomain_of_clinical_notes`` with
``benchmark="raft_extra"``, so that it loads from ``data.dir`` or the hub (a submission needs its
file) but never counts as a RAFT benchmark task.

**Rows** (``kind="classification"``): ``text`` is the task's data columns (the ``data_columns``
of its ``task.json``, without ``ID``) as ``"Column: value"`` lines, leaving out empty values and
stripping the others, as RAFT's baselines and T-Few format an example; ``text_pair`` is None;
``label`` is the index of the label in the ``task.json`` label list (None for test rows); ``id``
is the row's ``ID`` (an int), which a submission needs. The csv files spell labels as text; the
hub's ``Label`` is a ClassLabel whose name 0 is ``"Unlabeled"`` (the test rows) followed by the
``task.json`` labels, so hub label k is our k − 1 and hub 0 is None. ``label_names`` never include
``"Unlabeled"``.

**Prompt and verbalizers** (for rank classification): ``prompt(row)`` is a one- or two-sentence
instruction, the row's text and ``"\\nLabel:"``, the layout of T-Few's RAFT template (Liu et al.
2022, ``RaftTemplate`` in ``r-three/t-few``: instruction, the ``Field: value`` lines, then
``Label:``) and of the RAFT baselines' prompts (``oughtinc/raft-baselines``,
``InContextClassifier.format_prompt_end``). The instructions are shortened from the task
instructions in the RAFT baselines' ``prompt_construction_settings.jsonl`` (which T-Few reuses);
the extra medical task has none there, and its instruction is ours. ``verbalizers`` are the label
names with ``_`` read as a space (only Banking77's labels have any; T-Few's
``cleaned_answer_choices_b77`` does the same).

**Metric.** Macro-F1 over the classes (``metrics.macro_f1``): the leaderboard scores each task by
macro-F1 and averages the tasks (dataset card; ``huggingface/hf_benchmarks``
``benchmarks/raft/evaluation.py``).

**Splits.** ``train`` (the 50 labelled rows) and ``test`` (unlabelled). RAFT has no validation
set: the run builds ``validation`` from a fold of ``train`` with
``peftbench.tasks.folds.cross_validation_split``.

**Sources** (``tasks/sources.py``; ``load(source, data_dir)``):

- ``"dir"``: the RAFT csv layout, ``<task>/{task.json, train.csv, test_unlabeled.csv}`` (as in
  the first commit of ``oughtinc/raft-baselines`` and the hub repo's ``data/`` folder); ``data_dir``
  is a root holding ``raft/<task>/``, the ``raft`` folder, or the task folder. ``task.json`` is
  optional but must match the task when present; ``test_unlabeled.csv`` is optional; each csv may
  also be gzipped (``train.csv.gz``).
- ``"hub"``: ``datasets.load_dataset("ought/raft", <task>)``.
- ``"embedded"``: ``peftbench/tasks/data/raft/<task>/`` ships each benchmark task's real
  ``task.json`` and ``train.csv`` (gzipped; byte-identical once decompressed), and no test file.
  The 50 rows are the whole official train split, and dev scores come from folds of it, so an
  embedded run scores exactly as a ``dir`` or ``hub`` run does: ``TaskData.sample`` is False. It
  cannot write a submission (no test rows).

**Submissions.** A run with test rows writes ``<run>/submission/<task>/predictions.csv`` as the
leaderboard reads it (``raft_submission.py``).
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Sequence

from peftbench.errors import UserError
from peftbench.tasks.base import Task, score_labels
from peftbench.tasks.metrics import macro_f1
from peftbench.tasks.raft_submission import write_submission
from peftbench.tasks.sources import FIX, DataSource, wanted

HUB_DATASET = "ought/raft"
EMBEDDED_ROOT = Path(__file__).parent / "data" / "raft"
NAME_PREFIX = "raft_"
UNLABELED = "Unlabeled"  # the hub's ClassLabel name 0, carried by the test rows
TRAIN_FILE, TEST_FILE = "train.csv", "test_unlabeled.csv"

# The eleven benchmark tasks, in the order of the paper's results table, with its abbreviations.
PAPER_ABBREVIATIONS: dict[str, str] = {
    "ade_corpus_v2": "ADE",
    "banking_77": "B77",
    "neurips_impact_statement_risks": "NIS",
    "one_stop_english": "OSE",
    "overruling": "Over",
    "semiconductor_org_types": "SOT",
    "systematic_review_inclusion": "SRI",
    "tai_safety_research": "TAI",
    "terms_of_service": "ToS",
    "tweet_eval_hate": "TEH",
    "twitter_complaints": "TC",
}
EXTRA_FOLDERS: tuple[str, ...] = ("medical_subdomain_of_clinical_notes",)

# Shortened from the instructions of the RAFT baselines' prompt_construction_settings.jsonl;
# the medical task has none there (see the module docstring).
INSTRUCTIONS: dict[str, str] = {
    "ade_corpus_v2": "Label the sentence based on whether it is related to an adverse drug effect (ADE).",
    "banking_77": "The following is a banking customer service query. "
    "Classify the query into one of the 77 categories available.",
    "neurips_impact_statement_risks": "Label the impact statement based on whether it mentions a "
    "harmful application of the research done in the paper.",
    "one_stop_english": "The following is an article from The Guardian, rewritten by teachers for "
    "adult learners of English at three levels: elementary, intermediate and advanced. "
    "Predict the level of the article.",
    "overruling": "In law, an overruling sentence nullifies a previous case decision as a precedent. "
    "Label the sentence based on whether it is overruling or not.",
    "semiconductor_org_types": "The following is an institution that contributed a paper to a "
    "semiconductor conference. Classify it as a university, a company or a research institute.",
    "systematic_review_inclusion": "Identify whether this paper should be included in a meta-review "
    "of systematic reviews on interventions designed to promote charitable donations.",
    "tai_safety_research": "Transformative AI (TAI) is AI that precipitates a transition comparable to "
    "the agricultural or industrial revolution. Label the paper based on whether it is TAI safety research.",
    "terms_of_service": "Label the sentence from a Terms of Service based on whether it is potentially unfair.",
    "tweet_eval_hate": "Label whether the following tweet contains hate speech against either "
    "immigrants or women.",
    "twitter_complaints": "A complaint presents a state of affairs which breaches the writer's "
    "favorable expectation. Label the tweet text based on whether it contains a complaint.",
    "medical_subdomain_of_clinical_notes": "Classify the clinical note by the medical subdomain it belongs to.",
}


@dataclass(frozen=True)
class RaftSpec:
    """One RAFT task as its ``task.json`` defines it."""

    folder: str  # the task folder, and the ought/raft config name
    label_names: tuple[str, ...]  # task.json's Label list, in order ("Unlabeled" excluded)
    data_columns: tuple[str, ...]  # task.json's data_columns without ID, in order
    instruction: str
    in_benchmark: bool
    embedded: bool  # train.csv(.gz) shipped under EMBEDDED_ROOT

    @property
    def task_name(self) -> str:
        return NAME_PREFIX + self.folder

    @property
    def verbalizers(self) -> tuple[str, ...]:
        return tuple(name.replace("_", " ") for name in self.label_names)


def render_text(columns: Sequence[str], values: dict) -> str:
    """The data columns as ``"Column: value"`` lines, empty values left out, values stripped."""
    lines = []
    for column in columns:
        value = values.get(column)
        value = "" if value is None else str(value).strip()
        if value:
            lines.append(f"{column}: {value}")
    return "\n".join(lines)


def raft_prompt(instruction: str, row: dict) -> str:
    """The instruction, the row's ``Column: value`` lines and ``Label:``, one per line."""
    return "\n".join(part for part in (instruction, row["text"]) if part) + "\nLabel:"


def read_task_json(path: Path) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    """``(label_names, data_columns without ID, name)`` from a RAFT ``task.json``."""
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        labels = spec["label_columns"]["Label"]
        columns = spec["data_columns"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"{path} is not a RAFT task.json ({type(error).__name__}: {error}); "
            "restore it from the original RAFT data"
        ) from error
    if not (isinstance(labels, list) and isinstance(columns, list) and labels and "ID" in columns):
        raise UserError(
            f"{path}: expected a Label list and data_columns with ID; restore it from the original RAFT data"
        )
    return tuple(labels), tuple(c for c in columns if c != "ID"), spec.get("name")


def _spec(folder: str) -> RaftSpec:
    labels, columns, _ = read_task_json(EMBEDDED_ROOT / folder / "task.json")
    return RaftSpec(
        folder=folder,
        label_names=labels,
        data_columns=columns,
        instruction=INSTRUCTIONS[folder],
        in_benchmark=folder in PAPER_ABBREVIATIONS,
        embedded=_find_file(EMBEDDED_ROOT / folder, TRAIN_FILE) is not None,
    )


def _find_file(folder: Path, name: str) -> Path | None:
    """``folder/name``, or its gzipped ``name.gz``, whichever exists."""
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            return path
    return None


def _read_task_folder(spec: RaftSpec, folder: Path, wanted_splits=None) -> dict[str, list[dict]]:
    """``train`` (required: validation is a fold of it) and ``test`` (when ``test_unlabeled.csv`` is
    there and wanted) of one task folder."""
    task_json = folder / "task.json"
    if task_json.is_file():
        labels, columns, name = read_task_json(task_json)
        if name not in (None, spec.folder) or labels != spec.label_names or columns != spec.data_columns:
            raise UserError(
                f"{task_json} describes RAFT task {name!r} with labels {list(labels)} and columns "
                f"{list(columns)}, not {spec.folder} (labels {list(spec.label_names)}, columns "
                f"{list(spec.data_columns)}); {FIX} to the folder holding raft/{spec.folder}"
            )
    train = _find_file(folder, TRAIN_FILE)
    if train is None:
        raise UserError(
            f"missing {folder / TRAIN_FILE} (RAFT {spec.folder} train split); "
            f"{FIX} to a complete RAFT copy"
        )
    splits = {"train": _read_csv(spec, train, labelled=True)}
    test = _find_file(folder, TEST_FILE) if wanted("test", wanted_splits) else None
    if test is not None:
        splits["test"] = _read_csv(spec, test, labelled=False)
    for split, rows in splits.items():
        if not rows:
            path = train if split == "train" else test
            raise UserError(f"{path} has no rows; restore it from the original RAFT data")
    return splits


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _read_csv(spec: RaftSpec, path: Path, labelled: bool) -> list[dict]:
    """Rows of one RAFT csv file (comma-separated, quoted fields may span lines)."""
    try:
        with _open_text(path) as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            required = [*spec.data_columns, "ID", *(["Label"] if labelled else [])]
            missing = [column for column in required if column not in columns]
            if missing:
                found = ", ".join(columns) or "an empty file"
                raise UserError(
                    f"{path}: no column {', '.join(map(repr, missing))} in the header (found {found}); "
                    f"use the original RAFT {spec.folder} files"
                )
            rows = []
            for record in reader:
                if None in record or None in record.values():
                    raise UserError(
                        f"{path}:{reader.line_num}: expected {len(columns)} comma-separated columns; "
                        "repair the row or restore the file from the original RAFT data"
                    )
                label = None
                if "Label" in columns:
                    label = _file_label(spec, record["Label"], labelled, path, reader.line_num)
                rows.append({
                    "text": render_text(spec.data_columns, record),
                    "text_pair": None,
                    "label": label,
                    "id": parse_id(record["ID"]),
                })
    except (csv.Error, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as error:
        raise UserError(
            f"{path} is not a readable RAFT csv file ({error}); restore it from the original RAFT data"
        ) from error
    return rows


def _file_label(spec: RaftSpec, raw: str, labelled: bool, path: Path, line: int) -> int | None:
    """A csv label (text) as its index in the task's label list; unlabelled test rows give None."""
    if raw in spec.label_names:
        return spec.label_names.index(raw)
    if not labelled and raw in ("", UNLABELED):
        return None
    raise UserError(
        f"{path}:{line}: label {raw!r} is not one of {', '.join(map(repr, spec.label_names))}; "
        "repair the row or restore the file from the original RAFT data"
    )


def parse_id(raw) -> int | str:
    """A row ID as an int (the csv files spell it as text, the hub as an int); other IDs as text."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    text = str(raw).strip()
    return int(text) if re.fullmatch(r"[0-9]+", text) else text


def _hub_splits(spec: RaftSpec, dataset_dict) -> dict[str, list[dict]]:
    hub_id = f"{HUB_DATASET}/{spec.folder}"
    return {split: hub_rows(spec, dataset, hub_id) for split, dataset in dataset_dict.items()}


def hub_rows(spec: RaftSpec, dataset, hub_id: str = HUB_DATASET) -> list[dict]:
    """Rows of one ``ought/raft`` split: ClassLabel 0 ("Unlabeled") is None, k is label k − 1."""
    hub_names = tuple(getattr(dataset.features.get("Label"), "names", ()))
    if hub_names != (UNLABELED, *spec.label_names):
        raise ValueError(f"{hub_id} labels are {hub_names}, peftbench expects {(UNLABELED, *spec.label_names)}")
    missing = [column for column in (*spec.data_columns, "ID") if column not in dataset.column_names]
    if missing:
        raise ValueError(f"{hub_id} has no column {', '.join(missing)}; it has {', '.join(dataset.column_names)}")
    return [
        {
            "text": render_text(spec.data_columns, record),
            "text_pair": None,
            "label": None if record["Label"] == 0 else record["Label"] - 1,
            "id": parse_id(record["ID"]),
        }
        for record in dataset
    ]


def spec_for(task_name: str) -> RaftSpec:
    """The spec of ``raft_<folder>`` (or of ``<folder>``); an unknown name is a ``UserError``."""
    folder = task_name[len(NAME_PREFIX):] if task_name.startswith(NAME_PREFIX) else task_name
    if folder not in RAFT_SPECS:
        known = ", ".join(spec.task_name for spec in RAFT_SPECS.values())
        raise UserError(f"unknown RAFT task {task_name!r}; choose one of: {known}")
    return RAFT_SPECS[folder]


def submit(task_name: str, folder: Path, split: str, rows: Sequence[dict], predictions: Sequence) -> Path:
    """A run's test predictions (``Task.submit``): the leaderboard file under ``folder``."""
    return write_submission(folder, spec_for(task_name), [row["id"] for row in rows], predictions)


def data_source(spec) -> DataSource:
    """RAFT task ``spec`` in a data folder (``raft/<task>/``), on the hub and shipped (train only)."""
    return DataSource(
        what=f"RAFT {spec.folder}", benchmark="raft", folder=spec.folder,
        files=(TRAIN_FILE, f"{TRAIN_FILE}.gz"), hub_id=HUB_DATASET, hub_config=spec.folder,
        read_folder=partial(_read_task_folder, spec), read_hub=partial(_hub_splits, spec),
        embedded=EMBEDDED_ROOT / spec.folder if spec.embedded else None,
        embedded_sample=False,  # the 50 rows are the whole official train split
    )  # fmt: skip


def _task(spec: RaftSpec) -> Task:
    source = data_source(spec)
    return Task(
        name=spec.task_name,
        benchmark="raft" if spec.in_benchmark else "raft_extra",
        label_names=spec.label_names,
        train_split="train",
        eval_splits=("validation",),  # built by the run from a fold of train (tasks/folds.py)
        main_metric="macro_f1",
        score=score_labels(macro_f1),
        load=source.load,
        has_embedded=source.embedded is not None,
        metric_names=("macro_f1",),
        kind="classification",
        verbalizers=spec.verbalizers,
        prompt=partial(raft_prompt, spec.instruction),
        folds=CROSS_VALIDATION_FOLDS,
        submit=partial(submit, spec.task_name),
    )


# Dev scores: 5-fold cross-validation on the 50 labelled rows (10 validation rows a fold), unless
# data.folds says otherwise; run every fold with `-m data.fold=0,1,2,3,4`.
CROSS_VALIDATION_FOLDS = 5

RAFT_SPECS: dict[str, RaftSpec] = {folder: _spec(folder) for folder in (*PAPER_ABBREVIATIONS, *EXTRA_FOLDERS)}
TASKS: dict[str, Task] = {spec.task_name: _task(spec) for spec in RAFT_SPECS.values()}
BENCHMARK_TASKS: tuple[str, ...] = tuple(spec.task_name for spec in RAFT_SPECS.values() if spec.in_benchmark)
EXTRA_TASKS: tuple[str, ...] = tuple(spec.task_name for spec in RAFT_SPECS.values() if not spec.in_benchmark)
