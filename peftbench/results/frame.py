"""Run records as a pandas DataFrame, one row per run: the Python API for notebooks.

    from peftbench.results import load_runs
    runs = load_runs("results")
    runs[runs.status == "complete"].groupby(["method", "method.r"])["validation.accuracy"].median()

Columns, in this order (a column appears when some record has the field; a record without it
reads NaN / None there, so old records load beside new ones):

- ``run_id``, ``status`` (complete | failed | running), ``model``, ``method``, ``task`` (a multi-task
  run's mixture name), ``tasks`` (the tasks it trained, a tuple), ``benchmark``, ``format``, ``seed``,
  ``experiment``, ``created``, ``finished``, ``error``, ``init_from``;
- ``method.<field>``: the method's config (``method.r``, ``method.targets`` as a tuple);
- ``main_split``, ``main_metric``, ``main_value`` (the task's main metric at the best evaluation),
  ``best_epoch``;
- ``<split>.<metric>``: every metric of the best evaluation (``validation.accuracy``; a multi-task
  run's ``rte/validation.accuracy``), then ``last.<split>.<metric>`` of the last evaluation;
- ``params.<count>``: ``params.trainable``, ``params.trainable_method``, ``params.head``,
  ``params.total`` (and ``params.mask_bits`` for masked methods);
- ``cost.<figure>``: ``cost.wall_s``, ``cost.train_s``, ``cost.samples_per_s``, ``cost.tokens_per_s``,
  ``cost.peak_memory_mb``, ``cost.avg_memory_mb``, ``cost.adapter_file_bytes``, ``cost.device``, …;
- ``data.<field>``: the data fingerprint (``data.source``, ``data.sample``, ``data.subset``,
  ``data.rows.<split>``, ``data.sha256``);
- ``caveats``: how the run's data differ from the full official data (sample data, FewGLUE, another
  label set), as the tables word them; ``()`` when they do not.

pandas (and numpy) is imported inside ``runs_frame`` only: ``peftbench table`` never pays for it.
"""

from __future__ import annotations

import os
from typing import Iterable

from peftbench.results.record import iter_records, warn_to_stderr
from peftbench.results.table import data_caveats, per_task

IDENTITY = ("run_id", "status", "model", "method", "task", "tasks", "benchmark", "format", "seed", "experiment",
            "created", "finished", "error", "init_from")  # fmt: skip
SECTIONS = ("method", "main", "best", "last", "params", "cost", "data", "caveats")
PREFIXED = ("method.", "last.", "params.", "cost.", "data.")  # every dotted column but the best metrics'


def load_runs(results_dir: str | os.PathLike, warn=warn_to_stderr):
    """Every readable run record under ``results_dir`` as a DataFrame, one row per run, in run-id
    order (complete, failed and running alike: filter on ``status``). A record that cannot be
    read is passed to ``warn`` (default: one line on stderr) and left out; a missing folder is a
    ``UserError``."""
    return runs_frame(iter_records(results_dir, warn))


def runs_frame(records: Iterable[dict]):
    """``records`` (dicts as ``record.json`` holds them) as ``load_runs``'s DataFrame."""
    import pandas as pd

    rows = [run_row(record) for record in records]
    columns: dict[str, dict[str, None]] = {section: {} for section in ("identity", *SECTIONS)}
    for row in rows:
        for column, section in row.sections.items():
            columns[section].setdefault(column, None)
    order = [column for section in ("identity", *SECTIONS) for column in columns[section]]
    return pd.DataFrame([row.values for row in rows], columns=order or list(IDENTITY))


class _Row:
    """One run's values, each column tagged with the section it belongs to (for the column order)."""

    def __init__(self):
        self.values: dict[str, object] = {}
        self.sections: dict[str, str] = {}

    def put(self, section: str, column: str, value) -> None:
        self.values[column] = value
        self.sections[column] = section

    def flat(self, section: str, prefix: str, values) -> None:
        """Nested dicts as dotted columns under ``prefix``; lists as tuples (hashable: groupby works)."""
        for key, value in (values or {}).items():
            column = f"{prefix}{key}"
            if isinstance(value, dict):
                self.flat(section, column + ".", value)
            else:
                self.put(section, column, tuple(value) if isinstance(value, list) else value)


def metric_columns(columns) -> list[str]:
    """Of a frame's ``columns``, those of the best evaluation's metrics (``<split>.<metric>``)."""
    return [column for column in columns if "." in column and not column.startswith(PREFIXED)]


def run_row(record: dict) -> _Row:
    """The frame's row of one record."""
    row = _Row()
    config = record.get("config") or {}
    parts = record.get("parts") or []
    identity = {
        **{key: record.get(key) for key in IDENTITY},
        "tasks": tuple(part["task"] for part in parts) or (record["task"],),
        "experiment": config.get("experiment"),
    }
    for key in IDENTITY:
        row.put("identity", key, identity[key])
    row.flat("method", "method.", {k: v for k, v in (record.get("method_config") or {}).items() if k != "name"})
    metrics = record.get("metrics") or {}
    main = metrics.get("main") or {}
    for key in ("split", "metric", "value"):
        row.put("main", f"main_{key}", main.get(key))
    row.put("main", "best_epoch", metrics.get("best_epoch"))
    row.flat("best", "", metrics.get("best"))
    row.flat("last", "last.", metrics.get("last"))
    row.flat("params", "params.", record.get("params"))
    row.flat("cost", "cost.", record.get("cost"))
    row.flat("data", "data.", record.get("data"))
    caveats = dict.fromkeys(caveat for view in per_task(record) for caveat in data_caveats(view))
    row.put("caveats", "caveats", tuple(caveats))
    return row
