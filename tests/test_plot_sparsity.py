"""``peftbench plot sparsity``: score against the backbone share kept (masks) or trained
(differences), from hand-made records.

Every expected number is worked out by hand in a comment next to it. The reduction (records ->
panels of series of points) is checked as data; the drawing through the real command line.
"""

import json
import statistics

import pytest

from peftbench.errors import UserError
from peftbench.results.plot import backbone_share, sparsity
from tests.cli import peftbench
from tests.test_plot import svg_groups, svg_texts

# A backbone of 100,000 parameters and a head of 1,000: params.total is 101,000 plus what a method adds.
BACKBONE, HEAD = 100_000, 1_000


def record(value, seed=1, *, method, config=None, measured=None, trainable=None, added=0, task="sst2",
           sample=False, status="complete"):  # fmt: skip
    """A hand-made record: a masking method has ``measured`` sparsity (``sparsity.measured``), any
    method ``params``; ``added`` floats the method adds beside the backbone (LoRA's A and B)."""
    rec = {
        "schema": 1,
        "run_id": f"{task}.minilm-l6.{method}.{json.dumps(config)}.s{seed}",
        "status": status,
        "finished": "2026-12-04T12:00:00+00:00",
        "model": "minilm-l6",
        "method": method,
        "task": task,
        "seed": seed,
        "method_config": {"name": method, **(config or {})},
        "metrics": {
            "best": {"validation": {"accuracy": value}},
            "main": {"split": "validation", "metric": "accuracy", "value": value},
        },
        "params": {"trainable_method": trainable, "head": HEAD, "total": BACKBONE + HEAD + added},
        "data": {"sample": sample},
    }
    if measured is not None:
        rec["sparsity"] = {"measured": measured, "zeros": int(measured * 80_000), "entries": 80_000}
    return rec


def records():
    return [
        # magnitude pruning at two levels, two seeds at 0.5 (given out of order)
        record(0.70, 1, method="magnitude_pruning", config={"sparsity": 0.75}, measured=0.75, trainable=20_000),
        record(0.80, 1, method="magnitude_pruning", config={"sparsity": 0.5}, measured=0.5, trainable=40_000),
        record(0.84, 2, method="magnitude_pruning", config={"sparsity": 0.5}, measured=0.5, trainable=40_000),
        # a supermask trains no weight (trainable 0): its x is still the share its mask keeps
        record(0.60, 1, method="supermask", config={"sparsity": 0.5}, measured=0.5, trainable=0),
        # head pruning removes 37.5% of the attention projections
        record(0.78, 1, method="head_pruning", config={"fraction": 0.4}, measured=0.375, trainable=90_000),
        # dense differences: LoRA adds 1,000 floats, BitFit trains 250 biases, LT-SFT keeps 500 entries
        record(0.81, 1, method="lora", config={"r": 8}, trainable=1_000, added=1_000),
        record(0.79, 1, method="bitfit", trainable=250),
        record(0.77, 1, method="sparse", config={"density": 0.005}, trainable=500, added=500),
        # a sample-data LoRA run beside the full-data one: not used
        record(0.99, 2, method="lora", config={"r": 8}, trainable=1_000, added=1_000, sample=True),
        # never plotted: another task, a failed run
        record(0.55, 1, method="lora", config={"r": 8}, trainable=1_000, added=1_000, task="rte"),
        record(0.99, 3, method="magnitude_pruning", config={"sparsity": 0.5}, measured=0.5, trainable=1,
               status="failed"),
    ]  # fmt: skip


def points(plot, label):
    (panel,) = plot.panels
    (found,) = [s for s in panel.series if s.label == label]
    return [(p.label, p.x, p.value, p.spread, p.n) for p in found.points]


