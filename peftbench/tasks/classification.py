"""Text classification data sets outside GLUE and SuperGLUE that the seed papers transfer to, each
its own benchmark: SciTail (Khot, Sabharwal & Clark, AAAI 2018), IMDB (Maas et al., ACL 2011),
Yelp polarity (Zhang, Zhao & LeCun, NeurIPS 2015) and PAWS-Wiki (Zhang, Baldridge & He, NAACL
2019). Hyperformer's few-shot domain transfer (Karimi Mahabadi et al. 2021, Table 3) trains on
SciTail, IMDB and Yelp polarity; AdapterFusion's 16 tasks (Pfeiffer et al. 2021, Table 1) hold
SciTail and IMDB; PAWS is Hyperformer's paraphrase transfer task.

Rows are those of ``base.py``'s ``classification`` kind; labels and label order are the hub
datasets' (below); every metric is accuracy, as both papers report. IMDB and Yelp polarity publish
no validation split: their ``test`` split is the one runs evaluate, as Hyperformer does
(``hyperformer/data/tasks.py`` maps its validation split to the data sets' test split). SciTail's
and PAWS's labelled test splits are scored once, with the weights chosen on validation
(``Task.test_splits``), which is how Hyperformer reports SciTail.

Each task reads three sources (``tasks/sources.py``):

- ``"dir"``: the files as their authors release them, under ``DIR/<task>/`` (or the folder itself):

  - ``scitail``: ``SciTailV1.1/tsv_format/scitail_1.0_{train,dev,test}.tsv`` — premise, hypothesis
    and label (``entails`` | ``neutral``) in three tab-separated columns, no header;
  - ``imdb``: ``aclImdb/{train,test}/{neg,pos}/<id>_<rating>.txt``, one review a file, read in the
    order of their ids (negatives first);
  - ``yelp_polarity``: ``yelp_review_polarity_csv/{train,test}.csv`` — rows ``"1","text"`` (1
    negative, 2 positive), newlines and quotes escaped as ``\\n`` and ``\\"``, unescaped as the hub
    loader does;
  - ``paws``: PAWS-Wiki Labeled (Final) ``final/{train,dev,test}.tsv`` with the header
    ``id sentence1 sentence2 label``.

- ``"hub"``: ``allenai/scitail`` (config ``tsv_format``), ``stanfordnlp/imdb``,
  ``fancyzhx/yelp_polarity``, ``google-research-datasets/paws`` (config ``labeled_final``).
- ``"embedded"``: real slices of the release files in ``peftbench/tasks/data/<task>/`` where one
  could be found offline (``data/README.md`` says which and from where).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

from peftbench.errors import UserError
from peftbench.tasks.base import Task, score_labels
from peftbench.tasks.metrics import accuracy
from peftbench.tasks.sources import FIX, DataSource, release_folder, wanted

EMBEDDED_ROOT = Path(__file__).parent / "data"
Reader = Callable[["ClassificationSpec", Path, str], list[dict]]  # (spec, release folder, split) -> rows


@dataclass(frozen=True)
class ClassificationSpec:
    """One data set: its labels, its release layout, its hub copy and its prompt."""

    what: str  # as messages name it
    label_names: tuple[str, ...]  # the hub's labels, in order
    release: tuple[str, ...]  # the folders, under the task's folder, that hold the release files
    files: dict[str, str]  # split -> the file (or folder) of the release that holds it
    read: Reader
    hub_id: str
    hub_config: str | None
    hub_text: str
    hub_text_pair: str | None
    prompt: Callable[[dict], str]
    verbalizers: tuple[str, ...]
    eval_split: str = "validation"
    test_splits: tuple[str, ...] = ()  # labelled test splits, scored once with the best weights
    embedded: bool = False


def _unreadable(spec: ClassificationSpec, path: Path, line: int, problem: str) -> UserError:
    return UserError(f"{path}:{line}: {problem}; repair the row or restore the file from the {spec.what} release")


def _label(spec: ClassificationSpec, raw: str, path: Path, line: int) -> int:
    """A release label's index; the releases spell their labels as the hub names them."""
    if raw not in spec.label_names:
        raise _unreadable(spec, path, line, f"label {raw!r} is not one of {', '.join(spec.label_names)}")
    return spec.label_names.index(raw)


