"""Start-up and aggregation: ``peftbench --help`` and ``peftbench list`` (target < 0.5 s), and
``peftbench table lora_table2`` over 10,000 records (target < 2 s), each the real command in a
fresh process, median of ``--repeats``, beside ``python -c pass`` measured in the same run.

The records are real: one tiny run is made through ``peftbench run``, and its record is copied
10,000 times with the model, method, task, seed, metric values and run id of the LoRA table's
cells (plus as many records the table does not show), each in its own run folder, with a
checkpoint folder too, as complete runs keep. ``peftbench table`` is timed twice: as a first
command on the folder (no checkpoint-state index yet: every state.json is read), and as every
later one.

    python scripts/bench_commands.py [--records 10000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peftbench.train.checkpoint import StateIndex

ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
TASKS = {"mnli": ("validation_matched", "accuracy"), "sst2": ("validation", "accuracy"), "mrpc": ("validation", "accuracy"),
         "cola": ("validation", "mcc"), "qnli": ("validation", "accuracy"), "qqp": ("validation", "accuracy"),
         "rte": ("validation", "accuracy"), "stsb": ("validation", "pearson")}  # fmt: skip
METHODS = ("lora", "bitfit", "full", "houlsby", "pfeiffer")


def timed(argv: list[str], repeats: int, before=lambda: None) -> float:
    """Median wall seconds of a fresh process running ``argv`` (``before`` runs before each)."""
    seconds = []
    for _ in range(repeats):
        before()
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=ENV)
        seconds.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(f"{argv} failed: {done.stderr[-2000:]}")
    return statistics.median(seconds)


def make_records(results: Path, count: int) -> None:
    """``count`` run folders cloned from one real run's record and best checkpoint."""
    work = results.parent / "template"
    done = subprocess.run(
        [sys.executable, "-m", "peftbench", "run", "model=tiny-bert", "task=rte", "data.source=embedded",
         "trainer.epochs=1", "trainer.progress=false", f"results_dir={work}"],
        capture_output=True, text=True, env=ENV,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    (template_dir,) = [p for p in work.iterdir() if not p.name.startswith(".")]
    template = json.loads((template_dir / "record.json").read_text())
    rng = random.Random(0)
    results.mkdir()
    for i in range(count):
        task = rng.choice(list(TASKS))
        split, metric = TASKS[task]
        record = copy.deepcopy(template)
        method = rng.choice(METHODS)
        model = rng.choice(("roberta-base", "roberta-large", "minilm-l6"))
        run_id = f"{task}.{model}.{method}.s{i}.{i:012x}"
        value = rng.uniform(0.5, 0.95)
        metrics = {split: {metric: value}}
        record.update(run_id=run_id, model=model, method=method, task=task, seed=i % 5)
        record["method_config"] = {"name": method, **({"r": 8, "alpha": 16, "targets": ["attn.q", "attn.v"]} if method == "lora" else {})}
        record["metrics"] = {"best": metrics, "last": metrics, "best_epoch": 1, "main": {"split": split, "metric": metric, "value": value}}
        folder = results / run_id
        shutil.copytree(template_dir, folder)
        (folder / "record.json").write_text(json.dumps(record, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    python = [sys.executable]
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        started = time.perf_counter()
        make_records(results, args.records)
        print(f"made {args.records:,} run folders in {time.perf_counter() - started:.0f} s")
        baseline = timed([*python, "-c", "pass"], args.repeats)
        table = [*python, "-m", "peftbench", "table", "lora_table2", "--results", str(results)]
        rows = [
            ("python -c pass", baseline, None),
            ("peftbench --help", timed([*python, "-m", "peftbench", "--help"], args.repeats), 0.5),
            ("peftbench list methods", timed([*python, "-m", "peftbench", "list", "methods"], args.repeats), 0.5),
            (f"peftbench table lora_table2 ({args.records:,} records, first: every state.json read)",
             timed(table, args.repeats, before=lambda: (results / StateIndex.FILE).unlink(missing_ok=True)), None),
            (f"peftbench table lora_table2 ({args.records:,} records)", timed(table, args.repeats), 2.0),
        ]  # fmt: skip
    print("\n| command | median s | × python start-up | target |")
    print("|---|---|---|---|")
    for name, seconds, target in rows:
        verdict = "" if target is None else (f"< {target} s: {'met' if seconds < target else 'MISSED'}")
        print(f"| {name} | {seconds:.3f} | {seconds / baseline:.1f} | {verdict} |")


if __name__ == "__main__":
    main()
