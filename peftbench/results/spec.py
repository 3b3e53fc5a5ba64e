"""Table specs: one YAML file per paper table, ``conf/table/NAME.yaml`` (DESIGN §3, "Table spec").

A spec says which runs fill which cell of a paper's table and what the paper published there.
The example is ``conf/table/lora_table2.yaml``, Table 2 of LoRA (Hu et al. 2021,
arXiv:2106.09685v2)::

    title: GLUE dev, RoBERTa base and large
    source: {paper: "LoRA: ...", authors: Hu et al., year: 2021, arxiv: "2106.09685",
             version: v2, table: 2}
    statistic: median        # over seeds: median | mean
    seeds: 5                 # seeds the paper used (optional; ours are counted per cell)
    checkpoint: best         # which metrics of a run: best (default) | last
    data: full               # the paper's data setting: full (default) | fewglue (32 examples)
    training: single         # single (one task a run; default) | multitask (all the columns' tasks together)
    scale: 100               # records hold fractions (0.866), the paper prints 86.6 (default 1)
    decimals: 1              # (default 1)
    columns:                 # task x metric; split defaults to validation, id and label to task
      - {id: mnli, task: mnli, split: validation_matched, metric: accuracy, label: MNLI}
      - {task: e2e, metric: nist, label: NIST, scale: 1, decimals: 2}   # a column's own print
      - {id: cb_16, task: cb, metric: accuracy, train_samples: 16}      # a few-shot column (k rows)
    average: {label: Avg., columns: [mnli, ...]}   # or {label: Avg., note: why not recomputed}
    rows:                    # model x method variant
      - label: RoBERTa-base LoRA
        model: roberta-base
        method: lora
        match: {r: 8, targets: [attn.q, attn.v]}   # method_config fields that must be equal
                                                   # (a mapping, method=peft's config, equal whole)
        paper_params: 0.3M
        paper: {mnli: 87.5, ..., avg: 87.2}   # every column id and the average's; null = none;
                                              # "92.39 ± 0.22" keeps the paper's spread as printed
        bold: [mnli]           # optional: the cells the paper prints in bold
        preset: lora_table2_roberta_base   # optional: the experiment config whose runs fill the row
        training: multitask    # optional: this row's setting, where it differs from the table's
    notes: [...]             # footnotes printed under the table

``match`` names what makes a method variant (rank, target roles), never tuned hyperparameters
(alpha, learning rate); lists match in any order. Where the paper's variant and settings differ by
task (prefix tuning's prefix length 5 on E2E and WebNLG, 10 on DART), ``match`` and ``preset`` map
each of the columns' tasks, every one of them, to its own (a single-task row only)::

        match: {e2e: {length: 5}, webnlg: {length: 5}, dart: {length: 10}}
        preset: {e2e: prefix_e2e, webnlg: prefix_webnlg, dart: prefix_dart}

Every error names the file and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from peftbench.errors import UserError

STATISTICS = ("median", "mean")
DATA_SETTINGS = ("full", "fewglue")
TRAINING_SETTINGS = ("single", "multitask")
CHECKPOINTS = ("best", "last")
DEFAULT_SPLIT = "validation"
DEFAULT_AVERAGE_ID = "avg"


@dataclass(frozen=True)
class Source:
    """The paper a table comes from, down to the arXiv version its numbers were read from."""

    paper: str
    authors: str
    year: int
    arxiv: str
    version: str
    table: str

    @property
    def citation(self) -> str:
        return (
            f"{self.authors} ({self.year}), {self.paper}, "
            f"arXiv:{self.arxiv}{self.version}, Table {self.table}"
        )


@dataclass(frozen=True)
class Column:
    """One task x metric column; ``id`` keys the rows' paper values. ``scale`` and ``decimals``
    are the column's own where the paper prints it otherwise than the rest (E2E's NIST and CIDEr
    are not percentages); None: the spec's."""

    id: str
    label: str
    task: str
    metric: str
    split: str
    scale: float | None = None
    decimals: int | None = None
    train_samples: int | None = None  # a few-shot column: runs with data.train_samples=k; None: all rows


@dataclass(frozen=True)
class Average:
    """The average column: the ids it averages, or ``None`` with a note saying why it cannot be."""

    id: str
    label: str
    columns: tuple[str, ...] | None
    note: str | None


