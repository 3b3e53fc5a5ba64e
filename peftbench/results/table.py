"""A paper's table from run records, beside the numbers the paper published (DESIGN §3).

``build_table`` places each complete run in the cell its model, method variant and task fit,
reduces each cell to the spec's statistic over seeds (one value per seed, the newest run when a
seed was run twice) with the standard deviation and the seed count, and sets the paper's value
and the difference beside it. ``render`` turns the result into text; each format is one function
in ``RENDERERS``.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple, Sequence

from peftbench.errors import UserError
from peftbench.results.spec import Column, Row, TableSpec

SAMPLE_MARK = "†"
SAMPLE_NOTE = (
    f"{SAMPLE_MARK} from runs on sample data (a slice of the official splits), "
    "not comparable with the paper."
)
MISSING = "–"


@dataclass(frozen=True)
class Cell:
    """Our number for one row and column, and the paper's.

    ``value`` and ``spread`` are scaled as the paper prints them (86.6, not 0.866); ``spread`` is
    the sample standard deviation over seeds (0 for one seed; None for the average column, whose
    ``n`` is the smallest ``n`` it averages).
    ``difference`` is ours as printed minus the paper's, so that it agrees with the printed
    numbers. ``sample`` marks a value computed from runs on sample data.
    """

    value: float | None
    spread: float | None
    n: int
    paper: float | None
    difference: float | None
    sample: bool


@dataclass(frozen=True)
class TableRow:
    """One spec row: the model our runs use, our parameter count (median of
    ``params.trainable_method``), the paper's, and one cell per column then the average."""

    label: str
    model: str
    method: str
    params: float | None
    paper_params: str | None
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Table:
    """A built table. ``model`` is set when our runs use another model than the rows name."""

    spec: TableSpec
    model: str | None
    headers: tuple[str, ...]
    rows: tuple[TableRow, ...]
    notes: tuple[str, ...]


class _Run(NamedTuple):
    """What a table needs of one complete record. Keeping only this, not whole records with
    their configs, keeps a scan of 10,000 records from feeding the garbage collector."""

    seed: object
    finished: str
    method_config: dict
    metrics: dict  # the spec's checkpoint: {split: {metric: value}}
    trainable: float  # params.trainable_method
    sample: bool  # data.sample


def build_table(spec: TableSpec, records: Iterable[dict], model: str | None = None) -> Table:
    """Fill ``spec`` from the complete ``records``; ``model`` runs every row on another model."""
    runs_by_key: dict[tuple, list[_Run]] = {}
    for record in records:
        if record.get("status") == "complete":
            key = (record["model"], record["method"], record["task"])
            runs_by_key.setdefault(key, []).append(
                _Run(
                    seed=record["seed"],
                    finished=record.get("finished") or "",
                    method_config=record["method_config"],
                    metrics=record["metrics"].get(spec.checkpoint) or {},
                    trainable=record["params"]["trainable_method"],
                    sample=bool(record["data"].get("sample")),
                )
            )

    without_metric: dict[tuple, int] = {}
    rows = []
    for row in spec.rows:
        row_model = model or row.model
        row_runs, cells = [], []
        for column in spec.columns:
            runs = [
                run
                for run in runs_by_key.get((row_model, row.method, column.task), ())
                if _matches(run.method_config, row.match)
            ]
            row_runs += runs
            scored = []
            for run in runs:
                value = _metric(run, column)
                if value is None:
                    key = (column.task, column.split, column.metric)
                    without_metric[key] = without_metric.get(key, 0) + 1
                else:
                    scored.append((run, value))
            cells.append(_cell(spec, scored, row.paper[column.id]))
        if spec.average:
            cells.append(_average_cell(spec, row, cells))
        rows.append(
            TableRow(
                label=row.label,
                model=row_model,
                method=row.method,
                params=_median_params(row_runs),
                paper_params=row.paper_params,
                cells=tuple(cells),
            )
        )

    headers = tuple(column.label for column in spec.columns)
    if spec.average:
        headers += (spec.average.label,)
    return Table(
        spec=spec,
        model=model,
        headers=headers,
        rows=tuple(rows),
        notes=_notes(spec, model, rows, without_metric),
    )


