"""Drawing a ``Plot`` (``results/plot.py``) as a PNG or SVG file: one panel per (model, task).

LoRA's rank sweep as lines with error bars on a log2 rank axis; the efficiency frontier as
markers sized by peak memory with the Pareto frontier as a step line. matplotlib (and with it
numpy) is imported inside ``draw`` only, so that ``results`` stays free of the numeric stack.
"""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path

from peftbench.atomic import write_bytes_atomic
from peftbench.errors import UserError
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
}
MAX_AREA = 300.0  # points², the largest memory's marker on a frontier panel
MIN_AREA = 12.0


def draw(plot: Plot, out: Path) -> None:
    """Write ``plot`` to ``out``, PNG or SVG by its extension, atomically; one panel per
    (model, task), at most three to a row. SVG keeps its text as text (searchable, editable)."""
    fmt = output_format(out)
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    count = len(plot.panels)
    columns = min(count, 3)
    rows = math.ceil(count / columns)
    style = {"svg.fonttype": "none", "svg.hashsalt": "peftbench", "font.size": 9}
    with matplotlib.rc_context(style):
        width = max(5.4 * columns, 7.0)
        figure = Figure(figsize=(width, 4.4 * rows + 0.6), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        draw_panel = _draw_rank_sweep if plot.kind == "rank_sweep" else _draw_frontier
        for index, (ax, panel) in enumerate(zip(axes, plot.panels)):
            draw_panel(ax, panel, plot, index)
        for ax in axes[count:]:
            ax.set_visible(False)
        lines = [TITLES[plot.kind], *_footnotes(plot)]
        figure.suptitle("\n".join(textwrap.fill(line, int(width * 12), break_on_hyphens=False) for line in lines), fontsize=10)
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt, dpi=150, metadata={"Date": None} if fmt == "svg" else None)
    write_bytes_atomic(out, buffer.getvalue())


def _footnotes(plot: Plot) -> list[str]:
    notes = [f"{mark} from {caveat}, kept apart from full-data runs" for caveat, mark in plot.marks.items()]
    if plot.marks and plot.kind == "rank_sweep":
        notes[-1] += " (hollow markers)"
    return notes


def _y_label(panel: Panel, plot: Plot) -> str:
    return f"{panel.metric} ({panel.split}), {plot.statistic} over seeds ± std"


def _draw_rank_sweep(ax, panel: Panel, plot: Plot, index: int) -> None:
    """One line with error bars per weight-type set; x on a log2 axis with a tick at each rank."""
    from matplotlib.ticker import NullLocator

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
                markerfacecolor="white",
                markeredgecolor=line.get_color(),
                zorder=3,
            )
    ranks = sorted({point.x for series in panel.series for point in series.points})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ranks, [f"{rank:g}" for rank in ranks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("LoRA rank r")
    ax.set_ylabel(_y_label(panel, plot))
    ax.set_title(f"{panel.model} · {panel.task}")
    ax.grid(alpha=0.3)
    ax.legend(title="weight types", fontsize=8)


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