@dataclass(frozen=True)
class Row:
    """One model x method variant and the numbers the paper published for it."""

    label: str
    model: str
    method: str
    match: dict
    paper_params: str | None
    paper: dict[str, float | None]
    training: str  # single | multitask: how the paper trained this row (default: the spec's)
    paper_spread: dict[str, str]  # the ± the paper prints beside a value, as printed ("0.22", ".3")
    bold: tuple[str, ...]  # the column ids of the cells the paper prints in bold
    preset: str | None  # the experiment config (conf/experiment) that reproduces the row, if any
    # The per-task form (a row whose variant or settings differ by task): each column task's match
    # and preset; empty where the row gives one ``match`` / ``preset`` for every task.
    task_match: dict[str, dict] = field(default_factory=dict)
    task_preset: dict[str, str] = field(default_factory=dict)

    def match_for(self, task: str) -> dict:
        """The method_config fields the row's runs on ``task`` have."""
        return self.task_match.get(task, self.match)

    def preset_for(self, task: str) -> str | None:
        """The experiment config whose runs fill the row's cells of ``task``, if any."""
        return self.task_preset.get(task, self.preset)


@dataclass(frozen=True)
class TableSpec:
    name: str
    path: Path
    title: str
    source: Source
    statistic: str
    seeds: int | None
    checkpoint: str
    data: str  # the paper's data setting (DATA_SETTINGS); runs in another one are marked
    training: str  # single | multitask (TRAINING_SETTINGS): runs trained the other way are marked
    scale: float
    decimals: int
    columns: tuple[Column, ...]
    average: Average | None
    rows: tuple[Row, ...]
    notes: tuple[str, ...]


def list_tables(conf_dir: str | Path) -> list[str]:
    """The names of the table specs under ``conf_dir/table``, sorted."""
    return sorted(path.stem for path in (Path(conf_dir) / "table").glob("*.yaml"))


