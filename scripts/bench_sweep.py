"""A sweep's cost: peftbench's one multirun command against one Trainer + peft process per run.

The sweep: LoRA on RTE (MiniLM-L6, the GLUE files in ``--data``), r ∈ {1, 2, 4, 8} × seeds {1, 2},
a short budget (``--steps`` optimiser steps of ``--batch`` rows, every run evaluated once on the
whole dev set at the end). Three ways, each timed from launch to exit, with the peak memory of its
largest process (``ru_maxrss``):

- ``peftbench run -m …``: the eight jobs in one process (Hydra's basic launcher), the way a user
  sweeps;
- eight ``transformers.Trainer`` + peft processes, one per run, the way a script per run does it
  (same model, rows, collator, batch, steps, schedule; accuracy from ``Trainer.predict``);
- eight solo ``peftbench run`` processes, one per run: each sweep job's final metric must equal
  its solo run's (the sweep shares a process, not a result).

The machine's other work shares its cores: the three ways alternate run by run (sweep first, then
for each run its Trainer process and its solo process), so a burst of other work hits all alike.

    python scripts/bench_sweep.py --data ../shared/data [--steps 20] [--batch 16] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RANKS, SEEDS = (1, 2, 4, 8), (1, 2)
PEFTBENCH = [sys.executable, "-m", "peftbench"]


def common(data: str, steps: int, batch: int) -> list[str]:
    return ["model=minilm-l6", "method=lora", "task=rte", f"data.dir={data}", f"data.max_train_samples={steps * batch}",
            f"trainer.batch_size={batch}", f"trainer.max_steps={steps}", "trainer.progress=false",
            "trainer.checkpoint_every_steps=null",  # the Trainer scripts save nothing either,
            "trainer.submission=false"]  # nor predict RTE's 3,000 unlabelled test rows  # fmt: skip


def timed(command: list[str]) -> dict:
    """Run ``command`` through this script's ``--child`` (its own peak RSS); wall seconds and peak MB."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", *command], capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})  # fmt: skip
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{out.stderr[-3000:]}")
    child = json.loads(out.stdout.strip().splitlines()[-1])
    return {"wall_s": round(seconds, 2), "peak_mb": child["peak_mb"], "stdout": child["stdout"]}


def accuracies(results: Path) -> dict[tuple[int, int], float]:
    """(r, seed) -> the final dev accuracy of every complete run under ``results``."""
    found = {}
    for record in results.glob("*/record.json"):
        data = json.loads(record.read_text())
        if data.get("status") == "complete":
            config = data["config"]
            found[(config["method"]["r"], config["seed"])] = data["metrics"]["last"]["validation"]["accuracy"]
    return found


def trainer_run(data: str, steps: int, batch: int, r: int, seed: int) -> None:
    """One run as a script would write it: Trainer + peft's LoRA, then the dev accuracy (stdout, JSON)."""
    import numpy as np
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments

    from peftbench.launch import compose
    from peftbench.pipeline import build_model
    from peftbench.plan import plan

    p = plan(compose([*common(data, steps, batch), f"method.r={r}", f"seed={seed}"]))
    part, cfg, method = p.parts[0], p.config["trainer"], p.config["method"]
    model, _, fmt = build_model(p.model_cfg, part.task, seed, part.format, p.config["task"])
    config = LoraConfig(r=r, lora_alpha=method["alpha"], lora_dropout=method["dropout"], target_modules=["query", "value"],
                        modules_to_save=["classifier"], task_type="SEQ_CLS")  # fmt: skip
    model = get_peft_model(model, config)
    train = [{**f, "length": fmt.length(f)} for f in fmt.encode(part.data.splits["train"])]
    dev = fmt.encode(part.data.splits["validation"])

    def collate(rows):
        return fmt.collate([{k: v for k, v in f.items() if k != "length"} for f in rows], training=True)

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=batch, per_device_eval_batch_size=cfg["eval_batch_size"],
            max_steps=steps, learning_rate=cfg["lr"], weight_decay=cfg["weight_decay"],
            warmup_steps=round(cfg["warmup_ratio"] * steps), lr_scheduler_type="linear", max_grad_norm=cfg["max_grad_norm"],
            seed=seed, train_sampling_strategy="group_by_length", length_column_name="length", remove_unused_columns=False,
            save_strategy="no", eval_strategy="no", report_to=[], disable_tqdm=True, use_cpu=not torch.cuda.is_available(),
        )  # fmt: skip
        trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(train), data_collator=collate)
        trainer.train()
        predicted = trainer.predict(Dataset.from_list(dev))
    accuracy = float(np.mean(predicted.predictions.argmax(-1) == predicted.label_ids))
    print(json.dumps({"accuracy": accuracy}))


