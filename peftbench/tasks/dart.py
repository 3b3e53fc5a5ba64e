"""DART v1.1.1 (Nan, Radev, Zhang et al., 2021, "DART: Open-Domain Structured Data Record to Text
Generation"): sets of (subject, relation, object) triples from WikiTableQuestions, WikiSQL,
WebNLG and E2E, each with one or more texts; 30,526 training, 2,768 dev and 5,097 test triple
sets in the release (a 2020 version of the test file, which prefix-tuning and the hub copy have,
held 6,959). Prefix-tuning (Li and Liang, 2021, Table 2 of the ACL version) reports its test
BLEU, METEOR and TER as DART's scripts compute them (``tasks/webnlg_metrics.py``), beside
MoverScore, BERTScore and BLEURT, which need model weights this project cannot load offline (the
table spec leaves those columns to the paper).

A row is one (triple set, text) pair: ``text`` the triples linearised as prefix-tuning's code
does, ``label`` the text, ``group`` the triple set's position in its file, so that its texts are
scored together as its references (the first three, in the file's order, as DART's reference
files hold them). Every text is a training row, as prefix-tuning trains
(``LineByLineTriplesTextDataset``). Runs choose their weights on validation (dev) and score test
once with them.

**Input** (XiangLi1999/PrefixTuning, ``transformers/src/transformers/data/datasets/
language_modeling.py``, ``LineByLineTriplesTextDataset``; ``gpt2/run_generation.py``,
``read_triples_files``, builds the same string): the triples as ``subject + " : " + relation +
" : " + object`` with the relation lowercased, joined by ``" | "``; the model reads
``" " + triples + " <|endoftext|>"`` (GPT-2's BOS token, prefix-tuning's separator; a tokenizer
without it reads it as text) and writes the text.

Sources (``tasks/sources.py``): ``"dir"`` the release's ``dart-v1.1.1-full-{train,dev,test}.json``
(each a JSON list of ``{"tripleset": [[s, p, o], …], "annotations": [{"source", "text"}, …]}``;
``subtree_was_extended`` is absent from the WebNLG and E2E parts), as Yale-LILY/dart's
``data/v1.1.1/`` and prefix-tuning's ``data/dart/`` hold them, under ``DIR/dart/`` or in the folder
itself (only the files of the splits a command needs must be there); ``"hub"``
``datasets.load_dataset("Yale-LILY/dart", revision="refs/convert/parquet")``: the repository's main
branch holds a loading script, which ``datasets`` 4 and later refuse, and the hub's parquet export
of it is the same rows (as WikiSQL's); ``"embedded"`` the first 15 triple sets of the dev
and test files in ``peftbench/tasks/data/dart`` (no training rows: the training file could not be
found offline, so a run on the embedded data stops, naming the data folder).
"""

from __future__ import annotations

from pathlib import Path

from peftbench.errors import UserError
from peftbench.tasks.base import generation_task, references_by_input
from peftbench.tasks.sources import FIX, DataSource, read_json, wanted

HUB_DATASET = "Yale-LILY/dart"
HUB_REVISION = "refs/convert/parquet"  # the parquet export of the script repository
EMBEDDED = Path(__file__).parent / "data" / "dart"
FILES = (
    ("train", "dart-v1.1.1-full-train.json"),
    ("validation", "dart-v1.1.1-full-dev.json"),
    ("test", "dart-v1.1.1-full-test.json"),
)


def linearise(triples: list[list[str]]) -> str:
    """``s : p : o | s : p : o`` with each relation lowercased (``LineByLineTriplesTextDataset``)."""
    return " | ".join(f"{subject} : {relation.lower()} : {obj}" for subject, relation, obj in triples)


def prompt(row: dict) -> str:
    return f" {row['text']} <|endoftext|>"


def _read_folder(folder: Path, wanted_splits=None) -> dict[str, list[dict]]:
    splits = {}
    for split, name in (item for item in FILES if wanted(item[0], wanted_splits)):
        path = folder / name
        if path.is_file():
            splits[split] = _read_file(path)
        elif wanted_splits is not None:
            raise UserError(f"missing {path} (DART {split}); {FIX} to the folder holding DART's data/v1.1.1 files")
    if not splits:
        raise UserError(f"no DART v1.1.1 file in {folder}; {FIX} to the folder holding {', '.join(n for _, n in FILES)}")
    return splits


def _read_file(path: Path) -> list[dict]:
    triple_sets = read_json(path, "restore it from DART v1.1.1")
    if not isinstance(triple_sets, list) or not triple_sets:
        raise UserError(f"{path} holds no list of triple sets; restore it from DART v1.1.1")
    rows = []
    for index, triple_set in enumerate(triple_sets):
        missing = [key for key in ("tripleset", "annotations") if not isinstance(triple_set, dict) or key not in triple_set]
        if missing:
            raise UserError(f"{path}: triple set {index} has no {', '.join(missing)}; restore the file from DART v1.1.1")
        try:
            texts = [annotation["text"] for annotation in triple_set["annotations"]]
            rows.extend(_rows(index, triple_set["tripleset"], texts))
        except (KeyError, TypeError, ValueError) as error:
            raise UserError(f"{path}: triple set {index} has an annotation or triple that is not DART's ({error}); "
                            "restore the file from DART v1.1.1") from None  # fmt: skip
    return rows


def _rows(index: int, triples: list[list[str]], texts: list[str]) -> list[dict]:
    text = linearise(triples)
    return [{"text": text, "label": label, "group": str(index)} for label in texts]


def _hub_splits(dataset_dict) -> dict[str, list[dict]]:
    return {
        split: [row for index, example in enumerate(data)
                for row in _rows(index, example["tripleset"], example["annotations"]["text"])]
        for split, data in dataset_dict.items()
    }  # fmt: skip


def score(predictions: list[str], rows: list[dict]) -> dict[str, float]:
    """DART's BLEU, METEOR and TER over triple sets: one output against each set's texts."""
    from peftbench.tasks.webnlg_metrics import dart_scores

    return dart_scores(*references_by_input(predictions, rows))


SOURCE = DataSource(
    what="DART", benchmark="dart", folder=None, files=tuple(name for _, name in FILES),
    hub_id=HUB_DATASET, hub_config=None, hub_revision=HUB_REVISION, read_folder=_read_folder, read_hub=_hub_splits, embedded=EMBEDDED,
)  # fmt: skip
TASKS = {"dart": generation_task("dart", "dart", SOURCE, score, prompt, ("bleu", "meteor", "ter"))}
