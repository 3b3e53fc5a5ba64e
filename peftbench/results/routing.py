"""What a routing run saved, read back: module usage per site and task, and the tokens each module takes.

A complete run of a routing method (``task_routing``, ``gumbel_routing``, ``moe_adapters``:
``peftbench/methods/routing.py``) keeps in its record the share of each module at every site, per
task, measured with its best weights, and the entropy of those shares (``routing``). A token-level
``moe_adapters`` run also leaves ``routing_tokens.json``: per site and module, the tokens it was the
top choice for most often.

``routing_maps`` turns the record into heat maps, one per task (sites bottom to top × modules),
each row labelled with its entropy, which ``peftbench plot routing RUN`` draws
(``results/heat_map.py``): module collapse
(seed 004, "Learned Routing - Challenges") is a column that takes every row. ``token_table`` is
``peftbench routing-table RUN``: the deck's expert–token table (seed 004, "Token Level Routing",
after Lewis et al. 2021), one line per module with its most frequent tokens, each with the share
of that token's occurrences routed to it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from peftbench.errors import UserError
from peftbench.results.heat_map import HeatMap
from peftbench.results.record import read_record, run_folder

TOKENS_FILE = "routing_tokens.json"


def routing_run(run: str, results: Path) -> tuple[Path, dict]:
    """The folder and record of the complete routing run ``run``: a run folder, or a run id in ``results``."""
    folder = run_folder(run, results)
    record = read_record(folder)
    if record.get("status") != "complete" or "routing" not in record:
        raise UserError(f"run {record['run_id']} is not a complete run of a routing method (task_routing, "
                        "gumbel_routing, moe_adapters); pass one of those")  # fmt: skip
    return folder, record


SHARES = {  # what a module's share is, by method
    "moe_adapters": "share of the tokens it is the top choice for",
    "gumbel_routing": "weight in the task's combined module",
    "task_routing": "weight in the task's module",
}


def routing_maps(record: dict) -> tuple[list[HeatMap], str, str]:
    """One heat map per task: site (rows, first site at the bottom, each with the entropy H of its
    shares) × module, the module's share; with the figure's title and what the shares are."""
    routing = record["routing"]
    maps = []
    for task, rows in routing["usage"].items():
        labels = tuple(f"{site} (H={h:.2f})" for site, h in zip(routing["sites"], routing["entropy"][task]))
        maps.append(HeatMap(f"task {task}", labels, tuple(routing["modules"]), tuple(tuple(row) for row in rows)))
    bound = math.log(len(routing["modules"]))
    title = (f"{record['run_id']}: {record['method']} over {routing['module']} modules, usage per site and task "
             f"(H: entropy in nats, {bound:.2f} = even use, 0 = one module)")  # fmt: skip
    return maps, title, SHARES.get(record["method"], "share")


def token_table(folder: Path, record: dict, site: str | None = None, top: int = 5) -> str:
    """A markdown table: per site (or the one ``site`` names, by label or number) and module, its
    ``top`` most frequent tokens as ``token (count, share)``."""
    if top < 1:
        raise UserError(f"--top must be ≥ 1, got {top}")
    path = folder / TOKENS_FILE
    if not path.is_file():
        raise UserError(f"run {record['run_id']} has no {TOKENS_FILE}: only a token-level moe_adapters run routes "
                        "single tokens (method=moe_adapters method.level=token)")  # fmt: skip
    data = json.loads(path.read_text())
    sites = list(range(len(data["sites"])))
    if site is not None:
        chosen = [i for i in sites if site in (str(i), data["sites"][i])]
        if not chosen:
            raise UserError(f"no site '{site}' in run {record['run_id']}; its sites: {', '.join(data['sites'])} "
                            f"(or 0–{len(sites) - 1})")  # fmt: skip
        sites = chosen
    lines = [f"| Site | Module | Top {top} tokens (count, share of the token's occurrences) |", "|---|---|---|"]
    for i in sites:
        for module, tokens in zip(data["modules"], data["tokens"][i]):
            shown = ", ".join(f"{_cell(token)} ({count}, {share:.2f})" for token, count, share in tokens[:top])
            lines.append(f"| {data['sites'][i]} | {module} | {shown} |")
    return "\n".join(lines) + "\n"


def _cell(token: str) -> str:
    """A token as a markdown cell shows it: pipes escaped."""
    return token.replace("|", "\\|")