def child(command: list[str]) -> None:
    """Run ``command`` (a peftbench or trainer run) and print its stdout's last line and peak RSS."""
    if command[0] == "trainer":
        process = subprocess.run([sys.executable, __file__, "--trainer", *command[1:]], capture_output=True, text=True)
    else:
        process = subprocess.run(command, capture_output=True, text=True)
    if process.returncode != 0:
        sys.stderr.write(process.stderr[-3000:])
        sys.exit(process.returncode)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    last = process.stdout.strip().splitlines()[-1] if process.stdout.strip() else ""
    print(json.dumps({"peak_mb": round(peak, 1), "stdout": last}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("PEFTBENCH_DATA", "../shared/data"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--json", help="write every measurement here")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.add_argument("--trainer", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child)
    if args.trainer is not None:
        data, steps, batch, r, seed = args.trainer[0], *map(int, args.trainer[1:3]), *map(int, args.trainer[3].split(":"))
        return trainer_run(data, steps, batch, r, seed)
    base = common(args.data, args.steps, args.batch)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        ranks, seeds = ",".join(map(str, RANKS)), ",".join(map(str, SEEDS))
        sweep = timed([*PEFTBENCH, "run", "-m", *base, f"method.r={ranks}", f"seed={seeds}", f"results_dir={folder / 'sweep'}"])
        trainers, solos = {}, {}
        for r in RANKS:
            for seed in SEEDS:
                trainers[(r, seed)] = timed(["trainer", args.data, str(args.steps), str(args.batch), f"{r}:{seed}"])
                solos[(r, seed)] = timed([*PEFTBENCH, "run", *base, f"method.r={r}", f"seed={seed}",
                                          f"results_dir={folder / 'solo'}"])  # fmt: skip
        swept, alone = accuracies(folder / "sweep"), accuracies(folder / "solo")
    trainer_wall = sum(t["wall_s"] for t in trainers.values())
    solo_wall = sum(s["wall_s"] for s in solos.values())
    print(f"\n| {len(swept)} runs (LoRA, RTE, MiniLM-L6, {args.steps} steps × {args.batch}) | wall s | × Trainer + peft | peak MB |")
    print("|---|---|---|---|")
    print(f"| peftbench run -m (one process) | {sweep['wall_s']:.1f} | {trainer_wall / sweep['wall_s']:.2f} | {sweep['peak_mb']:.0f} |")
    print(f"| peftbench run, one process per run | {solo_wall:.1f} | {trainer_wall / solo_wall:.2f} | "
          f"{max(s['peak_mb'] for s in solos.values()):.0f} |")  # fmt: skip
    print(f"| Trainer + peft, one process per run | {trainer_wall:.1f} | 1 | {max(t['peak_mb'] for t in trainers.values()):.0f} |")
    print("\n| r | seed | sweep accuracy | solo accuracy | equal | Trainer + peft accuracy |")
    print("|---|---|---|---|---|---|")
    for key in sorted(trainers):
        theirs = json.loads(trainers[key]["stdout"])["accuracy"]
        ours, solo = swept.get(key), alone.get(key)
        print(f"| {key[0]} | {key[1]} | {ours} | {solo} | {ours == solo} | {theirs:.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "sweep": sweep, "solo": {f"{r}:{s}": v for (r, s), v in solos.items()},
            "trainer": {f"{r}:{s}": v for (r, s), v in trainers.items()},
            "accuracy": {"sweep": {f"{r}:{s}": v for (r, s), v in swept.items()},
                         "solo": {f"{r}:{s}": v for (r, s), v in alone.items()}},
        }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
