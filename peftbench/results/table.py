"""A paper's table from run records, beside the numbers the paper published (DESIGN §3).

``build_table`` places each complete run in the cell its model, method variant and task fit,
reduces each cell to the spec's statistic over seeds (one value per seed, the newest run when a
seed was run twice) with the standard deviation and the seed count, and sets the paper's value
and the difference beside it. ``render`` turns the result into text; each format is one function
in ``peftbench.results.render`` (Markdown, CSV, LaTeX with booktabs, HTML).

A run made in another setting than the paper's — sample data (an embedded slice, or splits cut by
``data.max_*_samples``), FewGLUE
where the paper used the full data or the reverse, or a preset of another version of the paper —
is a *caveat*: such runs fill a cell only when it has no others, and then the cell carries a mark
(†, ‡, …) whose footnote names the caveat. Nothing is mixed into a paper's cell silently.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from typing import Iterable, NamedTuple

from peftbench.errors import UserError
from peftbench.results.spec import Column, Row, TableSpec

CAVEAT_MARKS = ("†", "‡", "§", "¶", "‖", "#")
SAMPLE_CAVEAT = "runs on sample data (a slice of the official splits)"
MISSING = "–"


@dataclass(frozen=True)
class Cell:
    """Our number for one row and column, and the paper's.

    ``value`` and ``spread`` are scaled as the paper prints them (86.6, not 0.866); ``spread`` is
    the sample standard deviation over seeds (0 for one seed; None for the average column, whose
    ``n`` is the smallest ``n`` it averages).
    ``difference`` is ours as printed minus the paper's, so that it agrees with the printed
    numbers. ``caveats`` say how the runs behind the value differ from the paper's setting
    (empty when they do not); such a value is marked. ``decimals``: the column's own, or None for
    the spec's. ``paper_spread`` is the ± the paper prints beside its value, as printed;
    ``paper_bold`` whether it prints the value in bold.
    """

    value: float | None
    spread: float | None
    n: int
    paper: float | None
    difference: float | None
    caveats: tuple[str, ...] = ()
    decimals: int | None = None
    paper_spread: str | None = None
    paper_bold: bool = False


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
    """A built table. ``model`` is set when our runs use another model than the rows name;
    ``marks`` maps each caveat found in a cell to its footnote mark."""

    spec: TableSpec
    model: str | None
    headers: tuple[str, ...]
    rows: tuple[TableRow, ...]
    notes: tuple[str, ...]
    marks: dict[str, str]

    def marked(self, cell: Cell) -> str:
        """The marks of ``cell``'s caveats, in mark order ('' when it has none)."""
        return "".join(sorted((self.marks[c] for c in cell.caveats), key=CAVEAT_MARKS.index))


class _Run(NamedTuple):
    """What a table needs of one complete record. Keeping only this, not whole records with
    their configs, keeps a scan of 10,000 records from feeding the garbage collector."""

    seed: object
    finished: str
    method_config: dict
    metrics: dict  # the spec's checkpoint: {split: {metric: value}}
    trainable: float  # params.trainable_method
    caveats: tuple[str, ...]  # how the run's setting differs from the paper's (_caveats)
    multitask: tuple[str, ...]  # the tasks it trained together; () when it trained one


def substitution(spec: TableSpec, model: str | None) -> tuple[str | None, str | None]:
    """``--model`` as (the backbone whose rows it fills, the model that fills them): ``M`` stands in
    for the first row's backbone, ``ROWS_MODEL=M`` for another one; (None, None) without it."""
    if not model:
        return None, None
    replacing, _, substitute = model.rpartition("=")
    return _backbone(spec, replacing or None, substitute), substitute


def _backbone(spec: TableSpec, replacing: str | None, model: str) -> str:
    """The backbone whose rows ``model`` fills: ``replacing``, or the first row's; it must have rows."""
    replacing = replacing or spec.rows[0].model
    if replacing not in {row.model for row in spec.rows}:
        known = ", ".join(dict.fromkeys(row.model for row in spec.rows))
        raise UserError(f"--model {replacing}={model}: table {spec.name} has no {replacing} rows; choose one of: {known}")
    return replacing


