"""Training speed and memory: peftbench against transformers' Trainer + peft, side by side.

Each configuration trains the same model on the same rows (exactly one epoch of steps × batch
size rows, so both pipelines see every row once), with the same batch size, number of optimiser steps, learning-rate schedule and precision, twice: through peftbench's trainer (its
format, method and loop) and through ``transformers.Trainer`` with the equivalent peft model at
its best settings (dynamic padding with the same collator, ``train_sampling_strategy=
group_by_length``, no checkpoints, no evaluation). Every measurement is a fresh subprocess, so
peak memory is that process's own (``ru_maxrss`` on CPU, ``max_memory_allocated``
on GPU); figures are medians over ``--repeats``, and the two pipelines alternate.

It also measures the machine's matmul peak (a large GEMM in this process) and prints each
training step's achieved FLOP/s as a fraction of it, counting the work the method needs: forward
2·P·T for the P weights of every matrix multiply and T real tokens, backward 2·P·T for input
gradients plus 2·P_trained·T for weight gradients (frozen weights need none), and attention's
4·n·d per token and layer, three times over. Padding counts as waste, not as work.

With ``--eval``, evaluation against training on the same rows (SST-2 dev), alternately in one
process. Then peftbench's fast-path switches, each on and off against the default: length grouping,
loss synchronisation every step, gradient checkpointing, torch.compile, bf16 autocast, frozen
weights in bf16; evaluation batch size; generation with and without the KV cache.

    python scripts/bench_train.py --data ../shared/data [--repeats 3] [--steps 40] [--cases lora-sst2 ...]
        [--eval] [--switches] [--profile] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field


@dataclass
class Case:
    model: str
    task: str
    method: str
    baseline: str  # "peft": Trainer + the same method in peft; "full": Trainer, full fine-tuning
    batch_size: int = 32
    overrides: list[str] = field(default_factory=list)


CASES = {
    "lora-sst2": Case("minilm-l6", "sst2", "lora", "peft"),
    "lora-rte": Case("minilm-l6", "rte", "lora", "peft", batch_size=16),
    "houlsby-sst2": Case("minilm-l6", "sst2", "houlsby", "full"),
    "houlsby-rte": Case("minilm-l6", "rte", "houlsby", "full", batch_size=16),
    "full-sst2": Case("minilm-l6", "sst2", "full", "full", overrides=["trainer=full_ft"]),
    "full-rte": Case("minilm-l6", "rte", "full", "full", batch_size=16, overrides=["trainer=full_ft"]),
    "lora-e2e-smollm2": Case("smollm2-135m", "e2e", "lora", "peft", batch_size=8),
}
# BERT-base's shape (110M) with random weights and MiniLM's tokenizer: big enough to load a GPU,
# and no weights to download or carry. Not in the default list (slow on CPU); name them in --cases.
BERT_BASE_SHAPE = [f"model.architecture.{key}={value}" for key, value in
                   {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}.items()]
SHAPED_CASES = {
    "lora-sst2-bert-base-shape": Case("tiny-bert", "sst2", "lora", "peft", overrides=BERT_BASE_SHAPE),
    "houlsby-sst2-bert-base-shape": Case("tiny-bert", "sst2", "houlsby", "full", overrides=BERT_BASE_SHAPE),
    "full-sst2-bert-base-shape": Case("tiny-bert", "sst2", "full", "full", overrides=["trainer=full_ft", *BERT_BASE_SHAPE]),
}
DEFAULT_CASES = list(CASES)
CASES.update(SHAPED_CASES)
SWITCHES = {  # peftbench on lora-sst2: each against the default
    "length grouping off": ["trainer.group_by_length=false"],
    "loss read every step": ["trainer.log_every=1"],
    "gradient checkpointing on": ["trainer.gradient_checkpointing=true"],
    "torch.compile on": ["trainer.compile=true"],
    "bf16 autocast": ["trainer.precision=bf16"],
    "bf16 autocast + frozen bf16": ["trainer.precision=bf16", "trainer.frozen_bf16=true"],
}


# --- workers: one measurement each, in a fresh process -------------------------------------------


def _plan(case: Case, data: str, steps: int, extra: list[str]):
    from peftbench.launch import compose
    from peftbench.plan import plan

    return plan(compose([
        f"model={case.model}", f"task={case.task}", f"method={case.method}", *case.overrides, f"data.dir={data}",
        f"data.max_train_samples={steps * case.batch_size}", f"trainer.batch_size={case.batch_size}", f"trainer.max_steps={steps}",
        "trainer.progress=false", "trainer.checkpoint_every_steps=null", *extra,
    ]))  # fmt: skip


def _prepared(p):
    """The run's model (before the method), tokenizer, format and encoded training rows."""
    from peftbench.pipeline import build_model

    part = p.parts[0]
    model, tokenizer, fmt = build_model(p.model_cfg, part.task, p.config["seed"], part.format, p.config["task"])
    return model, tokenizer, fmt, fmt.encode(part.data.splits[part.task.train_split])