def _matches(method_config: dict, match: dict) -> bool:
    """``method_config`` has every field of ``match`` with an equal value; lists in any order."""
    for field, wanted in match.items():
        if field not in method_config:
            return False
        have = method_config[field]
        if isinstance(wanted, list) and isinstance(have, list):
            same_items = all(have.count(item) == wanted.count(item) for item in wanted)
            if len(have) != len(wanted) or not same_items:
                return False
        elif have != wanted:
            return False
    return True


def _metric(run: _Run, column: Column) -> float | None:
    """The run's value for the column's split and metric, or None where it has no finite one."""
    try:
        value = run.metrics[column.split][column.metric]
    except (KeyError, TypeError):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _comparable(scored: list[tuple[_Run, float]]) -> tuple[list[tuple[_Run, float]], bool]:
    """The sample-data rule, kept here alone: runs on the official data fill a paper's cell;
    runs on sample data (``data.sample``) fill it only when there are no others, and then the
    cell is marked. Returns the runs to use and whether they are sample runs."""
    official = [(run, value) for run, value in scored if not run.sample]
    if official:
        return official, False
    return scored, bool(scored)


def _one_per_seed(scored: list[tuple[_Run, float]]) -> list[float]:
    """One value per seed: the run that finished last (ISO 8601 UTC times compare as text)."""
    newest: dict = {}
    for run, value in scored:
        if run.seed not in newest or run.finished > newest[run.seed][0]:
            newest[run.seed] = (run.finished, value)
    return [value for _, value in newest.values()]


def _cell(spec: TableSpec, scored: list[tuple[_Run, float]], paper: float | None) -> Cell:
    runs, sample = _comparable(scored)
    values = _one_per_seed(runs)
    if not values:
        return Cell(value=None, spread=None, n=0, paper=paper, difference=None, sample=False)
    statistic = statistics.median if spec.statistic == "median" else statistics.mean
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    value = statistic(values) * spec.scale
    return Cell(
        value=value,
        spread=spread * spec.scale,
        n=len(values),
        paper=paper,
        difference=_difference(value, paper, spec.decimals),
        sample=sample,
    )


def _average_cell(spec: TableSpec, row: Row, cells: list[Cell]) -> Cell:
    """The mean of our cells over the average's columns, only when every one of them has runs."""
    paper = row.paper[spec.average.id]
    ids = [column.id for column in spec.columns]
    averaged = [cells[ids.index(column_id)] for column_id in spec.average.columns or ()]
    if not averaged or any(cell.value is None for cell in averaged):
        return Cell(value=None, spread=None, n=0, paper=paper, difference=None, sample=False)
    value = statistics.mean(cell.value for cell in averaged)
    return Cell(
        value=value,
        spread=None,
        n=min(cell.n for cell in averaged),
        paper=paper,
        difference=_difference(value, paper, spec.decimals),
        sample=any(cell.sample for cell in averaged),
    )