def load_spec(name: str, conf_dir: str | Path) -> TableSpec:
    """Read and validate ``conf_dir/table/NAME.yaml``; ``UserError`` for anything wrong with it."""
    path = Path(conf_dir) / "table" / f"{name}.yaml"
    if "/" in name or "\\" in name or not path.is_file():
        known = ", ".join(list_tables(conf_dir)) or "none"
        raise UserError(f"unknown table {name!r}; choose one of: {known} (peftbench list tables)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "not YAML"
        message = f"table spec {path}: invalid YAML{where}: {problem}; fix the file"
        raise UserError(message) from None
    return _SpecReader(path).spec(name, data)


class _SpecReader:
    """Validates the parsed YAML of one spec, naming the file and the field in every error."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, problem: str) -> UserError:
        return UserError(f"table spec {self.path}: {where}: {problem}")

    def mapping(self, value, where: str, required: tuple, optional: tuple = ()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, "must be a mapping")
        unknown = sorted(set(value) - set(required) - set(optional), key=str)
        if unknown:
            allowed = ", ".join(required + optional)
            raise self.fail(where, f"unknown field {unknown[0]!r}; allowed: {allowed}")
        missing = [key for key in required if key not in value]
        if missing:
            raise self.fail(where, f"missing field {missing[0]!r}")
        return value

    def text(self, value, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"must be a non-empty string, not {value!r} (quote numbers)")
        return value

    def integer(self, value, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(where, f"must be a non-negative integer, not {value!r}")
        return value

    def number(self, value, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, f"must be a number, not {value!r}")
        return float(value)

    def choice(self, value, where: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(where, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def spec(self, name: str, data) -> TableSpec:
        data = self.mapping(
            data,
            "top level",
            ("title", "source", "statistic", "columns", "rows"),
            ("seeds", "checkpoint", "data", "training", "scale", "decimals", "average", "notes"),
        )
        columns = self.columns(data["columns"])
        column_ids = tuple(column.id for column in columns)
        average = self.average(data["average"], column_ids) if "average" in data else None
        value_ids = column_ids + ((average.id,) if average else ())
        training = self.choice(data.get("training", "single"), "training", TRAINING_SETTINGS)
        notes = data.get("notes") or []
        if not isinstance(notes, list):
            raise self.fail("notes", "must be a list of strings")
        seeds = data.get("seeds")
        return TableSpec(
            name=name,
            path=self.path,
            title=self.text(data["title"], "title"),
            source=self.source(data["source"]),
            statistic=self.choice(data["statistic"], "statistic", STATISTICS),
            seeds=None if seeds is None else self.integer(seeds, "seeds"),
            checkpoint=self.choice(data.get("checkpoint", "best"), "checkpoint", CHECKPOINTS),
            data=self.choice(data.get("data", "full"), "data", DATA_SETTINGS),
            training=training,
            scale=self.number(data.get("scale", 1), "scale"),
            decimals=self.integer(data.get("decimals", 1), "decimals"),
            columns=columns,
            average=average,
            rows=self.rows(data["rows"], value_ids, training, tuple(dict.fromkeys(c.task for c in columns))),
            notes=tuple(self.text(note, f"notes[{i}]") for i, note in enumerate(notes)),
        )

    def source(self, value) -> Source:
        fields = ("paper", "authors", "year", "arxiv", "version", "table")
        value = self.mapping(value, "source", fields)
        return Source(
            paper=self.text(value["paper"], "source.paper"),
            authors=self.text(value["authors"], "source.authors"),
            year=self.integer(value["year"], "source.year"),
            arxiv=self.text(value["arxiv"], "source.arxiv"),
            version=self.text(value["version"], "source.version"),
            table=str(value["table"]),
        )

    def columns(self, value) -> tuple[Column, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail("columns", "must be a non-empty list")
        columns = []
        for i, item in enumerate(value):
            where = f"columns[{i}]"
            item = self.mapping(item, where, ("task", "metric"), ("id", "label", "split", "scale", "decimals", "train_samples"))
            task = self.text(item["task"], f"{where}.task")
            column = Column(
                id=self.text(item.get("id", task), f"{where}.id"),
                label=self.text(item.get("label", task), f"{where}.label"),
                task=task,
                metric=self.text(item["metric"], f"{where}.metric"),
                split=self.text(item.get("split", DEFAULT_SPLIT), f"{where}.split"),
                scale=self.number(item["scale"], f"{where}.scale") if "scale" in item else None,
                decimals=self.integer(item["decimals"], f"{where}.decimals") if "decimals" in item else None,
                train_samples=self.integer(item["train_samples"], f"{where}.train_samples") if "train_samples" in item else None,
            )
            if any(other.id == column.id for other in columns):
                raise self.fail(f"{where}.id", f"{column.id!r} is used twice; give each an id")
            columns.append(column)
        return tuple(columns)

    def average(self, value, column_ids: tuple[str, ...]) -> Average:
        value = self.mapping(value, "average", ("label",), ("id", "columns", "note"))
        if ("columns" in value) == ("note" in value):
            raise self.fail("average", "give either columns (to recompute it) or a note (why not)")
        average_id = self.text(value.get("id", DEFAULT_AVERAGE_ID), "average.id")
        if average_id in column_ids:
            raise self.fail("average.id", f"{average_id!r} is also a column id; choose another")
        columns = None
        if "columns" in value:
            columns = value["columns"]
            if not isinstance(columns, list) or not columns:
                raise self.fail("average.columns", "must be a non-empty list of column ids")
            for column_id in columns:
                if column_id not in column_ids:
                    problem = f"unknown column {column_id!r}; known: {', '.join(column_ids)}"
                    raise self.fail("average.columns", problem)
            columns = tuple(columns)
        note = value.get("note")
        return Average(
            id=average_id,
            label=self.text(value["label"], "average.label"),
            columns=columns,
            note=None if note is None else self.text(note, "average.note"),
        )

    def rows(self, value, value_ids: tuple[str, ...], training: str, tasks: tuple[str, ...]) -> tuple[Row, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail("rows", "must be a non-empty list")
        rows = []
        for i, item in enumerate(value):
            where = f"rows[{i}]"
            item = self.mapping(
                item, where, ("label", "model", "method", "paper"),
                ("match", "paper_params", "training", "bold", "preset"),
            )
            label = self.text(item["label"], f"{where}.label")
            if any(other.label == label for other in rows):
                raise self.fail(f"{where}.label", f"{label!r} is used twice")
            paper_params = item.get("paper_params")
            paper, spread = self.paper(item["paper"], f"{where}.paper", value_ids)
            row_training = self.choice(item.get("training", training), f"{where}.training", TRAINING_SETTINGS)
            match, task_match = self.row_match(item.get("match") or {}, f"{where}.match", tasks)
            preset, task_preset = self.row_preset(item.get("preset"), f"{where}.preset", tasks)
            if (task_match or task_preset) and row_training == "multitask":
                field_name = "match" if task_match else "preset"
                raise self.fail(f"{where}.{field_name}", "a multitask row trains its tasks in one run; give one for every task")
            rows.append(
                Row(
                    label=label,
                    model=self.text(item["model"], f"{where}.model"),
                    method=self.text(item["method"], f"{where}.method"),
                    match=match,
                    paper_params=None
                    if paper_params is None
                    else self.text(str(paper_params), f"{where}.paper_params"),
                    paper=paper,
                    training=row_training,
                    paper_spread=spread,
                    bold=self.bold(item.get("bold") or [], f"{where}.bold", value_ids),
                    preset=preset,
                    task_match=task_match,
                    task_preset=task_preset,
                )
            )
        return tuple(rows)

    def per_task(self, value: dict, where: str, tasks: tuple[str, ...]) -> dict:
        """A mapping of each of the columns' tasks to its value: every task named, no other."""
        unknown = [key for key in value if key not in tasks]
        missing = [task for task in tasks if task not in value]
        if unknown or missing:
            problem = f"{unknown[0]!r} is no column's task" if unknown else f"no value for task {missing[0]!r}"
            raise self.fail(where, f"{problem}; map each of the columns' tasks ({', '.join(tasks)}) to one")
        return value

    def row_match(self, value, where: str, tasks: tuple[str, ...]) -> tuple[dict, dict[str, dict]]:
        """(the match for every task, {}) or, in the per-task form, ({}, each task's match). A mapping
        whose keys name none of the columns' tasks is a field holding a mapping (method=peft's
        ``config``), matched whole."""
        per_task = isinstance(value, dict) and any(key in tasks for key in value)
        if per_task and all(isinstance(wanted, dict) for wanted in value.values()):
            value = self.per_task(value, where, tasks)
            return {}, {task: self.match(fields, f"{where}.{task}") for task, fields in value.items()}
        if per_task and any(isinstance(wanted, dict) for wanted in value.values()):
            tasks_named = ", ".join(tasks)
            raise self.fail(where, f"give method_config fields, or map each of the columns' tasks ({tasks_named}) to its fields, not both")
        return self.match(value, where), {}

    def row_preset(self, value, where: str, tasks: tuple[str, ...]) -> tuple[str | None, dict[str, str]]:
        """(the preset for every task, {}) or, in the per-task form, (None, each task's preset)."""
        if value is None:
            return None, {}
        if isinstance(value, dict):
            value = self.per_task(value, where, tasks)
            return None, {task: self.text(preset, f"{where}.{task}") for task, preset in value.items()}
        return self.text(value, where), {}

    def match(self, value, where: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, "must be a mapping of method_config fields to values")
        scalar = (str, int, float, bool, type(None))

        def plain(wanted) -> bool:  # a scalar, a list of plain values, or a mapping of them
            if isinstance(wanted, dict):
                return all(isinstance(key, str) and plain(item) for key, item in wanted.items())
            return all(plain(item) for item in wanted) if isinstance(wanted, list) else isinstance(wanted, scalar)

        for key, wanted in value.items():
            if not plain(wanted):
                raise self.fail(f"{where}.{key}", "must be a scalar, a list or a mapping of scalars")
        return value

    def paper(self, value, where: str, value_ids: tuple[str, ...]) -> tuple[dict[str, float | None], dict[str, str]]:
        """The paper's value of every column (None where it prints none) and the spread it prints
        beside some of them ("92.39 ± 0.22")."""
        if not isinstance(value, dict):
            raise self.fail(where, "must map each column id to the paper's number")
        unknown = sorted(set(value) - set(value_ids), key=str)
        if unknown:
            raise self.fail(where, f"unknown column {unknown[0]!r}; known: {', '.join(value_ids)}")
        missing = [key for key in value_ids if key not in value]
        if missing:
            problem = f"no value for {missing[0]!r}; write null where the paper has none"
            raise self.fail(where, problem)
        values, spreads = {}, {}
        for key in value_ids:
            cell = value[key]
            if isinstance(cell, str):
                printed = _WITH_SPREAD.fullmatch(cell)
                if not printed:
                    raise self.fail(f"{where}.{key}", f"must be a number or 'value ± spread', not {cell!r}")
                values[key], spreads[key] = float(printed.group(1)), printed.group(2)
            else:
                values[key] = None if cell is None else self.number(cell, f"{where}.{key}")
        return values, spreads

    def bold(self, value, where: str, value_ids: tuple[str, ...]) -> tuple[str, ...]:
        if not isinstance(value, list) or any(item not in value_ids for item in value):
            raise self.fail(where, f"must be a list of column ids among {', '.join(value_ids)}")
        return tuple(value)


_WITH_SPREAD = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*±\s*(\d*\.?\d+)\s*")
