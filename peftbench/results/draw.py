"""Drawing a ``Plot`` (``results/plot.py``) or a ``Comparison`` (``results/compare.py``) as a PNG
or SVG file: one panel per (model, task), or per task.

LoRA's rank sweep as lines with error bars on a log2 rank axis; score against sparsity as lines
with error bars, one per method, on a log axis of the backbone share kept or trained; the
efficiency frontier as
markers sized by peak memory with the Pareto frontier as a step line; a comparison of two figures
as labelled markers with its frontier as a step line, each axis saying which way is better.
matplotlib (and with it numpy) is imported inside the drawing functions only, so that ``results``
stays free of the numeric stack.
"""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path

from peftbench.atomic import write_bytes_atomic
from peftbench.errors import UserError
from peftbench.results.compare import Comparison
from peftbench.results.compare import Panel as ComparisonPanel
from peftbench.results.plot import Panel, Plot
from peftbench.results.render import format_count

FORMATS = ("png", "svg")


def output_format(out: Path) -> str:
    """``png`` or ``svg`` from ``out``'s extension; a ``UserError`` for anything else, or when
    the folder it goes in does not exist. Checked before any record is read."""
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise UserError(f"cannot write a plot to {out}; pass an --out ending in .png or .svg")
    if not out.parent.is_dir():
        raise UserError(f"folder {out.parent} does not exist; create it or pass another --out")
    return fmt


TITLES = {
    "rank_sweep": "LoRA: score against rank r per weight-type set (Hu et al. 2021, Table 6)",
    "frontier": "Efficiency frontier: score against trainable parameters, "
    "marker area ∝ peak memory (cf. Compacter, Figure 1)",
    "sparsity": "Score against sparsity: sparse subnetworks beside dense methods (cf. Chen et al. 2020, Figure 1)",
}
SHARE_LABEL = ("share of backbone weights kept (masks: 1 − measured sparsity) "
               "or trained (differences: trainable share)")  # fmt: skip
MAX_AREA = 300.0  # points², the largest memory's marker on a frontier panel
MIN_AREA = 12.0


def draw(plot: Plot, out: Path) -> None:
    """Write ``plot`` to ``out``, PNG or SVG by its extension, atomically; one panel per
    (model, task), at most three to a row. SVG keeps its text as text (searchable, editable)."""
    draw_panel = {"rank_sweep": _draw_rank_sweep, "sparsity": _draw_sparsity}.get(plot.kind, _draw_frontier)
    _save(len(plot.panels), [TITLES[plot.kind], *_footnotes(plot)],
          lambda ax, index: draw_panel(ax, plot.panels[index], plot, index), out)  # fmt: skip


def draw_comparison(comparison: Comparison, out: Path) -> None:
    """Write ``comparison`` to ``out`` as ``draw`` does: one panel per task."""
    x, y = comparison.x, comparison.y
    title = f"Pareto view: {y.name} ({y.direction}) against {x.name} ({x.direction}), median over seeds"
    notes = [f"{mark} from {caveat}, kept apart from full-data runs" for caveat, mark in comparison.marks.items()]
    _save(len(comparison.panels), [title, *notes],
          lambda ax, index: _draw_comparison(ax, comparison.panels[index], comparison, index), out)  # fmt: skip


def _save(count: int, title: list[str], draw_panel, out: Path) -> None:
    """A figure of ``count`` panels (at most three to a row), each drawn by ``draw_panel(ax,
    index)``, with ``title``'s lines above, written to ``out`` atomically."""
    fmt = output_format(out)
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = min(count, 3)
    rows = math.ceil(count / columns)
    style = {"svg.fonttype": "none", "svg.hashsalt": "peftbench", "font.size": 9}
    with matplotlib.rc_context(style):
        width = max(5.4 * columns, 7.0)
        figure = Figure(figsize=(width, 4.4 * rows + 0.6), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        for index, ax in enumerate(axes[:count]):
            draw_panel(ax, index)
        for ax in axes[count:]:
            ax.set_visible(False)
        figure.suptitle("\n".join(textwrap.fill(line, int(width * 12), break_on_hyphens=False) for line in title), fontsize=10)
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt, dpi=150, metadata={"Date": None} if fmt == "svg" else None)
    write_bytes_atomic(out, buffer.getvalue())


def _footnotes(plot: Plot) -> list[str]:
    notes = [f"{mark} from {caveat}, kept apart from full-data runs" for caveat, mark in plot.marks.items()]
    if plot.marks and plot.kind in ("rank_sweep", "sparsity"):
        notes[-1] += " (hollow markers)"
    return notes


def _y_label(panel: Panel, plot: Plot) -> str:
    return f"{panel.metric} ({panel.split}), {plot.statistic} over seeds ± std"


def _draw_lines(ax, panel: Panel, plot: Plot, index: int) -> None:
    """One line with error bars per series, hollow markers for points from runs with a caveat."""
    for number, series in enumerate(panel.series):
        xs = [point.x for point in series.points]
        caveats = dict.fromkeys(c for point in series.points for c in point.caveats)
        bars = ax.errorbar(
            xs,
            [point.value for point in series.points],
            yerr=[point.spread for point in series.points],
            marker="o",
            capsize=3,
            label=series.label + plot.marked(caveats),
        )
        line = bars.lines[0]
        line.set_gid(f"series-{index}-{number}")
        marked = [point for point in series.points if point.caveats]
        if marked:  # hollow markers for points from runs with a caveat
            ax.plot(
                [point.x for point in marked],
                [point.value for point in marked],
                linestyle="none",
                marker="o",
                color=line.get_color(),  # the line's colour: the next series keeps its own
                markerfacecolor="white",
                markeredgecolor=line.get_color(),
                zorder=3,
            )


