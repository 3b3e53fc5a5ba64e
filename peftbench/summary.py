"""The short table a run prints when it finishes: what ran, its main metric, what it cost."""

from __future__ import annotations


def print_summary(record: dict, run_dir) -> None:
    from peftbench.results.render import format_count, render_markdown

    main = record["metrics"]["main"]
    cost = record["cost"]
    params = record["params"]
    sample = " (sample data)" if record["data"].get("sample") else ""
    headers = ["task", "model", "method", f"{main['metric']} ({main['split']})", "trainable", "% of total", "time", "samples/s", "peak MB"]
    row = [
        record["task"] + sample,
        record["model"],
        record["method"],
        f"{100 * main['value']:.1f}",
        format_count(params["trainable"]),
        f"{100 * params['trainable'] / params['total']:.2f}",
        f"{cost['wall_s']:.0f} s",
        f"{cost['samples_per_s']:.0f}" if cost.get("samples_per_s") else "",
        f"{cost['peak_memory_mb']:.0f}",
    ]
    print(render_markdown(headers, [row]))
    print(f"record: {run_dir}")
