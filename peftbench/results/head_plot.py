"""A head-pruning run's attention heads as heat maps (Michel, Levy & Neubig 2019).

A complete ``head_pruning`` run leaves ``head_importance.json`` (``methods/head_pruning.py``): the
importance I_h of every head of every attention sublayer, as first estimated on the fine-tuned
model, the heads removed at each pruning step with the evaluation after it, and which heads are
kept in the end. ``head_maps`` turns it into two maps, sublayer (rows, first at the bottom) × head:
the importance, and the heads kept (1) or pruned (0), the survey's picture of the heads left
after pruning (seed 004, "Structured Sparsity"); ``peftbench plot heads RUN`` draws them
(``results/heat_map.py``), each step's score in the title.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from peftbench.errors import UserError
from peftbench.results.heat_map import HeatMap
from peftbench.results.record import read_record, run_folder

REPORT_FILE = "head_importance.json"


def head_maps(run: str, results: Path) -> tuple[list[HeatMap], str, str]:
    """The maps of the complete head-pruning run ``run`` (its folder, or its run id in ``results``),
    the figure's title and what the colour measures."""
    folder = run_folder(run, results)
    record = read_record(folder)
    if record.get("status") != "complete" or record["method"] != "head_pruning" or not (folder / REPORT_FILE).is_file():
        raise UserError(f"run {record['run_id']} is not a complete head_pruning run with its {REPORT_FILE}; pass one")
    data = json.loads((folder / REPORT_FILE).read_text())
    columns = tuple(f"head {h}" for h in range(data["heads"]))
    importance = data["importance"]
    top = max(max(row) for row in importance) or 1.0
    scaled = importance if data["normalized"] and top <= 1 else [[value / top for value in row] for row in importance]
    how = "ℓ2-normalised per sublayer" if data["normalized"] else "over the largest"
    kept = [[1.0 if keep else 0.0 for keep in row] for row in data["kept"]]
    pruned = sum(row.count(0.0) for row in kept)
    maps = [
        HeatMap(f"importance I_h = E|∂L/∂ξ_h| ({how})", tuple(data["sites"]), columns, tuple(map(tuple, scaled))),
        HeatMap(f"kept (1) or pruned (0): {pruned} of {len(kept) * len(columns)} heads pruned", tuple(data["sites"]),
                columns, tuple(map(tuple, kept))),
    ]  # fmt: skip
    split, metric = (record["metrics"].get("main") or {}).get("split"), (record["metrics"].get("main") or {}).get("metric")
    scores = ", ".join(
        f"{step['pruned']}: {step['metrics'][split][metric]:.3f}" for step in data["steps"] if split in step["metrics"]
    )
    title = textwrap.fill(f"{record['run_id']}: attention heads (Michel et al. 2019); {split} {metric} after pruning "
                          f"n heads, before fine-tuning the rest (n: score): {scores}", 110)  # fmt: skip
    return maps, title, "importance / kept"
