"""AdapterFusion's attention over its adapters as heat maps (Pfeiffer et al. 2021, Figure 4).

Every complete ``adapter_fusion`` run leaves ``fusion_attention.json``: per adapter site, the
softmax weight of each fused adapter averaged over the development set's tokens. ``fusion_maps``
reads them into plain data (tests check it): first the paper's Figure 4 — target task (rows) ×
adapter (columns), averaged over the sites, one row per fusion run — then one map per run,
site (rows, bottom layer first) × adapter. ``draw_fusion`` writes them as PNG or SVG.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

from peftbench.errors import UserError
from peftbench.results.heat_map import HeatMap, draw_heat_maps

ATTENTION_FILE = "fusion_attention.json"


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
    draw_heat_maps(maps, out, "AdapterFusion: attention over the fused adapters (Pfeiffer et al. 2021, Fig. 4)",
                   "softmax weight")  # fmt: skip