def _difference(value: float, paper: float | None, decimals: int) -> float | None:
    if paper is None:
        return None
    return round(round(value, decimals) - paper, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0


def _median_params(runs: list[_Run]) -> float | None:
    counts = [run.trainable for run in runs]
    return statistics.median(counts) if counts else None


def _notes(
    spec: TableSpec, model: str | None, rows: list[TableRow], without_metric: dict[tuple, int]
) -> tuple[str, ...]:
    notes = []
    if any(cell.sample for row in rows for cell in row.cells):
        notes.append(SAMPLE_NOTE)
    if model:
        notes.append(
            f"Our runs use {model} in every row; the paper's numbers are for the model the row "
            "names, shown for reference."
        )
    if spec.average and spec.average.columns:
        notes.append(
            f"Our {spec.average.label} is the mean of our cells over its "
            f"{len(spec.average.columns)} columns, shown only when every one of them has runs."
        )
    if spec.average and spec.average.note:
        notes.append(f"{spec.average.label}: {spec.average.note}")
    for (task, split, metric), count in sorted(without_metric.items()):
        notes.append(
            f"{count} run(s) of {task} have no {spec.checkpoint} {split} {metric} and fill no cell."
        )
    return tuple(notes) + spec.notes


def format_count(count: float) -> str:
    """A parameter count as papers print it: 294912 -> 294.9K, 125000000 -> 125.0M."""
    if count >= 1e6:
        return f"{count / 1e6:,.1f}M"
    if count >= 1e3:
        return f"{count / 1e3:.1f}K"
    return f"{count:g}"


def render_markdown(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub-flavoured Markdown table with padded columns (no trailing newline)."""
    lines = [[_markdown_cell(cell) for cell in headers]]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells for {len(headers)} headers: {row!r}")
        lines.append([_markdown_cell(cell) for cell in row])
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]

    def join(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + " |"

    separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([join(lines[0]), separator, *map(join, lines[1:])])


def _markdown_cell(value) -> str:
    text = MISSING if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _fixed(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def _ours_text(cell: Cell, decimals: int) -> str:
    """``86.1 ± 0.9 (n=3) Δ -0.5``, with the sample mark after the number when it applies."""
    if cell.value is None:
        return MISSING
    text = _fixed(cell.value, decimals) + (SAMPLE_MARK if cell.sample else "")
    if cell.spread is not None:
        text += f" ± {_fixed(cell.spread, decimals)} (n={cell.n})"
    if cell.difference is not None:
        text += f" Δ {cell.difference:+.{decimals}f}"
    return text


def _header_lines(table: Table) -> list[str]:
    spec = table.spec
    paper = f"Paper: {spec.source.citation}"
    if spec.seeds:
        paper += f"; {spec.statistic} of {spec.seeds} seeds"
    return [
        f"## {spec.title}",
        "",
        paper + ".",
        f"Ours: {spec.statistic} over seeds ± standard deviation (n = seeds), {spec.checkpoint} "
        f"evaluation of each run, ×{spec.scale:g}; Δ = ours − paper.",
    ]


def render_md(table: Table) -> str:
    """Two lines per row, the paper's numbers above ours, then the footnotes."""
    decimals = table.spec.decimals
    ours = f"ours on {table.model}" if table.model else "ours"
    lines = []
    for row in table.rows:
        paper_cells = [None if c.paper is None else _fixed(c.paper, decimals) for c in row.cells]
        our_params = None if row.params is None else format_count(row.params)
        lines.append([row.label, "paper", row.paper_params, *paper_cells])
        lines.append([row.label, ours, our_params, *(_ours_text(c, decimals) for c in row.cells)])
    body = render_markdown(["Row", "Numbers", "Params", *table.headers], lines)
    notes = [f"- {note}" for note in table.notes]
    return "\n".join([*_header_lines(table), "", body, *([""] + notes if notes else [])]) + "\n"


CSV_FIELDS = (
    "row",
    "model",
    "method",
    "column",
    "task",
    "split",
    "metric",
    "ours",
    "std",
    "n",
    "paper",
    "difference",
    "sample_data",
    "params",
    "paper_params",
)


def render_csv(table: Table) -> str:
    """One line per row and column (the average's task, split and metric are empty); numbers
    unrounded but for float noise, empty where there is none."""
    columns = [(c.id, c.task, c.split, c.metric) for c in table.spec.columns]
    if table.spec.average:
        columns.append((table.spec.average.id, "", "", ""))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for row in table.rows:
        for (column_id, task, split, metric), cell in zip(columns, row.cells):
            writer.writerow(
                [
                    row.label,
                    row.model,
                    row.method,
                    column_id,
                    task,
                    split,
                    metric,
                    _csv_number(cell.value),
                    _csv_number(cell.spread),
                    cell.n,
                    _csv_number(cell.paper),
                    _csv_number(cell.difference),
                    "true" if cell.sample else "false",
                    _csv_number(row.params),
                    row.paper_params or "",
                ]
            )
    return buffer.getvalue()


def _csv_number(value: float | None) -> str:
    return "" if value is None else str(round(value, 6))


RENDERERS: dict[str, Callable[[Table], str]] = {"md": render_md, "csv": render_csv}


def render(table: Table, fmt: str) -> str:
    """The table as text in format ``fmt`` (a key of ``RENDERERS``), ending with a newline."""
    if fmt not in RENDERERS:
        raise UserError(f"unknown table format {fmt!r}; choose one of: {', '.join(RENDERERS)}")
    return RENDERERS[fmt](table)
