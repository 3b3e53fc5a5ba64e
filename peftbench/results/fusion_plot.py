"""AdapterFusion's attention over its adapters as heat maps (Pfeiffer et al. 2021, Figure 4).

Every complete ``adapter_fusion`` run leaves ``fusion_attention.json``: per adapter site, the
softmax weight of each fused adapter averaged over the development set's tokens. ``fusion_maps``
reads them into plain data (tests check it): first the paper's Figure 4 — target task (rows) ×
adapter (columns), averaged over the sites, one row per fusion run — then one map per run,
site (rows, bottom layer first) × adapter. ``draw_fusion`` writes them as PNG or SVG.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from peftbench.errors import UserError
from peftbench.results.draw import output_format
from peftbench.atomic import write_bytes_atomic

ATTENTION_FILE = "fusion_attention.json"


@dataclass(frozen=True)
class HeatMap:
    title: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]  # rows × columns, each row sums to 1


def fusion_maps(records: Iterable[dict], results: Path, model: str | None = None, task: str | None = None) -> list[HeatMap]:
    """The heat maps of the complete AdapterFusion runs under ``results`` (``model``/``task``: only those)."""
    runs = []
    for record in records:
        if record.get("status") != "complete" or record.get("method") != "adapter_fusion":
            continue
        if (model and record["model"] != model) or (task and record["task"] != task):
            continue
        path = results / record["run_id"] / ATTENTION_FILE
        try:
            runs.append((record, json.loads(path.read_text())))
        except (OSError, ValueError):
            raise UserError(f"{path} is missing or unreadable; re-run the AdapterFusion run (delete its folder first)") from None
    if not runs:
        wanted = " ".join(f"{k}={v}" for k, v in (("model", model), ("task", task)) if v)
        raise UserError(f"no complete adapter_fusion run {wanted + ' ' if wanted else ''}in {results}; "
                        "train one first (peftbench run method=adapter_fusion method.adapter_tasks=[…] task=…)")  # fmt: skip
    runs.sort(key=lambda run: (run[0]["model"], run[0]["task"], run[0]["seed"]))
    maps = []
    for group_model in dict.fromkeys(record["model"] for record, _ in runs):
        group = [(record, data) for record, data in runs if record["model"] == group_model]
        adapters = tuple(dict.fromkeys(a["task"] for _, data in group for a in data["adapters"]))
        rows, values = [], []
        for record, data in group:
            mean = [sum(column) / len(column) for column in zip(*data["attention"])]
            weight = dict(zip((a["task"] for a in data["adapters"]), mean))
            rows.append(f"{record['task']} (seed {record['seed']})")
            values.append(tuple(weight.get(adapter, math.nan) for adapter in adapters))
        maps.append(HeatMap(f"{group_model}: target task × adapter, mean over sites", tuple(rows), adapters, tuple(values)))
    for record, data in runs:
        maps.append(HeatMap(
            f"{record['model']}, target {record['task']} (seed {record['seed']}): site × adapter",
            tuple(data["sites"]), tuple(a["task"] for a in data["adapters"]), tuple(tuple(row) for row in data["attention"]),
        ))  # fmt: skip
    return maps


def draw_fusion(maps: list[HeatMap], out: Path) -> None:
    """Write the heat maps to ``out`` (PNG or SVG by its extension), atomically, two to a row."""
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
            figure.colorbar(image, ax=ax, shrink=0.8, label="softmax weight")
        for ax in axes[len(maps):]:
            ax.set_visible(False)
        figure.suptitle("AdapterFusion: attention over the fused adapters (Pfeiffer et al. 2021, Fig. 4)", fontsize=10)
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt, dpi=150, metadata={"Date": None} if fmt == "svg" else None)
    write_bytes_atomic(out, buffer.getvalue())
