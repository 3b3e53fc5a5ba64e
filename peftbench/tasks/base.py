"""What every task provides: its data, its label space, its metrics and its main metric.

A *row* is a plain dict with the keys ``text`` (str), ``text_pair`` (str or None) and ``label``
(int class index, or float for regression; None where the split has no labels, as GLUE test).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence


@dataclass
class TaskData:
    """The rows of every split of a task, and where they came from.

    ``source`` is ``"dir"``, ``"hub"`` or ``"embedded"``; ``location`` is the folder, the hub id
    (``nyu-mll/glue/rte``) or the package path. ``sample`` is True when a split is a slice of
    the official split (the embedded data), so that tables never mix it into a paper's cell.
    """

    splits: dict[str, list[dict]]
    source: str
    location: str
    sample: bool = False

    def fingerprint(self) -> dict:
        """Rows per split and a sha256 over every row, in order (DESIGN §3, data fingerprint)."""
        import hashlib
        import json

        digest = hashlib.sha256()
        for name in sorted(self.splits):
            for row in self.splits[name]:
                digest.update(json.dumps([name, row], sort_keys=True).encode())
        return {
            "source": self.source,
            "location": self.location,
            "sample": self.sample,
            "rows": {name: len(rows) for name, rows in sorted(self.splits.items())},
            "sha256": digest.hexdigest(),
        }


@dataclass(frozen=True)
class Task:
    """A benchmark task: how to read it and how to score it.

    ``metrics(predictions, labels)`` returns ``{metric name: float}`` with values as fractions
    (accuracy 0.866, not 86.6); tables scale them. ``predictions`` are class indices, or floats
    for a regression task (``num_labels == 1``).
    """

    name: str
    benchmark: str
    label_names: tuple[str, ...]  # empty for regression
    train_split: str
    eval_splits: tuple[str, ...]  # e.g. ("validation",) or MNLI's matched + mismatched
    main_metric: str
    metrics: Callable[[Sequence, Sequence], dict[str, float]]
    load: Callable[..., TaskData]  # load(source: str, data_dir: str | None) -> TaskData
    has_embedded: bool = False
    metric_names: tuple[str, ...] = field(default=())

    @property
    def num_labels(self) -> int:
        return len(self.label_names) or 1

    @property
    def is_regression(self) -> bool:
        return not self.label_names

    @property
    def main_split(self) -> str:
        return self.eval_splits[0]
