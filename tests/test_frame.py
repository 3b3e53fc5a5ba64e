"""``peftbench.results.load_runs``: run records as a pandas DataFrame, one row per run.

The records are written by hand in the layout ``results/record.py`` gives them: a complete LoRA
run with the cost figures of today's records, a complete BitFit run from before records had an
average memory and an adapter file size, a failed and a running run, and a multi-task run.
"""

import json
import math
import subprocess
import sys

import pandas as pd
import pytest

from peftbench.errors import UserError
from peftbench.results import load_runs
from peftbench.results.frame import IDENTITY
from peftbench.results.table import SAMPLE_CAVEAT

LORA = {"name": "lora", "r": 8, "alpha": 16, "targets": ["attn.q", "attn.v"]}


def record(run_id, status="complete", *, task="rte", method="lora", config=LORA, seed=1, metrics=None, params=None,
           cost=None, data=None, **extra):  # fmt: skip
    return {
        "schema": 1, "run_id": run_id, "status": status, "error": None, "created": "2026-11-22T11:00:00+00:00",
        "finished": "2026-11-22T12:00:00+00:00" if status != "running" else None, "model": "roberta-base",
        "method": method, "task": task, "benchmark": "glue", "format": "classification", "seed": seed,
        "method_config": config, "config": {"seed": seed, "experiment": "lora_table2_roberta_base"},
        "metrics": metrics or {}, "params": params or {}, "cost": cost or {},
        "data": data or {"source": "dir", "sample": False, "subset": None, "rows": {"train": 2490, "validation": 277}},
        "init_from": None, **extra,
    }  # fmt: skip


def records():
    return [
        record(
            "a.rte.lora",
            metrics={"best": {"validation": {"accuracy": 0.80, "f1": 0.79}}, "last": {"validation": {"accuracy": 0.75}},
                     "best_epoch": 2, "main": {"split": "validation", "metric": "accuracy", "value": 0.80}},
            params={"trainable": 296_450, "trainable_method": 294_912, "head": 1_538, "total": 124_943_618},
            cost={"wall_s": 60.5, "train_s": 50.0, "samples_per_s": 99.5, "peak_memory_mb": 1200.0,
                  "avg_memory_mb": 1100.5, "adapter_file_bytes": 1_186_312, "device": "cpu"},
        ),  # fmt: skip
        record(  # an old record: no average memory, no adapter file size
            "b.rte.bitfit", method="bitfit", config={"name": "bitfit"}, seed=2,
            metrics={"best": {"validation": {"accuracy": 0.70}}, "last": {"validation": {"accuracy": 0.70}},
                     "best_epoch": 1, "main": {"split": "validation", "metric": "accuracy", "value": 0.70}},
            params={"trainable": 102_914, "trainable_method": 101_376, "head": 1_538, "total": 124_749_314},
            cost={"wall_s": 40.0, "peak_memory_mb": 900.0},
            data={"source": "embedded", "sample": True, "subset": None, "rows": {"train": 64, "validation": 64}},
        ),  # fmt: skip
        record("c.rte.lora.failed", "failed", error="NonFiniteLoss: training loss is not finite at step 3"),
        record("d.rte.lora.running", "running"),
        record(
            "e.mix.hyperformer", task="rte+mrpc", method="hyperformer", config={"name": "hyperformer", "reduction": 32},
            metrics={"best": {"rte/validation": {"accuracy": 0.7}, "mrpc/validation": {"accuracy": 0.8, "f1": 0.85},
                              "average": {"score": 0.75}},
                     "last": {"rte/validation": {"accuracy": 0.7}, "mrpc/validation": {"accuracy": 0.8, "f1": 0.85},
                              "average": {"score": 0.75}},
                     "best_epoch": 3, "main": {"split": "average", "metric": "score", "value": 0.75}},
            parts=[
                {"task": "rte", "benchmark": "glue", "format": "rank_classification",
                 "main": {"split": "validation", "metric": "accuracy"}, "data": {"source": "dir", "sample": False}},
                {"task": "mrpc", "benchmark": "glue", "format": "rank_classification",
                 "main": {"split": "validation", "metric": "f1"}, "data": {"source": "embedded", "sample": True}},
            ],
        ),  # fmt: skip
    ]


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    for rec in records():
        (root / rec["run_id"]).mkdir(parents=True)
        (root / rec["run_id"] / "record.json").write_text(json.dumps(rec))
    (root / "z.broken").mkdir()
    (root / "z.broken" / "record.json").write_text('{"schema": 1, "status": "comp')  # truncated
    return root


def test_one_row_per_run_in_run_id_order_with_every_status(results):
    warned = []
    runs = load_runs(results, warn=warned.append)
    assert list(runs["run_id"]) == ["a.rte.lora", "b.rte.bitfit", "c.rte.lora.failed", "d.rte.lora.running", "e.mix.hyperformer"]
    assert list(runs["status"]) == ["complete", "complete", "failed", "running", "complete"]
    assert [problem.reason for problem in warned] == ["truncated JSON"]  # the damaged record, once


