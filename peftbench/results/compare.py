"""``peftbench compare``: the Pareto view of any two recorded figures, as HF peft's
``method_comparison`` shows its methods (accuracy, memory, time, file size, parameters: any two).

A figure is a column of the runs' DataFrame (``results/frame.py``) with a direction:

- cost: lower is better for memory (``peak_memory``, ``avg_memory``), time (``train_time``,
  ``wall_time``) and the adapter's file size (``file_size``); higher for throughput
  (``samples_per_s``, ``tokens_per_s``);
- parameters (``trainable_params``, ``method_params``, ``total_params``, any ``params.*``): lower;
- a metric, as ``SPLIT.METRIC`` (``validation.accuracy``) or by its name alone (``accuracy``: read
  at each task's main split): higher is better, except for an error rate, where lower is:
  TER, the translation edit rate (Snover et al. 2006; WebNLG's and DART's third metric).

For each task (``--task`` picks one), each method variant (model, method and method config)
is one point: the median over seeds of each figure, one run per seed (the newest), full-data runs
where there are any, as ``peftbench table`` and ``peftbench plot`` reduce them. The frontier holds
the points no other point beats on both figures (``plot.pareto_front``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from peftbench.errors import UserError
from peftbench.results.frame import metric_columns
from peftbench.results.plot import differing, pareto_front, variant_key, variant_label
from peftbench.results.render import render_markdown
from peftbench.results.table import caveat_marks, reduce_over_seeds

LOWER_IS_BETTER_METRICS = {"ter"}
# cost.<figure>: (lower is better, what it is)
COST_FIGURES = {
    "peak_memory_mb": (True, "peak memory, MB"),
    "avg_memory_mb": (True, "average memory, MB"),
    "train_s": (True, "training time, s"),
    "wall_s": (True, "wall time, s"),
    "search_s": (True, "parameter search time, s"),
    "adapter_file_bytes": (True, "adapter file size, bytes"),
    "samples_per_s": (False, "training samples/s"),
    "tokens_per_s": (False, "training tokens/s"),
}
PARAM_LABELS = {"trainable": "trainable parameters", "trainable_method": "the method's parameters",
                "head": "head parameters", "total": "total parameters", "mask_bits": "binary mask bits"}  # fmt: skip
ALIASES = {
    "peak_memory": "cost.peak_memory_mb",
    "avg_memory": "cost.avg_memory_mb",
    "train_time": "cost.train_s",
    "wall_time": "cost.wall_s",
    "file_size": "cost.adapter_file_bytes",
    "samples_per_s": "cost.samples_per_s",
    "tokens_per_s": "cost.tokens_per_s",
    "trainable_params": "params.trainable",
    "method_params": "params.trainable_method",
    "total_params": "params.total",
}
STATISTIC = "median"


@dataclass(frozen=True)
class Figure:
    """A recorded figure to compare runs by: the frame ``column`` it reads, or a ``metric`` name
    read at each run's main split (``column`` None)."""

    name: str
    column: str | None
    metric: str | None
    lower_is_better: bool
    label: str

    @property
    def direction(self) -> str:
        return "lower is better" if self.lower_is_better else "higher is better"

    def value(self, run: dict) -> float | None:
        """The run's finite value, or None."""
        column = self.column or f"{run.get('main_split')}.{self.metric}"
        value = run.get(column)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        return float(value)

    def goodness(self, value: float) -> float:
        """``value`` turned so that lower is better."""
        return value if self.lower_is_better else -value


@dataclass(frozen=True)
class Point:
    """One method variant on one task: the statistic over seeds of each figure, the seed count,
    and how its runs differ from the paper's setting (``caveats``, marked)."""

    label: str
    model: str
    method: str
    x: float
    y: float
    n: int
    caveats: tuple[str, ...] = ()


@dataclass(frozen=True)
class Panel:
    task: str
    points: tuple[Point, ...]
    frontier: tuple[Point, ...]  # best x first


@dataclass(frozen=True)
class Comparison:
    x: Figure
    y: Figure
    panels: tuple[Panel, ...]
    marks: dict[str, str]  # caveat -> footnote mark
    unscored: int  # complete runs (of the task) without a value for one of the figures

    def marked(self, caveats) -> str:
        return "".join(self.marks[caveat] for caveat in caveats)


class _Run(NamedTuple):
    """What the seed and caveat rules read (``table.reduce_over_seeds``), and the two figures."""

    seed: object
    finished: str
    caveats: tuple[str, ...]
    x: float
    y: float


def figures(frame) -> dict[str, Figure]:
    """Every figure the runs of ``frame`` can be compared by, by the names ``--x``/``--y`` take."""
    columns = set(frame.columns)
    found: dict[str, Figure] = {}
    for name, column in ALIASES.items():
        if column in columns:
            found[name] = _column_figure(name, column)
    for column in frame.columns:
        if column.startswith("cost.") and column[5:] in COST_FIGURES or column.startswith("params."):
            found[column] = _column_figure(column, column)
    metrics = metric_columns(frame.columns)
    for name in dict.fromkeys(column.rpartition(".")[2] for column in metrics):
        found[name] = Figure(name, None, name, name in LOWER_IS_BETTER_METRICS, f"{name}, main split")
    for column in metrics:
        found[column] = _column_figure(column, column)
    return found


