"""SAMSum (Gliwa, Mochol, Biesek & Wawer, 2019, "SAMSum Corpus: A Human-annotated Dialogue Dataset
for Abstractive Summarization"): messenger-style dialogues with one written summary each; 14,732
train, 818 validation and 819 test dialogues. LoRA's GPT-3 table (Hu et al. 2021, Table 4) reports
ROUGE-1/2/L on the 819 test dialogues (its Appendix C: "14,732/819 training/test examples").

A row is one dialogue: ``text`` the dialogue as released (turns ``"Speaker: utterance"`` separated
by ``\\r\\n``, a few by ``\\n``), ``label`` its summary, ``group`` its id. The model reads the
dialogue as the LoRA paper encodes it (Appendix C: "the utterances joined by \\n", then "\\n\\n")
and writes the summary. Runs select their weights on validation and score test once with them
(``Task.test_splits``).

**Metric.** ROUGE-1, ROUGE-2 and ROUGE-L F-measures (Lin, 2004), each the mean over dialogues, from
``rouge_score`` (Google's re-implementation of the ROUGE-1.5.5 scorer) with Porter stemming, as
HF's ``run_summarization.py`` scores summaries; the LoRA paper names no implementation, so this is
our choice, stated. Main metric ROUGE-1, the first the paper prints.

Sources (``tasks/sources.py``): ``"dir"`` the release's ``train.json``, ``val.json`` and
``test.json`` (each a JSON list of ``{"id", "summary", "dialogue"}``, unpacked from ``corpus.7z``)
under ``DIR/samsum/`` or in the folder itself; ``"hub"`` ``datasets.load_dataset("Samsung/samsum")``;
``"embedded"`` the first five dialogues of each file, in ``peftbench/tasks/data/samsum``.
"""

from __future__ import annotations

from pathlib import Path

from peftbench.errors import UserError
from peftbench.tasks.base import generation_task
from peftbench.tasks.sources import FIX, DataSource, read_json, wanted

HUB_DATASET = "Samsung/samsum"
EMBEDDED = Path(__file__).parent / "data" / "samsum"
FILES = (("train", "train.json"), ("validation", "val.json"), ("test", "test.json"))
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def prompt(row: dict) -> str:
    """The dialogue's utterances joined by newlines, then a blank line (LoRA, Appendix C)."""
    utterances = [line for line in row["text"].replace("\r\n", "\n").split("\n") if line.strip()]
    return "\n".join(utterances) + "\n\n"


def _read_folder(folder: Path, wanted_splits=None) -> dict[str, list[dict]]:
    splits = {}
    for split, name in (item for item in FILES if wanted(item[0], wanted_splits)):
        path = folder / name
        if not path.is_file():
            if split == "test":
                continue
            raise UserError(f"missing {path} (SAMSum {split}); {FIX} to the folder holding the files of corpus.7z")
        splits[split] = _read_file(path)
    return splits


def _read_file(path: Path) -> list[dict]:
    dialogues = read_json(path, "restore it from SAMSum's corpus.7z")
    if not isinstance(dialogues, list) or not dialogues:
        raise UserError(f"{path} holds no list of dialogues; restore it from SAMSum's corpus.7z")
    rows = []
    for index, dialogue in enumerate(dialogues):
        missing = [key for key in ("id", "summary", "dialogue") if not isinstance(dialogue, dict) or key not in dialogue]
        if missing:
            raise UserError(f"{path}: dialogue {index} has no {', '.join(missing)}; restore the file from SAMSum's corpus.7z")
        rows.append(_row(dialogue))
    return rows


def _row(dialogue: dict) -> dict:
    return {"text": dialogue["dialogue"], "label": dialogue["summary"], "group": str(dialogue["id"])}


def _hub_splits(dataset_dict) -> dict[str, list[dict]]:
    return {split: [_row(dialogue) for dialogue in data] for split, data in dataset_dict.items()}


def score(predictions: list[str], rows: list[dict]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure over dialogues (rouge_score, Porter stemming)."""
    from rouge_score.rouge_scorer import RougeScorer

    if not rows:
        raise ValueError("no predictions to score")
    scorer = RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, row in zip(predictions, rows, strict=True):
        for name, found in scorer.score(row["label"], prediction).items():
            totals[name] += found.fmeasure
    return {name: total / len(rows) for name, total in totals.items()}


SOURCE = DataSource(
    what="SAMSum", benchmark="samsum", folder=None, files=tuple(name for _, name in FILES),
    hub_id=HUB_DATASET, hub_config=None, read_folder=_read_folder, read_hub=_hub_splits, embedded=EMBEDDED,
)  # fmt: skip
TASKS = {"samsum": generation_task("samsum", "samsum", SOURCE, score, prompt, ROUGE_TYPES)}