def build_table(spec: TableSpec, records: Iterable[dict], model: str | None = None, replacing: str | None = None) -> Table:
    """Fill ``spec`` from the complete ``records``. ``model`` fills the rows of one backbone, the
    model ``replacing`` names (default: the first row's), from runs on ``model`` instead; the
    rows of the spec's other backbones then show the paper's numbers alone, so that one run never
    fills two rows that differ only by backbone (RoBERTa-base LoRA and RoBERTa-large LoRA)."""
    if model:
        replacing = _backbone(spec, replacing, model)
    runs_by_key: dict[tuple, list[_Run]] = {}
    for record in (view for record in records for view in per_task(record)):
        if record.get("status") == "complete":
            key = (record["model"], record["method"], record["task"], train_samples(record))
            runs_by_key.setdefault(key, []).append(
                _Run(
                    seed=record["seed"],
                    finished=record.get("finished") or "",
                    method_config=record["method_config"],
                    metrics=record["metrics"].get(spec.checkpoint) or {},
                    trainable=record["params"]["trainable_method"],
                    caveats=_caveats(spec, record),
                    multitask=tuple(record.get("multitask") or ()),
                )
            )

    without_metric: dict[tuple, int] = {}
    rows = []
    for row in spec.rows:
        row_model = model if model and row.model == replacing else row.model
        row_runs, cells = [], []
        for column in spec.columns:
            runs = [
                run._replace(caveats=run.caveats + _training_caveats(row.training, run.multitask))
                for run in runs_by_key.get((row_model, row.method, column.task, column.train_samples), ())
                if matches(run.method_config, row.match_for(column.task))
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
            cells.append(_cell(spec, column, scored, row.paper[column.id]))
        if spec.average:
            cells.append(_average_cell(spec, row, cells))
        ids = [column.id for column in spec.columns] + ([spec.average.id] if spec.average else [])
        cells = [
            dataclasses.replace(cell, paper_spread=row.paper_spread.get(column_id), paper_bold=column_id in row.bold)
            for column_id, cell in zip(ids, cells)
        ]
        rows.append(
            TableRow(
                label=row.label,
                model=row_model,
                method=row.method,
                params=median_params(row_runs),
                paper_params=row.paper_params,
                cells=tuple(cells),
            )
        )

    headers = tuple(column.label for column in spec.columns)
    if spec.average:
        headers += (spec.average.label,)
    marks = _marks(rows)
    return Table(
        spec=spec,
        model=model,
        headers=headers,
        rows=tuple(rows),
        notes=_notes(spec, model, replacing, rows, without_metric, marks),
        marks=marks,
    )


def per_task(record: dict) -> list[dict]:
    """A record as one record per task it trained: a single-task record as it is; a multi-task
    one (``parts``) as a view per task, with that task's name, data and metrics (``rte/validation``
    becomes ``validation``) and the tasks it trained with (``multitask``)."""
    if not record.get("parts"):
        return [record]
    views = []
    for part in record["parts"]:
        prefix = part["task"] + "/"
        metrics = {
            key: {split[len(prefix):]: value for split, value in values.items() if split.startswith(prefix)}
            if isinstance(values, dict) else values
            for key, values in (record.get("metrics") or {}).items()
        }  # fmt: skip
        main = dict(part["main"])
        main["value"] = metrics.get("best", {}).get(main["split"], {}).get(main["metric"])
        metrics["main"] = main
        views.append({
            **record, "task": part["task"], "benchmark": part["benchmark"], "format": part["format"],
            "data": part["data"], "metrics": metrics, "multitask": [p["task"] for p in record["parts"]],
        })  # fmt: skip
    return views


def train_samples(record: dict) -> int | None:
    """The few-shot training set size a run drew (``data.train_samples``); None: every row."""
    return ((record.get("config") or {}).get("data") or {}).get("train_samples")


def data_caveats(record: dict, setting: str = "full") -> tuple[str, ...]:
    """How a record's data differ from ``setting`` (the full official data, or FewGLUE's), or
    from the label set the paper's data had (a snapshot of the CFPB complaints with other classes)."""
    data = record.get("data") or {}
    if data.get("sample"):
        return (SAMPLE_CAVEAT,)
    classes = len(data.get("label_names") or ())
    if classes and classes != data.get("declared_classes"):  # task.labels_from_data=true on another snapshot
        return (f"runs on data with {classes} classes, not the paper's {data.get('declared_classes')}",)
    subset = data.get("subset") or "full"
    if subset == setting:
        return ()
    if subset == "fewglue":
        return ("runs on FewGLUE's 32 training examples",)
    return (f"runs on the {subset} training data, not the paper's {setting} setting",)


def _training_caveats(training: str, multitask: tuple[str, ...]) -> tuple[str, ...]:
    """How a run's training differs from a row's ``training`` (single | multitask)."""
    if multitask and training == "single":
        return (f"trained on several tasks at once ({', '.join(multitask)}), not on this one alone",)
    if not multitask and training == "multitask":
        return ("trained on this task alone, not with the paper's other tasks",)
    return ()


def _caveats(spec: TableSpec, record: dict) -> tuple[str, ...]:
    """How a record's run differs from the paper's setting, one phrase per difference."""
    found = data_caveats(record, spec.data)
    paper = (record.get("config") or {}).get("paper") or {}
    if paper.get("arxiv") == spec.source.arxiv and paper.get("version") not in (None, spec.source.version):
        found += (f"runs with the hyperparameters of the paper's {paper['version']} version, not {spec.source.version}",)
    return found


def caveat_marks(caveats: Iterable[str]) -> dict[str, str]:
    """A footnote mark for each caveat, in order of first appearance: †, ‡, §, ¶, ‖, #, ††, …"""
    marks: dict[str, str] = {}
    for caveat in caveats:
        if caveat not in marks:
            index = len(marks)
            marks[caveat] = CAVEAT_MARKS[index % len(CAVEAT_MARKS)] * (1 + index // len(CAVEAT_MARKS))
    return marks


def _marks(rows: list[TableRow]) -> dict[str, str]:
    return caveat_marks(c for row in rows for cell in row.cells for c in cell.caveats)


def matches(method_config: dict, match: dict) -> bool:
    """``method_config`` has every field of ``match`` with an equal value; lists in any order. A
    record written before a later option existed has that option's default
    (``peftbench.config.LATER_OPTIONS``: what its run did)."""
    from peftbench.config import LATER_OPTIONS

    for field, wanted in match.items():
        if field not in method_config and field not in LATER_OPTIONS["method"]:
            return False
        have = method_config.get(field, LATER_OPTIONS["method"].get(field))
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


def comparable(scored: list[tuple[object, float]]) -> tuple[list[tuple[object, float]], tuple[str, ...]]:
    """The caveat rule, kept here alone (runs are anything with ``caveats``): runs in the paper's setting fill its cell; runs with a
    caveat fill it only when there are no others, and then the cell carries their caveats.
    Returns the runs to use and their caveats."""
    clean = [(run, value) for run, value in scored if not run.caveats]
    if clean:
        return clean, ()
    caveats = dict.fromkeys(c for run, _ in scored for c in run.caveats)
    return scored, tuple(caveats)


def one_per_seed(scored: list[tuple[object, float]]) -> list[float]:
    """One value per seed (runs have ``seed`` and ``finished``): the run that finished last
    (ISO 8601 UTC times compare as text)."""
    newest: dict = {}
    for run, value in scored:
        if run.seed not in newest or run.finished > newest[run.seed][0]:
            newest[run.seed] = (run.finished, value)
    return [value for _, value in newest.values()]


def reduce_over_seeds(scored: list[tuple[object, float]], statistic: str) -> tuple[float, float, int, tuple[str, ...]] | None:
    """Scored runs -> (statistic over seeds, sample standard deviation (0 for one seed), seeds,
    caveats), after the caveat rule and one value per seed; None when there is no run."""
    runs, caveats = comparable(scored)
    values = one_per_seed(runs)
    if not values:
        return None
    reduce = statistics.median if statistic == "median" else statistics.mean
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return reduce(values), spread, len(values), caveats


def _cell(spec: TableSpec, column: Column, scored: list[tuple[_Run, float]], paper: float | None) -> Cell:
    scale = spec.scale if column.scale is None else column.scale
    decimals = spec.decimals if column.decimals is None else column.decimals
    reduced = reduce_over_seeds(scored, spec.statistic)
    if reduced is None:
        return Cell(value=None, spread=None, n=0, paper=paper, difference=None, decimals=column.decimals)
    value, spread, n, caveats = reduced
    value *= scale
    return Cell(
        value=value,
        spread=spread * scale,
        n=n,
        paper=paper,
        difference=_difference(value, paper, decimals),
        caveats=caveats,
        decimals=column.decimals,
    )


def _average_cell(spec: TableSpec, row: Row, cells: list[Cell]) -> Cell:
    """The mean of our cells over the average's columns, only when every one of them has runs."""
    paper = row.paper[spec.average.id]
    ids = [column.id for column in spec.columns]
    averaged = [cells[ids.index(column_id)] for column_id in spec.average.columns or ()]
    if not averaged or any(cell.value is None for cell in averaged):
        return Cell(value=None, spread=None, n=0, paper=paper, difference=None)
    value = statistics.mean(cell.value for cell in averaged)
    return Cell(
        value=value,
        spread=None,
        n=min(cell.n for cell in averaged),
        paper=paper,
        difference=_difference(value, paper, spec.decimals),
        caveats=tuple(dict.fromkeys(c for cell in averaged for c in cell.caveats)),
    )


def _difference(value: float, paper: float | None, decimals: int) -> float | None:
    if paper is None:
        return None
    return round(round(value, decimals) - paper, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0


def median_params(runs: list) -> float | None:
    """The median ``trainable`` count of ``runs`` (None for none)."""
    counts = [run.trainable for run in runs]
    return statistics.median(counts) if counts else None


def _notes(
    spec: TableSpec, model: str | None, replacing: str | None, rows: list[TableRow], without_metric: dict[tuple, int],
    marks: dict[str, str],
) -> tuple[str, ...]:  # fmt: skip
    notes = [f"{mark} from {caveat}: not comparable with the paper's number." for caveat, mark in marks.items()]
    if model:
        others = [m for m in dict.fromkeys(row.model for row in spec.rows) if m != replacing]
        notes.append(
            f"Our runs use {model} in the {replacing} rows; the paper's numbers are for {replacing}, shown "
            "for reference."
            + (f" The {', '.join(others)} rows show the paper's numbers alone (--model MODEL={model} fills them instead)."
               if others else "")
        )  # fmt: skip
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
