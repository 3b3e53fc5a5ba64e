"""Heat maps of shares (rows × columns, each value in [0, 1]) as a PNG or SVG figure.

AdapterFusion's attention over its adapters (``results/fusion_plot.py``, Pfeiffer et al. 2021,
Figure 4) and a routing method's module usage per site (``results/routing_plot.py``) are both
drawn this way: one panel per map, two to a row, the value printed in each cell, the first row
at the bottom. matplotlib is imported inside ``draw_heat_maps`` only.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

from peftbench.atomic import write_bytes_atomic
from peftbench.results.draw import output_format


@dataclass(frozen=True)
class HeatMap:
    title: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]  # rows × columns, each in [0, 1]


def draw_heat_maps(maps: list[HeatMap], out: Path, title: str, colorbar: str) -> None:
    """Write the heat maps to ``out`` (PNG or SVG by its extension), atomically, two to a row,
    under ``title``, each with a colour bar labelled ``colorbar``."""
    fmt = output_format(out)
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = min(len(maps), 2)
    rows = math.ceil(len(maps) / columns)
    tallest = max(len(m.rows) for m in maps)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "peftbench", "font.size": 8}):
        figure = Figure(figsize=(6.0 * columns, (1.2 + 0.35 * tallest) * rows + 0.6), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        for ax, heat in zip(axes, maps):
            image = ax.imshow(heat.values, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto", origin="lower")
            ax.set_xticks(range(len(heat.columns)), heat.columns)
            ax.set_yticks(range(len(heat.rows)), heat.rows)
            ax.set_title(heat.title, fontsize=8)
            for i, row in enumerate(heat.values):
                for j, value in enumerate(row):
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black")
            figure.colorbar(image, ax=ax, shrink=0.8, label=colorbar)
        for ax in axes[len(maps):]:
            ax.set_visible(False)
        figure.suptitle(title, fontsize=10)
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt, dpi=150, metadata={"Date": None} if fmt == "svg" else None)
    write_bytes_atomic(out, buffer.getvalue())
