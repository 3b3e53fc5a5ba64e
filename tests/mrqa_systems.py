"""Prediction systems on MRQA's real SQuAD dev slice, and the two gold files that MRQA's official
scorer (``mrqa_official_eval.py``) reads them against. ``tests/test_mrqa_task.py`` and
``scripts/reference/mrqa_official.py`` both use this module; the script stores the official scores
in ``tests/data/mrqa-official/scores.json``.

Gold files: ``raw`` is the shipped slice as it is (``peftbench/tasks/data/mrqa/dev/SQuAD.jsonl.gz``,
real rows). ``padded`` holds the same contexts with every gold answer passed through T5's
``pad_punctuation``; these are the golds T5's squad metric compares, and this module writes them.
On ``padded`` the predictions are padded too. The systems are WRITTEN BY US: each one changes the
first gold answer of every question in its own way.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from peftbench.tasks import get_task
from peftbench.tasks.mrqa import EMBEDDED, pad_punctuation

DEV = EMBEDDED / "dev" / "SQuAD.jsonl.gz"
GOLDS = ("raw", "padded")


def write_release_file(path: Path, dataset: str, contexts: list[dict]) -> Path:
    """An MRQA file as the release writes it: a header line, then one context per line, gzipped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"header": {"dataset": dataset, "split": "dev"}})] + [json.dumps(c) for c in contexts]
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def validation_rows() -> list[dict]:
    """``mrqa_squad``'s validation rows from the shipped slice (80 questions, in file order)."""
    return get_task("mrqa_squad").load("embedded").splits["validation"]


def systems(rows: list[dict]) -> dict[str, list[str]]:
    """Predictions of seven made-up systems, one for every row."""
    first = [row["answers"][0] for row in rows]
    return {
        "gold": first,
        "empty answers": ["" if i % 3 == 0 else answer for i, answer in enumerate(first)],
        "punctuation and case": [f"{answer.upper()}!?" if i % 2 else f'"{answer}."' for i, answer in enumerate(first)],
        "articles": [f"the {answer}" if i % 2 else f"A {answer} an" for i, answer in enumerate(first)],
        "last gold, with context around it": [f"{row['answers'][-1]} in {row['question'].split()[-1]}" for row in rows],
        "partial and wrong": [answer.split()[0] if i % 2 else "Carolina Panthers" for i, answer in enumerate(first)],
        "inner punctuation": [answer.replace(" ", "-") + ", U.S." for answer in first],
    }


def gold_files(folder: Path) -> dict[str, Path]:
    """``raw``: the shipped dev file. ``padded``: that file with padded answers, written into ``folder``."""
    with gzip.open(DEV, "rt", encoding="utf-8") as handle:
        contexts = [json.loads(line) for line in handle][1:]
    for context in contexts:
        for qa in context["qas"]:
            qa["answers"] = [pad_punctuation(answer) for answer in qa["answers"]]
    return {"raw": DEV, "padded": write_release_file(folder / "SQuAD.padded.jsonl.gz", "SQuAD", contexts)}


def prediction_file(rows: list[dict], texts: list[str], gold: str) -> str:
    """The official script's prediction file (JSON ``{qid: answer}``), padded for the ``padded`` golds."""
    pad = pad_punctuation if gold == "padded" else str
    return json.dumps({row["group"]: pad(text) for row, text in zip(rows, texts, strict=True)})


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_unpacked(path: Path) -> str:
    """The sha256 of a gzipped file's content (gzip's header holds a time, the content does not)."""
    return hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()