def test_the_share_is_kept_for_masks_and_trained_for_differences():
    # masks: 1 − measured sparsity, whatever they train
    assert backbone_share(record(0.5, method="supermask", measured=0.75, trainable=0)) == 0.25
    # differences: trainable_method / (total − head): LoRA 1,000 / (102,000 − 1,000) = 1,000 / 101,000
    assert backbone_share(record(0.5, method="lora", trainable=1_000, added=1_000)) == 1_000 / 101_000
    assert backbone_share(record(0.5, method="bitfit", trainable=250)) == 250 / 100_000
    assert backbone_share({"params": {}}) is None


def test_one_series_per_method_one_point_per_level_ordered_by_share():
    plot = sparsity(records(), task="sst2")
    (panel,) = plot.panels
    assert (panel.model, panel.task, panel.split, panel.metric) == ("minilm-l6", "sst2", "validation", "accuracy")
    assert [s.label for s in panel.series] == ["bitfit", "head_pruning", "lora", "magnitude_pruning", "sparse", "supermask"]
    # 0.75 sparsity keeps 0.25; 0.5 keeps 0.5 with seeds 0.80 and 0.84: median 0.82, std |0.04|/√2
    assert points(plot, "magnitude_pruning") == [
        ("magnitude_pruning sparsity=0.75", 0.25, 0.70, 0.0, 1),
        ("magnitude_pruning sparsity=0.5", 0.5, statistics.median([0.80, 0.84]), statistics.stdev([0.80, 0.84]), 2),
    ]
    assert points(plot, "supermask") == [("supermask", 0.5, 0.60, 0.0, 1)]
    assert points(plot, "head_pruning") == [("head_pruning", 0.625, 0.78, 0.0, 1)]  # 1 − 0.375
    # LoRA's full-data run only (the sample run is kept apart): 1,000 / 101,000
    assert points(plot, "lora") == [("lora", 1_000 / 101_000, 0.81, 0.0, 1)]
    assert points(plot, "bitfit") == [("bitfit", 0.0025, 0.79, 0.0, 1)]  # 250 / 100,000
    assert points(plot, "sparse") == [("sparse", 500 / 100_500, 0.77, 0.0, 1)]
    assert plot.marks == {} and plot.unscored == 0


def test_without_a_task_filter_each_task_is_a_panel():
    plot = sparsity(records())
    assert [(p.model, p.task) for p in plot.panels] == [("minilm-l6", "rte"), ("minilm-l6", "sst2")]
    assert points(sparsity(records(), task="rte"), "lora") == [("lora", 1_000 / 101_000, 0.55, 0.0, 1)]


def test_without_runs_it_says_how_to_make_them():
    with pytest.raises(UserError, match=r"no complete runs on sst2 in r/; run `peftbench run -m experiment=sweep_sparsity_minilm task=sst2"):
        sparsity([], task="sst2", where="r/")


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    for i, rec in enumerate(records()):
        (root / f"run{i:03d}").mkdir(parents=True)
        (root / f"run{i:03d}" / "record.json").write_text(json.dumps(rec))
    return root


def test_the_command_draws_a_line_per_method_with_the_axis_saying_what_x_is(tmp_path, results):
    out = tmp_path / "sparsity.svg"
    done = peftbench("plot", "sparsity", "--results", str(results), "--task", "sst2", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    assert sorted(svg_groups(out, "series-")) == [f"series-0-{i}" for i in range(6)]
    texts = svg_texts(out)
    assert {"bitfit", "magnitude_pruning", "supermask", "minilm-l6 · sst2", "1%", "10%"} <= set(texts)
    assert any("share of backbone weights kept (masks: 1 − measured sparsity)" in text for text in texts)


def test_bad_options_exit_2_with_one_line_and_write_nothing(tmp_path, results):
    cases = [
        (["--task", "cola", "--out", "f.png"], "no complete runs on cola"),
        (["--out", "f.pdf"], "ending in .png or .svg"),
        (["--statistic", "max", "--out", "f.png"], "invalid choice: 'max'"),
    ]
    for args, mentions in cases:
        done = peftbench("plot", "sparsity", "--results", str(results), *args, cwd=tmp_path)
        (line,) = done.stderr.splitlines()
        assert done.returncode == 2 and line.startswith("error: ") and mentions in line, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]