def test_columns_come_in_sections_identity_first(results):
    columns = list(load_runs(results, warn=lambda problem: None).columns)
    assert columns[: len(IDENTITY)] == list(IDENTITY)
    # method config, main metric, best metrics, last metrics, params, cost, data, caveats; each
    # section's columns in the order the records first name them
    assert columns[len(IDENTITY):] == [
        "method.r", "method.alpha", "method.targets", "method.reduction",
        "main_split", "main_metric", "main_value", "best_epoch",
        "validation.accuracy", "validation.f1", "rte/validation.accuracy", "mrpc/validation.accuracy",
        "mrpc/validation.f1", "average.score",
        "last.validation.accuracy", "last.rte/validation.accuracy", "last.mrpc/validation.accuracy",
        "last.mrpc/validation.f1", "last.average.score",
        "params.trainable", "params.trainable_method", "params.head", "params.total",
        "cost.wall_s", "cost.train_s", "cost.samples_per_s", "cost.peak_memory_mb", "cost.avg_memory_mb",
        "cost.adapter_file_bytes", "cost.device",
        "data.source", "data.sample", "data.subset", "data.rows.train", "data.rows.validation",
        "caveats",
    ]  # fmt: skip


def test_a_complete_run_has_its_metrics_per_split_params_cost_and_config(results):
    lora = load_runs(results, warn=lambda problem: None).set_index("run_id").loc["a.rte.lora"]
    assert (lora["model"], lora["method"], lora["task"], lora["tasks"], lora["seed"]) == ("roberta-base", "lora", "rte", ("rte",), 1)
    assert lora["experiment"] == "lora_table2_roberta_base"
    assert (lora["method.r"], lora["method.alpha"], lora["method.targets"]) == (8, 16, ("attn.q", "attn.v"))
    assert (lora["main_split"], lora["main_metric"], lora["main_value"], lora["best_epoch"]) == ("validation", "accuracy", 0.80, 2)
    assert (lora["validation.accuracy"], lora["validation.f1"], lora["last.validation.accuracy"]) == (0.80, 0.79, 0.75)
    assert (lora["params.trainable"], lora["params.trainable_method"], lora["params.total"]) == (296_450, 294_912, 124_943_618)
    assert (lora["cost.peak_memory_mb"], lora["cost.avg_memory_mb"], lora["cost.adapter_file_bytes"]) == (1200.0, 1100.5, 1_186_312)
    assert (lora["data.source"], lora["data.rows.train"], lora["caveats"]) == ("dir", 2490, ())


def test_an_old_record_reads_missing_figures_as_nan_and_keeps_its_caveat(results):
    bitfit = load_runs(results, warn=lambda problem: None).set_index("run_id").loc["b.rte.bitfit"]
    assert math.isnan(bitfit["cost.avg_memory_mb"]) and math.isnan(bitfit["cost.adapter_file_bytes"])
    assert math.isnan(bitfit["method.r"])  # BitFit has no rank
    assert bitfit["cost.peak_memory_mb"] == 900.0
    assert bitfit["caveats"] == (SAMPLE_CAVEAT,)


def test_failed_and_running_runs_have_their_status_and_no_metrics(results):
    runs = load_runs(results, warn=lambda problem: None).set_index("run_id")
    failed, running = runs.loc["c.rte.lora.failed"], runs.loc["d.rte.lora.running"]
    assert failed["error"] == "NonFiniteLoss: training loss is not finite at step 3"
    assert math.isnan(failed["validation.accuracy"]) and math.isnan(failed["main_value"])
    assert pd.isna(running["finished"]) and math.isnan(running["params.trainable"])  # text columns: NaN for missing too


def test_a_multitask_run_is_one_row_with_each_task_split_and_the_caveats_of_its_parts(results):
    mix = load_runs(results, warn=lambda problem: None).set_index("run_id").loc["e.mix.hyperformer"]
    assert (mix["task"], mix["tasks"]) == ("rte+mrpc", ("rte", "mrpc"))
    assert (mix["rte/validation.accuracy"], mix["mrpc/validation.f1"], mix["average.score"]) == (0.7, 0.85, 0.75)
    assert (mix["main_split"], mix["main_metric"]) == ("average", "score")
    assert mix["caveats"] == (SAMPLE_CAVEAT,)  # MRPC's part ran on the shipped slice


def test_tuple_columns_group(results):
    """Lists are tuples in the frame, so a method field such as ``targets`` can be grouped by."""
    runs = load_runs(results, warn=lambda problem: None)
    complete = runs[runs["status"] == "complete"]
    by_targets = complete.dropna(subset=["method.targets"]).groupby("method.targets")["validation.accuracy"].median()
    assert by_targets.to_dict() == {("attn.q", "attn.v"): 0.80}


def test_an_empty_folder_is_an_empty_frame_and_a_missing_one_a_user_error(tmp_path):
    empty = load_runs(tmp_path)
    assert len(empty) == 0 and list(empty.columns) == list(IDENTITY)
    with pytest.raises(UserError, match="does not exist; pass --results DIR"):
        load_runs(tmp_path / "nowhere")


def test_importing_the_results_package_leaves_pandas_and_numpy_out():
    code = "import sys, peftbench.results; assert not {'pandas', 'numpy'} & set(sys.modules), 'loaded'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