def _matmul_weights(model) -> int:
    """Weights that take part in a matrix multiply per token (Linear and Conv1D), embeddings out."""
    import torch

    total, seen = 0, set()
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.ndim == 2 and not isinstance(module, torch.nn.Embedding):
            if id(weight) not in seen:  # a method's wrapper exposes the weight of the Linear it wraps
                seen.add(id(weight))
                total += weight.numel()
    if getattr(model.config, "tie_word_embeddings", False) and hasattr(model, "lm_head"):
        total += model.lm_head.weight.numel()  # the tied LM head multiplies too
    return total


def worker_peftbench(case: Case, data: str, steps: int, extra: list[str], profile: bool) -> dict:
    import torch

    from peftbench.methods.base import attach
    from peftbench.pipeline import trainer_settings
    from peftbench.train.batching import train_loader
    from peftbench.train.loop import fit

    p = _plan(case, data, steps, extra)
    model, tokenizer, fmt, features = _prepared(p)
    cfg = trainer_settings(p.config)
    loader = train_loader(features, fmt, cfg.batch_size, p.config["seed"], cfg.group_by_length)
    attach(p.method, model, p.anatomy, tokenizer, train_head=fmt.trains_head)
    select = (p.parts[0].task.main_split, p.parts[0].task.main_metric)
    no_evaluation = lambda model: {select[0]: {select[1]: 0.0}}  # noqa: E731 (training alone is timed)
    if profile:
        from torch.profiler import ProfilerActivity, profile as profiler

        with profiler(activities=[ProfilerActivity.CPU]) as prof:
            fit(model, loader, no_evaluation, select, cfg, loss=fmt.loss)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18), file=sys.stderr)
        return {}
    result = fit(model, loader, no_evaluation, select, cfg, loss=fmt.loss)
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    trained_matmul = sum(p.numel() for p in model.parameters() if p.requires_grad and p.ndim == 2)
    cost = result.cost
    return {
        "samples_per_s": cost["samples_per_s"], "tokens_per_s": cost["tokens_per_s"], "train_s": cost["train_s"],
        "steps": cost["steps"], "device": cost["device"], "trained": trained, "trained_matmul": trained_matmul,
        "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        **_shape(model, features, fmt),
    }  # fmt: skip


