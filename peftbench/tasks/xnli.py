"""XNLI (Conneau et al., EMNLP 2018, "XNLI: Evaluating Cross-lingual Sentence Representations"):
MultiNLI's three-way entailment, with 2,490 dev and 5,010 test pairs written in English and
professionally translated into 14 languages; the training set is English MultiNLI (392,702 pairs).

One task, ``xnli``, bound to ``task.language`` (one of ``LANGUAGES``; default ``en``) by
``cross_lingual.py``'s zero-shot protocol: trained on the English training pairs, its weights chosen
on the English dev pairs, the target language's test pairs scored once (held-out split ``test``).
Labels in the hub's order: entailment=0, neutral=1, contradiction=2 (MNLI's); accuracy, the paper's
metric. Decoders read GLUE MNLI's prompt and label words (``glue.py``).

Sources (``tasks/sources.py``):

- ``"dir"``: the two release archives unpacked under ``DIR/xnli/`` (or ``DIR`` itself):
  ``XNLI-1.0/xnli.dev.tsv`` and ``XNLI-1.0/xnli.test.tsv`` (``XNLI-1.0.zip``: every language's pairs
  in one tab-separated file with a header; the rows whose ``language`` is the target, read from the
  ``sentence1``, ``sentence2`` and ``gold_label`` columns) and
  ``XNLI-MT-1.0/multinli/multinli.train.en.tsv`` (``XNLI-MT-1.0.zip``: English MultiNLI train as
  ``premise``, ``hypo``, ``label``, where contradiction is spelled ``contradictory``). Files are
  read as the hub's former loading script ``xnli.py`` reads them (``csv.DictReader``, tab, no quoting).
- ``"hub"``: ``datasets.load_dataset("facebook/xnli", <language>)`` (the English config for train and
  validation, the target's for test).
- ``"embedded"``: real rows of the release files in ``peftbench/tasks/data/xnli/`` (the English
  training file's first 4 pairs; one dev and one test pair in each of the 15 languages), see
  ``data/README.md``.
"""

from __future__ import annotations

import csv
from functools import lru_cache, partial
from pathlib import Path

from peftbench.errors import UserError
from peftbench.tasks.base import Task, score_labels
from peftbench.tasks.cross_lingual import SOURCE_LANGUAGE, checked_language, transfer_load
from peftbench.tasks.glue import PROMPTS, VERBALIZERS
from peftbench.tasks.metrics import accuracy
from peftbench.tasks.sources import FIX, DataSource, wanted

LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
LABELS = ("entailment", "neutral", "contradiction")
HUB_ID = "facebook/xnli"
EMBEDDED = Path(__file__).parent / "data" / "xnli"
EVALUATION_FILES = {"validation": "XNLI-1.0/xnli.dev.tsv", "test": "XNLI-1.0/xnli.test.tsv"}


def train_file(language: str) -> str:
    return f"XNLI-MT-1.0/multinli/multinli.train.{language}.tsv"


def _label(raw: str, path: Path, line: int) -> int:
    """A release label's index; the MT training files spell contradiction ``contradictory``."""
    label = raw.replace("contradictory", "contradiction")
    if label not in LABELS:
        raise UserError(f"{path}:{line}: label {raw!r} is not one of {', '.join(LABELS)}; restore the file from the XNLI release")
    return LABELS.index(label)


def _read(path: Path, language: str, columns: tuple[str, str, str], language_column: str | None) -> list[dict]:
    """Rows of one release file: the (premise, hypothesis, label) ``columns``, of ``language`` only
    where the file holds every language (``language_column``)."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        needed = [*columns, *([language_column] if language_column else [])]
        missing = [name for name in needed if name not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path}: no column {missing[0]!r} in its header; restore the file from the XNLI release")
        premise, hypothesis, label = columns
        return [
            {"text": row[premise], "text_pair": row[hypothesis], "label": _label(row[label], path, reader.line_num),
             "language": language}
            for row in reader
            if language_column is None or row[language_column] == language
        ]  # fmt: skip


def _read_folder(language: str, folder: Path, splits=None) -> dict[str, list[dict]]:
    """The wanted splits of ``language`` in an unpacked release folder (all three when None)."""
    rows = {}
    for split in ("train", *EVALUATION_FILES):
        if not wanted(split, splits):
            continue
        path = folder / (train_file(language) if split == "train" else EVALUATION_FILES[split])
        if not path.is_file():
            archive = "XNLI-MT-1.0.zip" if split == "train" else "XNLI-1.0.zip"
            raise UserError(f"missing {path} (XNLI {language} {split}); {FIX} to the folder holding {archive} unpacked")
        if split == "train":
            found = _read(path, language, ("premise", "hypo", "label"), None)
        else:
            found = _read(path, language, ("sentence1", "sentence2", "gold_label"), "language")
        if not found:
            raise UserError(f"{path} has no {language} rows; restore the file from the XNLI release")
        rows[split] = found
    return rows


def _hub_splits(language: str, dataset_dict) -> dict[str, list[dict]]:
    splits = {}
    for split, dataset in dataset_dict.items():
        names = tuple(getattr(dataset.features["label"], "names", ()))
        if names != LABELS:
            raise ValueError(f"{HUB_ID}/{language} labels are {names}, peftbench expects {LABELS}")
        splits[split] = [
            {"text": premise, "text_pair": hypothesis, "label": label, "language": language}
            for premise, hypothesis, label in zip(dataset["premise"], dataset["hypothesis"], dataset["label"], strict=True)
        ]  # fmt: skip
    return splits


def data_source(language: str) -> DataSource:
    return DataSource(
        what=f"XNLI ({language})", benchmark="xnli", folder=None,
        files=(*EVALUATION_FILES.values(), train_file(language)),
        hub_id=HUB_ID, hub_config=language,
        read_folder=partial(_read_folder, language), read_hub=partial(_hub_splits, language),
        embedded=EMBEDDED, hint=" (XNLI-1.0/ and XNLI-MT-1.0/ of the release)",
    )  # fmt: skip


@lru_cache(maxsize=None)
def xnli(language: str = SOURCE_LANGUAGE) -> Task:
    """XNLI trained on English and tested in ``language``."""
    checked_language(language, LANGUAGES, "XNLI")
    english, target = data_source(SOURCE_LANGUAGE), data_source(language)
    return Task(
        name="xnli", benchmark="xnli", label_names=LABELS, train_split="train", eval_splits=("validation",),
        main_metric="accuracy", score=score_labels(accuracy),
        load=transfer_load(english, english if language == SOURCE_LANGUAGE else target), has_embedded=True,
        metric_names=("accuracy",), verbalizers=VERBALIZERS["mnli"], prompt=PROMPTS["mnli"], test_splits=("test",),
        options=(("language", language),), configure=xnli,
    )  # fmt: skip


TASKS: dict[str, Task] = {"xnli": xnli()}
