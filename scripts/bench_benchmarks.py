"""Real weights on the new benchmarks, on CPU: MiniLM-L6 on SuperGLUE CB, COPA, WiC and RTE,
SmolLM2-135M with LoRA on E2E (generation, the official five metrics) and on two RAFT tasks (rank
classification, fold 0 of 5). Needs the benchmark files of ``../shared/data`` (``--data``).

Runs ``peftbench run`` per job (records in --results; finished runs are skipped) and prints one
table: task, model, format, metrics, train rows, wall time.

    python scripts/bench_benchmarks.py [--data ../shared/data] [--results results/bench_benchmarks]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from peftbench.results.render import render_markdown

QUIET = ["trainer.progress=false", "seed=0"]
JOBS = [
    # the two small tasks (250 and 400 training rows) get as many steps as the larger ones roughly have
    *(["model=minilm-l6", "method=lora", f"task={task}", f"trainer.epochs={epochs}"]
      for task, epochs in (("cb", 20), ("copa", 20), ("wic", 3), ("rte", 3))),
    # E2E: 1,000 training pairs, the first 20 dev MRs (187 references), the LoRA paper's decoding
    ["model=smollm2-135m", "method=lora", "task=e2e", "trainer.epochs=1", "trainer.batch_size=8",
     "data.max_train_samples=1000", "data.max_eval_samples=187", "trainer.eval_batch_size=4"],
    *(["model=smollm2-135m", "method=lora", f"task={task}", "trainer.epochs=5", "trainer.batch_size=8",
       "trainer.eval_batch_size=4", "task.max_length=256"] for task in ("raft_twitter_complaints", "raft_ade_corpus_v2")),
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--results", default="results/bench_benchmarks")
    args = parser.parse_args()
    if not Path(args.data).is_dir():
        sys.exit(f"no benchmark files at {args.data}; pass --data DIR")
    for job in JOBS:
        command = [sys.executable, "-m", "peftbench", "run", *job, f"data.dir={args.data}", f"results_dir={args.results}", *QUIET]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{' '.join(job)}: failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}", file=sys.stderr)
    records = [json.loads(p.read_text()) for p in sorted(Path(args.results).glob("*/record.json"))]
    rows = [
        [r["task"], r["model"], r["format"],
         ", ".join(f"{k} {v:.4f}" for k, v in r["metrics"]["best"][r["metrics"]["main"]["split"]].items()),
         str(r["data"]["rows"]["train"]), f"{r['cost']['wall_s']:.0f}"]
        for r in records if r["status"] == "complete"
    ]  # fmt: skip
    print(render_markdown(["task", "model", "format", "dev metrics", "train rows", "wall s"], rows))


if __name__ == "__main__":
    main()
