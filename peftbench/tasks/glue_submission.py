"""GLUE server submissions (Wang et al. 2018; gluebenchmark.com): each task's test predictions as the
server reads them.

The server takes one zip of eleven TSV files, one per test set: ``CoLA.tsv``, ``SST-2.tsv``,
``MRPC.tsv``, ``STS-B.tsv``, ``QQP.tsv``, ``MNLI-m.tsv``, ``MNLI-mm.tsv``, ``QNLI.tsv``, ``RTE.tsv``,
``WNLI.tsv`` and ``AX.tsv`` (the diagnostic set, predicted by the MNLI model). Each file has the
header ``index<TAB>prediction`` and one line per test example, in the order and with the index of
the task's ``test.tsv``; a prediction is the label as the task's files spell it (``entailment``,
``not_entailment``; ``0``/``1`` for CoLA, SST-2, MRPC, QQP, WNLI) or STS-B's score.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from peftbench.atomic import write_text_atomic

# (task, split) -> the file the server reads
SERVER_FILES: dict[tuple[str, str], str] = {
    ("cola", "test"): "CoLA.tsv",
    ("sst2", "test"): "SST-2.tsv",
    ("mrpc", "test"): "MRPC.tsv",
    ("stsb", "test"): "STS-B.tsv",
    ("qqp", "test"): "QQP.tsv",
    ("mnli", "test_matched"): "MNLI-m.tsv",
    ("mnli", "test_mismatched"): "MNLI-mm.tsv",
    ("mnli", "test_ax"): "AX.tsv",
    ("qnli", "test"): "QNLI.tsv",
    ("rte", "test"): "RTE.tsv",
    ("wnli", "test"): "WNLI.tsv",
}


def write_submission(task: str, file_labels: tuple[str, ...], folder: str | os.PathLike, split: str,
                     rows: Sequence[dict], predictions: Sequence) -> Path:  # fmt: skip
    """The server file of ``task``'s ``split`` under ``folder``; ``predictions`` are class indices
    into ``file_labels`` (the labels as the task's files spell them), or scores when there are none
    (STS-B). Written atomically; returns the file."""
    predictions = list(predictions)
    if len(predictions) != len(rows) or not rows:
        raise ValueError(f"{len(predictions)} predictions for {len(rows)} GLUE {task} {split} rows")
    lines = ["index\tprediction"]
    for index, prediction in enumerate(predictions):
        lines.append(f"{index}\t{_spelled(prediction, file_labels, task)}")
    target = Path(folder) / SERVER_FILES[(task, split)]
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, "\n".join(lines) + "\n")
    return target


def _spelled(prediction, file_labels: tuple[str, ...], task: str) -> str:
    if not file_labels:
        return f"{float(prediction):.3f}"
    index = int(prediction)
    if not 0 <= index < len(file_labels) or index != prediction:
        raise ValueError(f"prediction {prediction!r} is not a class index of GLUE {task} ({len(file_labels)} classes)")
    return file_labels[index]
