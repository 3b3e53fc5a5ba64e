"""RAFT leaderboard submissions (Alex et al. 2021): one task's test predictions as the leaderboard
reads them.

The file is ``<data folder>/<task folder>/predictions.csv`` with the header ``ID,Label`` and one
row per test ID, the label as text: the layout of the RAFT submission template
(``oughtinc/raft-submission``, ``{{cookiecutter.repo_name}}/README.md`` and ``data/``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import operator
import os
from pathlib import Path
from typing import Sequence

from peftbench.atomic import write_text_atomic

SUBMISSION_FILE = "predictions.csv"


def write_submission(path: str | os.PathLike, spec, ids: Sequence, predictions: Sequence) -> Path:
    """Write the test predictions of the RAFT task ``spec`` (a ``raft.RaftSpec``: its ``folder`` and
    ``label_names``) under ``path``, the submission repository's ``data`` folder; returns the file.

    ``predictions`` are class indices into the task's ``label_names`` or the label texts
    themselves. Written atomically (temp file + rename).
    """
    ids, predictions = list(ids), list(predictions)
    if len(ids) != len(predictions):
        raise ValueError(f"{len(ids)} ids but {len(predictions)} predictions for RAFT {spec.folder}")
    if not ids:
        raise ValueError(f"no predictions to write for RAFT {spec.folder}")
    if len({str(identifier) for identifier in ids}) != len(ids):
        raise ValueError(f"the ids of RAFT {spec.folder} predictions are not unique")
    labels = [_prediction_label(spec, prediction) for prediction in predictions]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["ID", "Label"])
    writer.writerows(zip(ids, labels))
    target = Path(path) / spec.folder / SUBMISSION_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, text.getvalue())
    return target


def _prediction_label(spec, prediction) -> str:
    if isinstance(prediction, str):
        if prediction in spec.label_names:
            return prediction
    elif not isinstance(prediction, bool):
        with contextlib.suppress(TypeError):
            index = operator.index(prediction)
            if 0 <= index < len(spec.label_names):
                return spec.label_names[index]
    raise ValueError(
        f"prediction {prediction!r} is neither a class index below {len(spec.label_names)} nor a "
        f"label of RAFT {spec.folder}"
    )