def _read_scitail(spec: ClassificationSpec, path: Path, split: str) -> list[dict]:
    """premise, hypothesis, label: three tab-separated columns, no header, no quoting."""
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        for line, fields in enumerate(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if not fields:
                continue
            if len(fields) != 3:
                raise _unreadable(spec, path, line, f"expected 3 tab-separated columns, found {len(fields)}")
            premise, hypothesis, label = fields
            rows.append({"text": premise, "text_pair": hypothesis, "label": _label(spec, label, path, line)})
    return rows


def _read_paws(spec: ClassificationSpec, path: Path, split: str) -> list[dict]:
    """id, sentence1, sentence2, label under a header; tab-separated, no quoting."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        if reader.fieldnames != ["id", "sentence1", "sentence2", "label"]:
            raise _unreadable(spec, path, 1, f"header {reader.fieldnames} is not id, sentence1, sentence2, label")
        return [
            {"text": row["sentence1"], "text_pair": row["sentence2"],
             "label": _label(spec, row["label"], path, reader.line_num)}
            for row in reader
        ]  # fmt: skip


def _read_yelp(spec: ClassificationSpec, path: Path, split: str) -> list[dict]:
    """``"label","text"`` rows, no header; the text's ``\\n`` and ``\\"`` unescaped (the hub loader's
    ``text.replace("\\\\n", "\\n").replace('\\\\"', '"')``), label 1 → 0 (negative), 2 → 1."""
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        for fields in reader:
            if len(fields) != 2:
                raise _unreadable(spec, path, reader.line_num, f"expected 2 comma-separated fields, found {len(fields)}")
            label, text = fields
            text = text.replace("\\n", "\n").replace('\\"', '"')
            rows.append({"text": text, "text_pair": None, "label": _label(spec, label, path, reader.line_num)})
    return rows


_REVIEW_FILE = re.compile(r"(\d+)_(\d+)\.txt")


def _read_imdb(spec: ClassificationSpec, folder: Path, split: str) -> list[dict]:
    """``neg/`` then ``pos/``, each review file ``<id>_<rating>.txt`` in the order of its id."""
    rows = []
    for label, polarity in enumerate(("neg", "pos")):
        reviews = folder / polarity
        if not reviews.is_dir():
            raise UserError(f"missing {reviews} (IMDB {split} {polarity} reviews); {FIX} to the folder holding aclImdb/")
        named = [(_REVIEW_FILE.fullmatch(path.name), path) for path in reviews.iterdir()]
        for _, path in sorted((int(found.group(1)), path) for found, path in named if found):
            rows.append({"text": path.read_text(encoding="utf-8"), "text_pair": None, "label": label})
    return rows


_ENTAILMENT = ("{text}\nQuestion: Does this imply that \"{text_pair}\"? Yes or no?\nAnswer:")
_PARAPHRASE = "Sentence 1: {text}\nSentence 2: {text_pair}\nQuestion: Do both sentences mean the same thing?\nAnswer:"
_REVIEW = "{text}\nQuestion: Is this review positive or negative?\nAnswer:"

SPECS: dict[str, ClassificationSpec] = {
    "scitail": ClassificationSpec(
        what="SciTail", label_names=("entails", "neutral"), release=("SciTailV1.1/tsv_format", "tsv_format", ""),
        files={"train": "scitail_1.0_train.tsv", "validation": "scitail_1.0_dev.tsv", "test": "scitail_1.0_test.tsv"},
        read=_read_scitail, hub_id="allenai/scitail", hub_config="tsv_format", hub_text="premise",
        hub_text_pair="hypothesis", prompt=_ENTAILMENT.format_map, verbalizers=("Yes", "No"), test_splits=("test",),
    ),
    "imdb": ClassificationSpec(
        what="IMDB", label_names=("neg", "pos"), release=("aclImdb", ""),
        files={"train": "train", "test": "test"}, read=_read_imdb, hub_id="stanfordnlp/imdb", hub_config=None,
        hub_text="text", hub_text_pair=None, prompt=_REVIEW.format_map, verbalizers=("negative", "positive"),
        eval_split="test", embedded=True,
    ),
    "yelp_polarity": ClassificationSpec(
        what="Yelp polarity", label_names=("1", "2"), release=("yelp_review_polarity_csv", ""),
        files={"train": "train.csv", "test": "test.csv"}, read=_read_yelp, hub_id="fancyzhx/yelp_polarity",
        hub_config=None, hub_text="text", hub_text_pair=None, prompt=_REVIEW.format_map,
        verbalizers=("negative", "positive"), eval_split="test",
    ),
    "paws": ClassificationSpec(
        what="PAWS-Wiki", label_names=("0", "1"), release=("final", ""),
        files={"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}, read=_read_paws,
        hub_id="google-research-datasets/paws", hub_config="labeled_final", hub_text="sentence1",
        hub_text_pair="sentence2", prompt=_PARAPHRASE.format_map, verbalizers=("No", "Yes"), test_splits=("test",),
        embedded=True,
    ),
}  # fmt: skip


def _read_folder(spec: ClassificationSpec, folder: Path, wanted_splits=None) -> dict[str, list[dict]]:
    """Every split the release holds (of ``wanted_splits``); train and the evaluated split are required."""
    release = release_folder(folder, spec.release, (spec.files["train"], *spec.files.values()), spec.what)
    splits = {}
    for split, name in spec.files.items():
        if not wanted(split, wanted_splits):
            continue
        path = release / name
        if not path.exists():
            if split in ("train", spec.eval_split):
                raise UserError(f"missing {path} ({spec.what} {split} split); {FIX} to a complete {spec.what} release")
            continue
        rows = spec.read(spec, path, split)
        if not rows:
            raise UserError(f"{path} has no rows; restore it from the {spec.what} release")
        splits[split] = rows
    return splits


def _hub_splits(spec: ClassificationSpec, dataset_dict) -> dict[str, list[dict]]:
    """The hub's splits as rows; a string label (SciTail's ``tsv_format``) is looked up by name."""
    splits = {}
    for split, dataset in dataset_dict.items():
        if split not in spec.files:  # IMDB's "unsupervised" reviews have no label
            continue
        names = tuple(getattr(dataset.features["label"], "names", ()))
        if names and names != spec.label_names:
            raise ValueError(f"{spec.hub_id} labels are {names}, peftbench expects {spec.label_names}")
        pairs = dataset[spec.hub_text_pair] if spec.hub_text_pair else [None] * len(dataset)
        splits[split] = [
            {"text": text, "text_pair": pair, "label": spec.label_names.index(label) if isinstance(label, str) else label}
            for text, pair, label in zip(dataset[spec.hub_text], pairs, dataset["label"], strict=True)
        ]
    return splits


def data_source(name: str, spec: ClassificationSpec) -> DataSource:
    return DataSource(
        what=spec.what, benchmark=name, folder=None, files=tuple(spec.files.values()),
        hub_id=spec.hub_id, hub_config=spec.hub_config,
        read_folder=partial(_read_folder, spec), read_hub=partial(_hub_splits, spec),
        embedded=EMBEDDED_ROOT / name if spec.embedded else None,
        hint=f" ({', '.join(sub for sub in spec.release if sub)} of the release)",
    )  # fmt: skip


def _task(name: str, spec: ClassificationSpec) -> Task:
    source = data_source(name, spec)
    return Task(
        name=name,
        benchmark=name,
        label_names=spec.label_names,
        train_split="train",
        eval_splits=(spec.eval_split,),
        main_metric="accuracy",
        score=score_labels(accuracy),
        load=source.load,
        has_embedded=spec.embedded,
        metric_names=("accuracy",),
        verbalizers=spec.verbalizers,
        prompt=spec.prompt,
        test_splits=spec.test_splits,
    )


TASKS: dict[str, Task] = {name: _task(name, spec) for name, spec in SPECS.items()}