def worker_trainer(case: Case, data: str, steps: int) -> dict:
    """transformers.Trainer (+ peft): same model, rows, collator, batch, steps, schedule, precision."""
    import copy

    import torch
    from datasets import Dataset
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from peftbench.methods.base import attach

    p = _plan(case, data, steps, [])
    model, tokenizer, fmt, features = _prepared(p)
    cfg = p.config["trainer"]
    if case.baseline == "peft":
        from peft import get_peft_model

        twin = copy.deepcopy(model)
        head = attach(p.method, twin, p.anatomy, tokenizer, train_head=fmt.trains_head)
        config, _ = p.method.to_peft(twin)
        del twin
        config.modules_to_save = sorted({name.split(".")[0] for name in head}) or None
        model = get_peft_model(model, config)
    else:
        model.requires_grad_(True)
    tokens: list[int] = []

    def collate(batch):
        out = fmt.collate([{k: v for k, v in f.items() if k != "length"} for f in batch], training=True)
        tokens.append(int(out["attention_mask"].sum()))
        return out

    times = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            times["start"] = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            times["end"] = time.perf_counter()

    dataset = Dataset.from_list([{**f, "length": fmt.length(f)} for f in features])
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=cfg["batch_size"], max_steps=steps,
            learning_rate=cfg["lr"], weight_decay=cfg["weight_decay"], warmup_steps=round(cfg["warmup_ratio"] * steps),
            lr_scheduler_type="linear", max_grad_norm=cfg["max_grad_norm"], seed=p.config["seed"],
            train_sampling_strategy="group_by_length", length_column_name="length", remove_unused_columns=False,
            save_strategy="no", eval_strategy="no", logging_steps=cfg["log_every"], report_to=[],
            disable_tqdm=True, dataloader_num_workers=0, use_cpu=not torch.cuda.is_available(),
            bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        )  # fmt: skip
        Trainer(model=model, args=args, train_dataset=dataset, data_collator=collate, callbacks=[Clock()]).train()
    seconds = times["end"] - times["start"]
    samples = steps * cfg["batch_size"]
    return {
        "samples_per_s": round(samples / seconds, 2),
        "tokens_per_s": round(sum(tokens[:steps]) / seconds, 1), "train_s": round(seconds, 3), "steps": steps,
        "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
    }  # fmt: skip


def _shape(model, features, fmt) -> dict:
    """What the FLOP count needs: matmul weights, layers, width, mean real sequence length."""
    config = model.config
    lengths = [fmt.length(f) for f in features]
    return {
        "matmul_weights": _matmul_weights(model),
        "layers": getattr(config, "num_hidden_layers", None) or getattr(config, "num_layers", 0),
        "hidden": getattr(config, "hidden_size", None) or getattr(config, "d_model", 0),
        "mean_length": sum(lengths) / len(lengths),
    }


def worker_evaluation(data: str, batch_size: int) -> dict:
    """Prediction over SST-2 dev (872 rows) at one evaluation batch size, under inference_mode."""
    import torch

    from peftbench.methods.base import attach

    p = _plan(CASES["lora-sst2"], data, 1, [f"trainer.eval_batch_size={batch_size}"])
    model, tokenizer, fmt, _ = _prepared(p)
    attach(p.method, model, p.anatomy, tokenizer, train_head=fmt.trains_head)
    model.eval()
    features = fmt.encode(p.parts[0].data.splits["validation"])
    started = time.perf_counter()
    with torch.inference_mode():
        fmt.predict(model, features, batch_size)
    seconds = time.perf_counter() - started
    return {"samples_per_s": round(len(features) / seconds, 1), "seconds": round(seconds, 2)}


def worker_eval_vs_train(data: str, repeats: int, batch_size: int) -> dict:
    """SST-2 dev (872 rows) predicted as a run evaluates (sorted batches of ``batch_size`` rows under
    inference mode, ``Format.predict``) and trained on for one epoch (batch 32, length-grouped,
    the run's loop, no evaluation), alternately in this one process, ``repeats`` times each: the
    same rows, the same model, the same load on the machine."""
    from peftbench.methods.base import attach
    from peftbench.pipeline import trainer_settings
    from peftbench.train.batching import train_loader
    from peftbench.train.loop import fit

    p = _plan(CASES["lora-sst2"], data, 1, [f"trainer.eval_batch_size={batch_size}"])
    model, tokenizer, fmt, _ = _prepared(p)
    attach(p.method, model, p.anatomy, tokenizer, train_head=fmt.trains_head)
    features = fmt.encode(p.parts[0].data.splits["validation"])
    cfg = trainer_settings(p.config, max_steps=None, epochs=1)
    select = (p.parts[0].task.main_split, p.parts[0].task.main_metric)
    evaluation, training = [], []
    for _ in range(repeats):
        model.eval()
        started = time.perf_counter()
        fmt.predict(model, features, batch_size)
        evaluation.append(len(features) / (time.perf_counter() - started))
        loader = train_loader(features, fmt, cfg.batch_size, p.config["seed"], cfg.group_by_length)
        result = fit(model, loader, lambda model: {select[0]: {select[1]: 0.0}}, select, cfg, loss=fmt.loss)
        training.append(result.cost["samples_per_s"])
    return {"rows": len(features), "eval_samples_per_s": evaluation, "train_samples_per_s": training}