def _draw_rank_sweep(ax, panel: Panel, plot: Plot, index: int) -> None:
    """One line with error bars per weight-type set; x on a log2 axis with a tick at each rank."""
    from matplotlib.ticker import NullLocator

    _draw_lines(ax, panel, plot, index)
    ranks = sorted({point.x for series in panel.series for point in series.points})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ranks, [f"{rank:g}" for rank in ranks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("LoRA rank r")
    ax.set_ylabel(_y_label(panel, plot))
    ax.set_title(f"{panel.model} · {panel.task}")
    ax.grid(alpha=0.3)
    ax.legend(title="weight types", fontsize=8)


def _draw_sparsity(ax, panel: Panel, plot: Plot, index: int) -> None:
    """One line with error bars per method; x the backbone share kept or trained on a log axis
    (symlog where a method trains nothing of the backbone), as percentages."""
    from matplotlib.ticker import FuncFormatter

    _draw_lines(ax, panel, plot, index)
    shares = [point.x for series in panel.series for point in series.points]
    if min(shares) <= 0:
        ax.set_xscale("symlog", linthresh=min((share for share in shares if share > 0), default=1e-4))
    else:
        ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{100 * value:g}%"))
    ax.set_xlabel(textwrap.fill(SHARE_LABEL + ", log scale", 70))
    ax.set_ylabel(_y_label(panel, plot))
    ax.set_title(f"{panel.model} · {panel.task}")
    ax.grid(alpha=0.3)
    ax.legend(title="method", fontsize=8)


def _draw_frontier(ax, panel: Panel, plot: Plot, index: int) -> None:
    """Each method's variants as sized, labelled markers with error bars; the Pareto frontier as
    a step line (the best score stays until a point with more parameters beats it)."""
    from matplotlib.ticker import FuncFormatter

    points = [point for series in panel.series for point in series.points]
    largest = max((point.memory for point in points if point.memory is not None), default=None)

    def area(memory: float | None) -> float:
        if memory is None or not largest:
            return 40.0
        return max(MIN_AREA, MAX_AREA * memory / largest)

    for number, series in enumerate(panel.series):
        xs = [point.x for point in series.points]
        ys = [point.value for point in series.points]
        dots = ax.scatter(xs, ys, s=[area(p.memory) for p in series.points], alpha=0.7)
        dots.set_gid(f"points-{index}-{number}")
        color = dots.get_facecolor()[0]
        ax.scatter([], [], s=40, color=color, alpha=0.7, label=series.label)  # a legend key of one size
        ax.errorbar(xs, ys, yerr=[p.spread for p in series.points], fmt="none", ecolor=color, capsize=2)
        for point in series.points:
            ax.annotate(
                point.label + plot.marked(point.caveats),
                (point.x, point.value),
                xytext=(5, 4),
                textcoords="offset points",
                fontsize=7,
            )
    steps = ax.step(
        [p.x for p in panel.frontier],
        [p.value for p in panel.frontier],
        where="post",
        color="black",
        linewidth=1,
        label="Pareto frontier",
    )
    steps[0].set_gid(f"pareto-{index}")
    if largest:  # a key for the marker areas: the smallest and the largest memory
        smallest = min(point.memory for point in points if point.memory is not None)
        for memory in sorted({smallest, largest}):
            ax.scatter([], [], s=area(memory), color="grey", alpha=0.4, label=f"{memory:,.0f} MB peak")
    if any(point.x <= 0 for point in points):  # e.g. a head-only run: 0 parameters of its own
        ax.set_xscale("symlog", linthresh=1)
    else:
        ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: format_count(value)))
    ax.margins(x=0.15, y=0.08)  # room for the labels of the outermost points
    ax.set_xlabel("trainable method parameters")
    ax.set_ylabel(_y_label(panel, plot))
    ax.set_title(f"{panel.model} · {panel.task}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, markerscale=0.6)


def _draw_comparison(ax, panel: ComparisonPanel, comparison: Comparison, index: int) -> None:
    """Each method variant as a labelled marker, a colour per method; the frontier as a step line
    (a point's value holds until a point better on x is also better on y). An axis whose values
    span more than two orders of magnitude (parameters, bytes) is logarithmic."""
    x, y = comparison.x, comparison.y
    methods = list(dict.fromkeys(point.method for point in panel.points))
    for number, method in enumerate(methods):
        points = [point for point in panel.points if point.method == method]
        dots = ax.scatter([p.x for p in points], [p.y for p in points], s=40, alpha=0.7, label=method)
        dots.set_gid(f"points-{index}-{number}")
        for point in points:
            ax.annotate(point.label + comparison.marked(point.caveats), (point.x, point.y), xytext=(5, 4),
                        textcoords="offset points", fontsize=7)  # fmt: skip
    # Sorted by x: where lower x is better, the best y so far holds until the next point (post);
    # where higher x is better, each point's y holds back to the previous one (pre).
    front = sorted(panel.frontier, key=lambda point: point.x)
    steps = ax.step([p.x for p in front], [p.y for p in front], where="post" if x.lower_is_better else "pre",
                    color="black", linewidth=1, marker="o", markersize=9, markerfacecolor="none",
                    label="Pareto frontier")  # fmt: skip
    steps[0].set_gid(f"pareto-{index}")
    for set_scale, values in ((ax.set_xscale, [p.x for p in panel.points]), (ax.set_yscale, [p.y for p in panel.points])):
        if min(values) > 0 and max(values) / min(values) > 100:
            set_scale("log")
    ax.margins(x=0.15, y=0.08)  # room for the labels of the outermost points
    ax.set_xlabel(f"{x.label} ({x.direction})")
    ax.set_ylabel(f"{y.label} ({y.direction})")
    ax.set_title(panel.task)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
