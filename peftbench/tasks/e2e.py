"""The E2E NLG Challenge (Novikova, Dušek and Rieser, 2017, "The E2E Dataset: New Challenges For
End-to-End Generation"): restaurant meaning representations (MRs) to text, 42,061 training
pairs, 547 dev MRs with 4,672 references, 630 test MRs.

A row is one (MR, reference) pair: ``text`` the MR as the files spell it
(``name[The Vaults], eatType[pub]``), ``label`` the reference and ``group`` the MR, so that
scoring groups all references of an MR, as the official scorer does, and scores one prediction
per MR (``tasks/e2e_metrics.py``: BLEU, NIST, METEOR, ROUGE-L, CIDEr, main metric BLEU as the
LoRA paper's Table 3 leads with). The model reads the MR linearised as the LoRA paper's E2E data
has it (``name : The Vaults | eat type : pub``) followed by `` ||``.

Sources (``tasks/sources.py``): ``"dir"`` the dataset release's csv files (``trainset.csv``, ``devset.csv``,
``testset_w_refs.csv``; columns ``mr``, ``ref``) in a data root's ``e2e/`` folder or the folder
itself; ``"hub"`` ``datasets.load_dataset("tuetschek/e2e_nlg")``; ``"embedded"`` real slices of
the csv files shipped in ``peftbench/tasks/data/e2e`` (scripts/make_embedded_slices.py).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from peftbench.errors import UserError
from peftbench.tasks.base import generation_task, references_by_input
from peftbench.tasks.sources import FIX, DataSource, wanted

HUB_DATASET = "tuetschek/e2e_nlg"
EMBEDDED = Path(__file__).parent / "data" / "e2e"
FILES = (("train", "trainset.csv"), ("validation", "devset.csv"), ("test", "testset_w_refs.csv"))


def linearise(mr: str) -> str:
    """``name[The Vaults], eatType[pub]`` → ``name : The Vaults | eat type : pub``."""
    pairs = re.findall(r"\s*([^\[,]+)\[([^\]]*)\]", mr)
    if not pairs:
        return mr
    return " | ".join(f"{_words(key.strip())} : {value}" for key, value in pairs)


def _words(key: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", key).lower()


def prompt(row: dict) -> str:
    return f"{linearise(row['text'])} ||"


def _read_folder(folder: Path, wanted_splits=None) -> dict[str, list[dict]]:
    splits = {}
    for split, name in (item for item in FILES if wanted(item[0], wanted_splits)):
        path = folder / name
        if path.is_file():
            splits[split] = _read_csv(path)
        elif split != "test":
            raise UserError(f"missing {path} (E2E {split}); {FIX}")
    return splits


def _read_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = [column.strip().lower() for column in next(reader, [])]
        if header[:2] != ["mr", "ref"]:
            raise UserError(f"{path}: expected the columns mr, ref; found {', '.join(header) or 'nothing'}")
        rows = []
        for fields in reader:
            if len(fields) != 2:
                raise UserError(f"{path}:{reader.line_num}: expected 2 columns (mr, ref), found {len(fields)}")
            rows.append({"text": fields[0], "label": fields[1], "group": fields[0]})
    if not rows:
        raise UserError(f"{path} has no rows; restore it from the E2E release")
    return rows


def _hub_splits(dataset_dict) -> dict[str, list[dict]]:
    return {
        split: [{"text": mr, "label": ref, "group": mr}
                for mr, ref in zip(data["meaning_representation"], data["human_reference"], strict=True)]
        for split, data in dataset_dict.items()
    }  # fmt: skip


def score(predictions: list[str], rows: list[dict]) -> dict[str, float]:
    """The official scorer over MRs: each MR's references against the prediction of its first row."""
    from peftbench.tasks.e2e_metrics import score as official

    return official(*references_by_input(predictions, rows))


SOURCE = DataSource(
    what="E2E", benchmark="e2e", folder=None, files=tuple(name for _, name in FILES),
    hub_id=HUB_DATASET, hub_config=None, read_folder=_read_folder, read_hub=_hub_splits, embedded=EMBEDDED,
)
TASKS = {"e2e": generation_task("e2e", "e2e", SOURCE, score, prompt, ("bleu", "nist", "meteor", "rouge_l", "cider"))}