def worker_generation(data: str, use_cache: bool) -> dict:
    """E2E decoding of 4 MRs with the LoRA paper's beam search (10 beams), with or without the cache."""
    import torch

    from peftbench.methods.base import attach

    p = _plan(CASES["lora-e2e-smollm2"], data, 1, ["data.max_eval_samples=40", "task.num_beams=10"])
    model, tokenizer, fmt, _ = _prepared(p)
    attach(p.method, model, p.anatomy, tokenizer, train_head=fmt.trains_head)
    model.eval()
    model.generation_config.use_cache = use_cache
    rows = p.parts[0].data.splits["validation"]
    features = fmt.encode(rows)
    groups = list(dict.fromkeys(f["group"] for f in features))[:4]
    features = [next(f for f in features if f["group"] == g) for g in groups]
    started = time.perf_counter()
    with torch.inference_mode():
        fmt.predict(model, features, 4)
    return {"seconds": round(time.perf_counter() - started, 2), "inputs": len(features)}


# --- the parent: repeats, medians, ratios -------------------------------------------------------


def measure(args_list: list[str]) -> dict:
    """Run one worker in a fresh process: its JSON, with its own peak RSS (``ru_maxrss``)."""
    process = subprocess.Popen([sys.executable, __file__, "--worker", *args_list], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"worker {args_list} failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["rss_mb"] = result.pop("_rss_mb")
    return result


def median_of(runs: list[dict], key: str):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def matmul_peak(dtype_name: str, repeats: int = 10) -> float:
    """FLOP/s of a large square GEMM on this machine (2048² on CPU, 8192² on a GPU), best of ``repeats``."""
    import torch

    dtype = getattr(torch, dtype_name)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    n = 8192 if device == "cuda" else 2048
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best


def achieved_flops(result: dict, full: bool) -> float:
    """FLOP/s the step needs (module docstring), from tokens/s and the model's shape."""
    P, trained = result["matmul_weights"], result["matmul_weights"] if full else result["trained_matmul"]
    attention = 4 * result["mean_length"] * result["hidden"] * result["layers"]
    per_token = 2 * P + 2 * P + 2 * trained + 3 * attention
    return per_token * result["tokens_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("PEFTBENCH_DATA", "../shared/data"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--cases", nargs="*", default=DEFAULT_CASES, choices=list(CASES))
    parser.add_argument("--switches", action="store_true", help="also measure the fast-path switches")
    parser.add_argument("--switch-case", default="lora-sst2", choices=list(CASES),
                        help="the case the switches change (evaluation and generation run with lora-sst2 only)")
    parser.add_argument("--profile", action="store_true", help="print a profile of peftbench on lora-sst2")
    parser.add_argument("--eval", action="store_true", help="also evaluation against training samples/s on SST-2 dev")
    parser.add_argument("--json", help="write every measurement here")
    parser.add_argument("--worker", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        return _worker(args.worker)
    if args.profile:
        subprocess.run([sys.executable, __file__, "--worker", "profile", "lora-sst2", args.data, str(args.steps)])
        return
    import torch

    # A GPU trains in bf16, a CPU in fp32 (a bf16 GEMM on a CPU without bf16 units takes minutes)
    peak = {"bf16" if torch.cuda.is_available() else "fp32": matmul_peak("bfloat16" if torch.cuda.is_available() else "float32")}
    print("matmul peak: " + ", ".join(f"{name} {value / 1e9:.1f} GFLOP/s" for name, value in peak.items()) + " (square GEMM)")
    everything = {"peak": peak, "cases": {}, "switches": {}}
    print("\n| case | pipeline | samples/s | tokens/s | peak MB | × samples/s | × memory | FLOP/s of peak |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.cases:
        case = CASES[name]
        runs = {"peftbench": [], "trainer": []}
        for _ in range(args.repeats):
            runs["peftbench"].append(measure(["peftbench", name, args.data, str(args.steps)]))
            runs["trainer"].append(measure(["trainer", name, args.data, str(args.steps)]))
        everything["cases"][name] = runs
        ours, theirs = runs["peftbench"], runs["trainer"]
        memory = "gpu_peak_mb" if ours[0]["gpu_peak_mb"] is not None else "rss_mb"
        baseline = "Trainer + peft" if case.baseline == "peft" else "Trainer, full FT"
        fraction = achieved_flops({**ours[0], "tokens_per_s": median_of(ours, "tokens_per_s")}, case.method == "full")
        fraction /= peak["bf16" if str(ours[0]["device"]).startswith("cuda") else "fp32"]  # GPUs train in bf16
        speed = median_of(ours, "samples_per_s") / median_of(theirs, "samples_per_s")
        mem = median_of(ours, memory) / median_of(theirs, memory)
        for label, group, extra in (("peftbench", ours, f"{speed:.2f} | {mem:.2f} | {fraction:.1%}"), (baseline, theirs, "1 | 1 | ")):
            print(f"| {name} | {label} | {median_of(group, 'samples_per_s'):.1f} | {median_of(group, 'tokens_per_s'):.0f} "
                  f"| {median_of(group, memory):.0f} | {extra} |")  # fmt: skip
    if args.eval:
        everything["evaluation"] = evaluation_against_training(args)
    if args.switches:
        everything["switches"] = switches(args, peak)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(everything, handle, indent=2)


def evaluation_against_training(args) -> dict:
    """Evaluation samples/s against training samples/s on SST-2 dev, interleaved in one process."""
    found = measure(["eval-vs-train", args.data, str(args.repeats), "128"])
    evaluation, training = statistics.median(found["eval_samples_per_s"]), statistics.median(found["train_samples_per_s"])
    print(f"\n| SST-2 dev ({found['rows']} rows), lora-sst2, one process, {args.repeats}× interleaved | samples/s | × training |")
    print("|---|---|---|")
    print(f"| training (batch 32, one epoch) | {training:.1f} | 1 |")
    print(f"| evaluation (sorted, batch 128, inference mode) | {evaluation:.1f} | {evaluation / training:.2f} |")
    return found


def switches(args, peak: dict) -> dict:
    print(f"\n| switch (peftbench, {args.switch_case}) | samples/s | × default | peak MB | × default |")
    print("|---|---|---|---|---|")
    found = {}
    for label, extra in {"default": [], **SWITCHES}.items():
        found[label] = [measure(["peftbench", args.switch_case, args.data, str(args.steps), *extra]) for _ in range(args.repeats)]
        memory_key = "gpu_peak_mb" if found["default"][0]["gpu_peak_mb"] is not None else "rss_mb"
        speed, memory = median_of(found[label], "samples_per_s"), median_of(found[label], memory_key)
        base_speed, base_memory = median_of(found["default"], "samples_per_s"), median_of(found["default"], memory_key)
        print(f"| {label} | {speed:.1f} | {speed / base_speed:.2f} | {memory:.0f} | {memory / base_memory:.2f} |")
    if args.switch_case != "lora-sst2":
        return found
    print("\n| evaluation / generation | seconds | samples/s |")
    print("|---|---|---|")
    for size in (8, 128):
        found[f"eval batch {size}"] = result = measure(["evaluation", args.data, str(size)])
        print(f"| SST-2 dev prediction, batch {size} | {result['seconds']} | {result['samples_per_s']} |")
    for cache in (True, False):
        found[f"generation cache {cache}"] = result = measure(["generation", args.data, str(cache)])
        print(f"| E2E beam 10, {result['inputs']} MRs, KV cache {'on' if cache else 'off'} | {result['seconds']} | |")
    return found


def _worker(argv: list[str]) -> None:
    import resource

    kind, *rest = argv
    if kind == "peftbench":
        name, data, steps, *extra = rest
        result = worker_peftbench(CASES[name], data, int(steps), extra, profile=False)
    elif kind == "profile":
        name, data, steps = rest
        worker_peftbench(CASES[name], data, int(steps), [], profile=True)
        return
    elif kind == "trainer":
        name, data, steps = rest
        result = worker_trainer(CASES[name], data, int(steps))
    elif kind == "eval-vs-train":
        result = worker_eval_vs_train(rest[0], int(rest[1]), int(rest[2]))
    elif kind == "evaluation":
        result = worker_evaluation(rest[0], int(rest[1]))
    else:
        result = worker_generation(rest[0], rest[1] == "True")
    result["_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
