"""Every method on MiniLM-L6 over the demo's SST-2 slice, same budget: one comparison table.

Runs ``peftbench run`` once per method (the real command line, records in --results), then prints
dev accuracy against the majority-class baseline, trainable parameters, wall time, throughput and
peak memory. Every method trains at its own rate (``method.lr`` in its YAML, else 1e-3); full
fine-tuning also takes ``trainer=full_ft``'s weight decay. Re-running skips finished runs (the run
id covers the config).

    python scripts/bench_methods.py [--epochs 1] [--results results/bench_methods] [--methods lora bitfit ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from peftbench.config import available
from peftbench.results.render import format_count, render_markdown

FULL_FT = {"full"}  # full fine-tuning's trainer preset (weight decay 0.1; its rate is full.yaml's)
# Paper defaults that do not fit MiniLM-L6 (hidden 384, 6 layers): the parallel adapter's r = 512 (He et
# al.) exceeds the width; prompt tuning's 100 tokens (Lester et al., for T5 up to XXL) make every sequence
# ~4x longer, and on this model 20 tokens train better (66.4% against 51.6% after one epoch).
FITS_MINILM = {"parallel": ["method.bottleneck=96"], "prompt": ["method.length=20"]}
# Not single-task methods of an encoder: ICL and Hyperformer run on decoders and encoder-decoders
# (Hyperformer multi-task), AdapterFusion fuses finished adapter runs, sparse_sum adds finished sparse
# runs, a combination names its parts.
NOT_HERE = {"icl", "hyperformer", "hyperformer_pp", "adapter_fusion", "sparse_sum", "composed"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--results", default="results/bench_methods")
    parser.add_argument("--methods", nargs="*", default=[m for m in available("method") if m not in NOT_HERE])
    args = parser.parse_args()
    for method in args.methods:
        trainer = ["trainer=full_ft"] if method in FULL_FT else []
        trainer += FITS_MINILM.get(method, [])
        command = [sys.executable, "-m", "peftbench", "run", "model=minilm-l6", "task=sst2", f"method={method}",
                   *trainer, f"trainer.epochs={args.epochs}", "trainer.progress=false", f"results_dir={args.results}"]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{method}: failed: {done.stderr.strip().splitlines()[-1]}", file=sys.stderr)
    print(render_markdown(*table(Path(args.results), args.methods)))


def table(results: Path, methods: list[str]) -> tuple[list[str], list[list[str]]]:
    records = [json.loads(p.read_text()) for p in sorted(results.glob("*/record.json"))]
    records = [r for r in records if r["status"] == "complete" and r["config"]["method"]["name"] in methods]
    majority = None
    rows = []
    for r in sorted(records, key=lambda r: -r["metrics"]["main"]["value"]):
        labels = r["data"]["rows"]
        majority = majority or _majority(r)
        rows.append([
            _variant(r["config"]), f"{100 * r['metrics']['main']['value']:.1f}",
            format_count(r["params"]["trainable_method"]), format_count(r["params"]["trainable"]),
            f"{r['cost']['wall_s']:.0f}", f"{r['cost']['samples_per_s']:.0f}", f"{r['cost']['peak_memory_mb']:.0f}",
            str(labels["train"]),
        ])  # fmt: skip
    headers = ["method", "dev acc", "method params", "trainable (+head)", "wall s", "samples/s", "peak MB", "train rows"]
    if majority is not None:
        rows.append(["majority class", f"{100 * majority:.1f}", "0", "0", "", "", "", ""])
    return headers, rows


def _variant(config: dict) -> str:
    method = config["method"]
    extras = ", ".join(f"{k}={v}" for k, v in method.items() if k != "name" and v is not None)
    return f"{method['name']}" + (f" ({extras})" if extras else "")


def _majority(record: dict) -> float:
    """Dev accuracy of always predicting the most frequent dev label (SST-2 dev: 444 of 872 positive)."""
    from peftbench.tasks import get_task

    task = get_task(record["task"])
    labels = [row["label"] for row in task.load("embedded", None).splits["validation"]]
    return max(labels.count(value) for value in set(labels)) / len(labels)


if __name__ == "__main__":
    main()