def _column_figure(name: str, column: str) -> Figure:
    if column.startswith("cost."):
        lower, label = COST_FIGURES[column[5:]]
        return Figure(name, column, None, lower, label)
    if column.startswith("params."):
        return Figure(name, column, None, True, PARAM_LABELS.get(column[7:], column[7:].replace("_", " ")))
    metric = column.rpartition(".")[2]
    return Figure(name, column, None, metric in LOWER_IS_BETTER_METRICS, column)


def resolve(frame, x: str, y: str) -> tuple[Figure, Figure]:
    """``--x`` and ``--y`` as figures; a ``UserError`` listing the valid names otherwise."""
    known = figures(frame)
    for option, name in (("--x", x), ("--y", y)):
        if name not in known:
            valid = ", ".join(known) or "none (no run has recorded figures yet)"
            raise UserError(f"{option} {name!r} is not a recorded figure; valid fields: {valid}")
    if x == y:
        raise UserError(f"--x and --y both name {x}; compare two different figures")
    return known[x], known[y]


def compare(frame, x: str, y: str, task: str | None = None, where: str = "the results") -> Comparison:
    """The Pareto view of figures ``x`` and ``y`` over the complete runs of ``frame`` (one panel
    per task, or only ``task``)."""
    fx, fy = resolve(frame, x, y)
    runs = frame[frame["status"] == "complete"].to_dict("records")
    tasks = sorted({run["task"] for run in runs})
    if task is not None and task not in tasks:
        raise UserError(f"no complete run of task {task} in {where}; it has: {', '.join(tasks) or 'none'}")
    by_variant: dict[str, dict[tuple, list[dict]]] = {}
    unscored = 0
    for run in runs:
        if task is not None and run["task"] != task:
            continue
        if fx.value(run) is None or fy.value(run) is None:
            unscored += 1
            continue
        key = (run["model"], run["method"], variant_key(_method_config(run), ()))
        by_variant.setdefault(run["task"], {}).setdefault(key, []).append(run)
    if not by_variant:
        raise UserError(f"no complete run in {where} has both {fx.name} and {fy.name}"
                        + (f" on {task}" if task else "") + "; run some, or pick other figures")  # fmt: skip
    panels = [_panel(name, by_variant[name], fx, fy) for name in sorted(by_variant)]
    marks = caveat_marks(c for panel in panels for point in panel.points for c in point.caveats)
    return Comparison(fx, fy, tuple(panels), marks, unscored)


def _panel(task: str, variants: dict[tuple, list[dict]], fx: Figure, fy: Figure) -> Panel:
    several_models = len({model for model, _, _ in variants}) > 1
    points = []
    for (model, method, _), runs in variants.items():
        configs = [_method_config(group[0]) for (m, me, _), group in variants.items() if (m, me) == (model, method)]
        fields = differing(configs, ())
        label = variant_label(method, _method_config(runs[0]), fields)
        scored = [_Run(run["seed"], run["finished"] if isinstance(run["finished"], str) else "", tuple(run["caveats"]),
                       fx.value(run), fy.value(run)) for run in runs]  # fmt: skip
        x_value, _, n, caveats = reduce_over_seeds([(run, run.x) for run in scored], STATISTIC)
        y_value = reduce_over_seeds([(run, run.y) for run in scored], STATISTIC)[0]
        points.append(Point(f"{model} {label}" if several_models else label, model, method, x_value, y_value, n, caveats))
    points.sort(key=lambda point: (point.label, point.x))
    front = pareto_front(points, x=lambda p: fx.goodness(p.x), y=lambda p: fy.goodness(p.y))
    return Panel(task, tuple(points), tuple(front))


def _method_config(run: dict) -> dict:
    """A frame row's method config (its ``method.*`` columns that hold a value), lists as lists."""
    return {
        column[7:]: list(value) if isinstance(value, tuple) else value
        for column, value in run.items()
        if column.startswith("method.") and not _missing(value)
    }


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def frontier_markdown(comparison: Comparison) -> str:
    """The frontier of every panel as one Markdown table, the figures and their directions above
    it, the caveats' footnotes below."""
    fx, fy = comparison.x, comparison.y
    lines = [
        f"x: {_describe(fx)}, {fx.direction}; y: {_describe(fy)}, {fy.direction}.",
        f"Pareto frontier: the method variants no other beats on both; {STATISTIC} over seeds (the newest run per seed).",
        "",
    ]
    rows = [
        [panel.task, point.label + comparison.marked(point.caveats), _number(point.x), _number(point.y), point.n]
        for panel in comparison.panels
        for point in panel.frontier
    ]
    lines.append(render_markdown(["task", "method variant", fx.name, fy.name, "seeds"], rows))
    notes = [f"{mark} from {caveat}: kept apart from full-data runs." for caveat, mark in comparison.marks.items()]
    if comparison.unscored:
        notes.append(f"{comparison.unscored} complete run(s) have no value for {fx.name} or {fy.name} and are left out.")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def _describe(figure: Figure) -> str:
    """``peak_memory = cost.peak_memory_mb (peak memory, MB)``; a metric as itself."""
    if figure.column is None:
        return f"{figure.name} at each task's main split"
    if figure.column == figure.name:
        return figure.name if figure.label == figure.name else f"{figure.name} ({figure.label})"
    return f"{figure.name} = {figure.column} ({figure.label})"


def _number(value: float) -> str:
    """Counts and bytes as integers with separators, large figures to one decimal, scores to four."""
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.4f}"
