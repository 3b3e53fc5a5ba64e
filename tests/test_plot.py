"""Plots: LoRA's rank sweep and the efficiency frontier, from hand-made records.

Every expected number is worked out by hand in a comment next to it. The reduction (records ->
panels of series of points) is checked as data; the drawing through the real command line.
"""

import json
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from peftbench.errors import UserError
from peftbench.results.plot import Point, frontier, pareto, rank_sweep, weight_types
from peftbench.results.table import SAMPLE_CAVEAT
from tests.cli import peftbench

QV, Q, QKVO = ["attn.q", "attn.v"], ["attn.q"], ["attn.v", "attn.q", "attn.k", "attn.o"]
SVG = "{http://www.w3.org/2000/svg}"


def record(value, seed=1, *, method="lora", r=8, targets=QV, alpha=16, model="roberta-base", task="rte",
           trainable=None, memory=1000.0, sample=False, finished="2026-11-22T12:00:00+00:00", status="complete"):  # fmt: skip
    """A hand-made record. LoRA on roberta-base trains r·(768 + 768) per target per layer, 12
    layers: r · 18,432 per target (r=8 on Wq, Wv: 294,912, the paper's 0.3M)."""
    if method == "lora":
        config = {"name": "lora", "r": r, "alpha": alpha, "dropout": 0.1, "targets": targets}
        trainable = r * 18_432 * len(targets) if trainable is None else trainable
    else:
        config = {"name": method}
    return {
        "schema": 1,
        "run_id": f"{task}.{model}.{method}.s{seed}",
        "status": status,
        "finished": finished,
        "model": model,
        "method": method,
        "task": task,
        "seed": seed,
        "method_config": config,
        "metrics": {
            "best": {"validation": {"accuracy": value, "f1": value - 0.1}},
            "last": {"validation": {"accuracy": value - 0.05, "f1": value - 0.15}},
            "main": {"split": "validation", "metric": "accuracy", "value": value},
        },
        "params": {"trainable_method": trainable},
        "cost": {"peak_memory_mb": memory},
        "data": {"sample": sample},
    }


def records():
    """roberta-base on RTE (three target sets, ranks out of order, a seed run twice, sample runs,
    BitFit and full fine-tuning), one minilm-l6 run, and runs no plot may use."""
    return [
        # Wq, Wv at r = 8, 1, 4 (given out of order)
        record(0.80, 1, r=8, memory=1000.0),
        record(0.84, 2, r=8, memory=1100.0),
        record(0.70, 1, r=1),
        record(0.72, 2, r=1),
        record(0.80, 3, r=1),
        record(0.50, 1, r=4, finished="2026-11-21T12:00:00+00:00"),  # seed 1 again, older: not used
        record(0.76, 1, r=4),
        record(0.78, 2, r=4),
        # Wq, Wk, Wv, Wo (in another order) at r = 2
        record(0.60, 1, r=2, targets=QKVO),
        record(0.90, 2, r=2, targets=QKVO),
        record(0.66, 3, r=2, targets=QKVO),
        # Wq: r = 4 has a full-data run beside sample runs; r = 8 has sample runs only
        record(0.70, 1, r=4, targets=Q),
        record(0.95, 1, r=4, targets=Q, sample=True),
        record(0.99, 2, r=4, targets=Q, sample=True),
        record(0.55, 1, r=8, targets=Q, sample=True),
        record(0.65, 2, r=8, targets=Q, sample=True),
        # other methods
        record(0.70, 1, method="bitfit", trainable=102_144, memory=900.0),
        record(0.75, 2, method="bitfit", trainable=102_144, memory=900.0),
        record(0.71, 3, method="bitfit", trainable=102_144, memory=900.0),
        record(0.86, 1, method="full", trainable=124_645_632, memory=4000.0),
        record(0.88, 2, method="full", trainable=124_645_632, memory=4200.0),
        # another model
        record(0.60, 1, r=8, model="minilm-l6", trainable=110_592),
        # never plotted: a failed run
        record(0.99, 4, r=8, status="failed"),
    ]


def panel(plot, model="roberta-base", task="rte"):
    (found,) = [p for p in plot.panels if (p.model, p.task) == (model, task)]
    return found


def series(panel_, label):
    (found,) = [s for s in panel_.series if s.label == label]
    return found


# --- rank sweep: the reduction ---------------------------------------------------------------


def test_rank_sweep_has_a_panel_per_model_and_task_and_a_series_per_target_set():
    plot = rank_sweep(records())
    assert [(p.model, p.task) for p in plot.panels] == [("minilm-l6", "rte"), ("roberta-base", "rte")]
    base = panel(plot)
    assert (base.split, base.metric) == ("validation", "accuracy")
    # fewer weight types first, then the paper's order
    assert [s.label for s in base.series] == ["Wq", "Wq, Wv", "Wq, Wk, Wv, Wo"]


def test_rank_sweep_medians_std_and_seed_counts_ordered_by_r():
    qv = series(panel(rank_sweep(records())), "Wq, Wv")
    assert [p.x for p in qv.points] == [1, 4, 8]
    r1, r4, r8 = qv.points
    # r=1: 70, 72, 80 -> median 0.72; deviations from the mean 0.74: -4, -2, 6 (in points)
    # -> std sqrt((16 + 4 + 36) / 2) / 100 = sqrt(28) / 100 = 0.052915
    assert (r1.value, r1.n) == (pytest.approx(0.72), 3)
    assert r1.spread == pytest.approx(0.052915, abs=1e-6)
    # r=4: seed 1 run twice, the newer (0.76) counts; seed 2 0.78 -> median 0.77, std sqrt(2)/100
    assert (r4.value, r4.n) == (pytest.approx(0.77), 2)
    assert r4.spread == pytest.approx(0.014142, abs=1e-6)
    # r=8: 0.80, 0.84 -> 0.82, std sqrt(0.02² · 2) = 0.028284
    assert (r8.value, r8.n, r8.caveats) == (pytest.approx(0.82), 2, ())
    assert r8.spread == pytest.approx(0.028284, abs=1e-6)


def test_rank_sweep_target_order_does_not_matter_and_mean_is_an_option():
    every = series(panel(rank_sweep(records(), statistic="mean")), "Wq, Wk, Wv, Wo")
    (r2,) = every.points
    # 0.60, 0.90, 0.66: mean 0.72 (the median would be 0.66); deviations -12, 18, -6 points
    # -> std sqrt((144 + 324 + 36) / 2) / 100 = sqrt(252) / 100 = 0.158745
    assert (r2.x, r2.value, r2.n) == (2, pytest.approx(0.72), 3)
    assert r2.spread == pytest.approx(0.158745, abs=1e-6)
    (median,) = series(panel(rank_sweep(records())), "Wq, Wk, Wv, Wo").points
    assert median.value == pytest.approx(0.66)


def test_rank_sweep_prefers_full_data_runs_and_marks_sample_points():
    plot = rank_sweep(records())
    r4, r8 = series(panel(plot), "Wq").points
    # r=4: the full-data run alone (0.70), not mixed with the sample runs (0.95, 0.99)
    assert (r4.x, r4.value, r4.n, r4.caveats) == (4, pytest.approx(0.70), 1, ())
    # r=8: sample runs only: 0.55, 0.65 -> 0.60, marked
    assert (r8.x, r8.value, r8.n, r8.caveats) == (8, pytest.approx(0.60), 2, (SAMPLE_CAVEAT,))
    assert plot.marks == {SAMPLE_CAVEAT: "†"}


def test_rank_sweep_filters_by_model_and_task_and_reads_another_metric():
    plot = rank_sweep(records(), model="roberta-base", task="rte", metric="f1")
    assert len(plot.panels) == 1 and plot.panels[0].metric == "f1"
    r1 = series(plot.panels[0], "Wq, Wv").points[0]
    assert r1.value == pytest.approx(0.62)  # f1 is accuracy - 0.1: 0.60, 0.62, 0.70 -> 0.62
    same = rank_sweep(records(), task="rte", metric="validation/f1")
    assert series(panel(same), "Wq, Wv").points[0].value == pytest.approx(0.62)


def test_rank_sweep_labels_other_fields_that_differ():
    runs = [record(0.7, r=8, alpha=16), record(0.8, r=8, alpha=32), record(0.75, r=4, alpha=32)]
    labels = {s.label: [p.x for p in s.points] for s in rank_sweep(runs).panels[0].series}
    # alpha 16 and 32 are different experiments: two series, never one point of "two seeds"
    assert labels == {"Wq, Wv · alpha=16": [8], "Wq, Wv · alpha=32": [4, 8]}


def test_weight_types_are_named_as_in_the_lora_paper():
    assert weight_types(["attn.v", "attn.q"]) == "Wq, Wv"
    assert weight_types(["ffn.in", "attn.o", "attn.k"]) == "Wk, Wo, ffn.in"


def test_rank_sweep_without_lora_runs_says_how_to_make_them():
    with pytest.raises(UserError) as caught:
        rank_sweep([record(0.7, method="bitfit", trainable=1)], where="results/")
    message = str(caught.value)
    assert message.startswith("no complete lora runs in results/;")
    assert "peftbench run -m method=lora method.r=1,2,4,8" in message and "\n" not in message


def test_a_filter_that_matches_nothing_names_what_there_is():
    with pytest.raises(UserError, match="it has lora runs of minilm-l6 on rte, roberta-base on rte"):
        rank_sweep(records(), task="cola")


def test_a_metric_no_run_has_names_the_ones_they_have():
    with pytest.raises(UserError, match="pass a --metric they have: validation/accuracy, validation/f1"):
        frontier(records(), metric="bleu")


# --- frontier: the reduction -----------------------------------------------------------------


def test_frontier_has_a_point_per_method_variant_labelled_by_what_differs():
    base = panel(frontier(records()))
    assert [s.label for s in base.series] == ["bitfit", "full", "lora"]
    lora = {p.label: (p.x, p.value, p.n) for p in series(base, "lora").points}
    # lora variants differ in r and targets (alpha, dropout are the same): both in the label;
    # x = r · 18,432 · targets
    assert lora == {
        "lora r=1 Wq, Wv": (36_864, pytest.approx(0.72), 3),
        "lora r=4 Wq": (73_728, pytest.approx(0.70), 1),
        "lora r=2 Wq, Wk, Wv, Wo": (147_456, pytest.approx(0.66), 3),  # 2 · 18,432 · 4
        "lora r=4 Wq, Wv": (147_456, pytest.approx(0.77), 2),
        "lora r=8 Wq": (147_456, pytest.approx(0.60), 2),
        "lora r=8 Wq, Wv": (294_912, pytest.approx(0.82), 2),
    }
    (bitfit,) = series(base, "bitfit").points
    # 0.70, 0.75, 0.71 -> median 0.71; a single variant needs no fields in its label
    assert (bitfit.label, bitfit.x, bitfit.value, bitfit.memory) == ("bitfit", 102_144, pytest.approx(0.71), 900.0)
    (full,) = series(base, "full").points
    # 0.86, 0.88 -> 0.87; peak memory 4000 and 4200 MB -> median 4100
    assert (full.x, full.value, full.memory) == (124_645_632, pytest.approx(0.87), 4100.0)


def test_frontier_memory_and_parameters_come_from_the_runs_used():
    base = panel(frontier(records()))
    r8 = next(p for p in series(base, "lora").points if p.label == "lora r=8 Wq, Wv")
    assert r8.memory == 1050.0  # 1000 and 1100 MB
    sample = next(p for p in series(base, "lora").points if p.label == "lora r=8 Wq")
    assert sample.caveats == (SAMPLE_CAVEAT,)


def test_pareto_frontier_is_the_best_score_for_at_most_that_many_parameters():
    base = panel(frontier(records()))
    # by parameters: 36,864 0.72 (yes) · 73,728 0.70 (no: 0.72 with fewer) · 102,144 0.71 (no) ·
    # 147,456 0.77 (yes; 0.66 there no; 0.60 is sample data, not compared) · 294,912 0.82 (yes) ·
    # 124.6M 0.87 (yes)
    assert [(p.label, p.x) for p in base.frontier] == [
        ("lora r=1 Wq, Wv", 36_864),
        ("lora r=4 Wq, Wv", 147_456),
        ("lora r=8 Wq, Wv", 294_912),
        ("full", 124_645_632),
    ]


def test_pareto_uses_sample_points_only_where_there_are_no_others():
    points = [Point(10, 0.5, 0, 1, (SAMPLE_CAVEAT,)), Point(100, 0.4, 0, 1, (SAMPLE_CAVEAT,)),
              Point(1000, 0.9, 0, 1, (SAMPLE_CAVEAT,))]  # fmt: skip
    assert [p.x for p in pareto(points)] == [10, 1000]
    assert pareto([Point(10, 0.5, 0, 1), Point(10, 0.5, 0, 1, (SAMPLE_CAVEAT,))]) == [Point(10, 0.5, 0, 1)]


def test_frontier_without_runs_says_how_to_make_them():
    with pytest.raises(UserError, match=r"no complete runs of gpt2 in r/; run `peftbench run -m method=lora,bitfit,houlsby model=gpt2"):
        frontier([], model="gpt2", where="r/")


# --- the command line ------------------------------------------------------------------------


@pytest.fixture
def results(tmp_path):
    """The records as run folders, plus one damaged record and one folder that is not a run."""
    root = tmp_path / "results"
    for i, rec in enumerate(records()):
        (root / f"run{i:03d}").mkdir(parents=True)
        (root / f"run{i:03d}" / "record.json").write_text(json.dumps(rec))
    (root / "run999").mkdir()
    (root / "run999" / "record.json").write_text('{"schema": 1, "status": "comp')  # truncated
    (root / "notes").mkdir()
    return root


def svg_groups(path: Path, prefix: str) -> dict[str, ElementTree.Element]:
    tree = ElementTree.parse(path)  # raises if it is not XML
    return {g.get("id"): g for g in tree.iter(f"{SVG}g") if (g.get("id") or "").startswith(prefix)}


def svg_markers(group: ElementTree.Element) -> int:
    """Markers drawn in a collection's group: matplotlib writes each as a ``<use>`` of a path in
    ``<defs>``, or as a ``<path>`` of its own when that is shorter."""
    if group.tag == f"{SVG}defs":
        return 0
    own = group.tag in (f"{SVG}use", f"{SVG}path")
    return own + sum(svg_markers(child) for child in group)


def svg_texts(path: Path) -> list[str]:
    return ["".join(t.itertext()) for t in ElementTree.parse(path).iter(f"{SVG}text")]


def test_rank_sweep_png_through_the_command_line(tmp_path, results):
    out = tmp_path / "sweep.png"
    result = peftbench("plot", "rank_sweep", "--results", str(results), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.stdout.strip() == str(out)
    # the damaged record is warned about once and skipped; the folder without a record is not a run
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "run999" in warnings[0] and "truncated JSON" in warnings[0]


def test_rank_sweep_svg_has_a_line_per_target_set_and_the_legend(tmp_path, results):
    out = tmp_path / "sweep.svg"
    result = peftbench("plot", "rank_sweep", "--results", str(results), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # panel 0 is minilm-l6 (one line), panel 1 roberta-base (Wq, Wq Wv, Wq Wk Wv Wo)
    assert sorted(svg_groups(out, "series-")) == ["series-0-0", "series-1-0", "series-1-1", "series-1-2"]
    texts = svg_texts(out)
    assert {"Wq†", "Wq, Wv", "Wq, Wk, Wv, Wo", "LoRA rank r", "roberta-base · rte"} <= set(texts)
    assert {"1", "2", "4", "8"} <= set(texts)  # a tick at each rank present
    assert any(text.startswith("† from runs on sample data") for text in texts)


def test_rank_sweep_svg_filtered_to_one_panel(tmp_path, results):
    out = tmp_path / "one.svg"
    result = peftbench("plot", "rank_sweep", "--results", str(results), "--out", str(out),
                       "--model", "minilm-l6", "--task", "rte", "--statistic", "mean", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert list(svg_groups(out, "series-")) == ["series-0-0"]
    assert "accuracy (validation), mean over seeds ± std" in svg_texts(out)


def test_frontier_svg_has_a_marker_per_variant_labels_and_the_frontier(tmp_path, results):
    out = tmp_path / "frontier.svg"
    result = peftbench("plot", "frontier", "--results", str(results), "--out", str(out),
                       "--model", "roberta-base", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    points = svg_groups(out, "points-0-")
    # bitfit 1, full 1, lora 6 markers
    assert {gid: svg_markers(group) for gid, group in points.items()} == {
        "points-0-0": 1, "points-0-1": 1, "points-0-2": 6,
    }  # fmt: skip
    assert list(svg_groups(out, "pareto-")) == ["pareto-0"]
    texts = set(svg_texts(out))
    assert {"bitfit", "full", "lora r=1 Wq, Wv", "lora r=8 Wq†", "Pareto frontier"} <= texts
    assert {"900 MB peak", "4,100 MB peak"} <= texts  # the marker-area key: smallest, largest


def test_a_method_with_no_parameters_of_its_own_is_drawn_on_a_symlog_axis(tmp_path):
    from peftbench.results.draw import draw

    runs = [record(0.6, method="head", trainable=0, memory=None), record(0.7, method="bitfit", trainable=1000)]
    plot = frontier(runs)
    # 0 parameters at 0.6 is on the frontier: nothing has fewer parameters
    assert [(p.label, p.x) for p in plot.panels[0].frontier] == [("head", 0), ("bitfit", 1000)]
    draw(plot, tmp_path / "zero.svg")
    assert {"head", "bitfit", "0"} <= set(svg_texts(tmp_path / "zero.svg"))


def test_bad_inputs_exit_2_and_write_nothing(tmp_path, results):
    cases = [
        (["plot", "frontier", "--results", str(results), "--out", "f.pdf"], "ending in .png or .svg"),
        (["plot", "rank_sweep", "--results", str(results), "--task", "cola", "--out", "f.png"],
         "no complete lora runs on cola"),
        (["plot", "rank_sweep", "--results", str(tmp_path / "nowhere"), "--out", "f.png"], "does not exist"),
        (["plot", "frontier", "--results", str(results), "--out", "no/such/folder/f.png"], "does not exist"),
        (["plot", "frontier", "--results", str(results), "--metric", "bleu", "--out", "f.svg"], "--metric"),
    ]  # fmt: skip
    for args, mentions in cases:
        result = peftbench(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        errors = [line for line in result.stderr.splitlines() if not line.startswith("warning")]
        assert len(errors) == 1 and errors[0].startswith("error: ") and ";" in errors[0], errors
        assert mentions in errors[0] and "Traceback" not in result.stderr
    result = peftbench("plot", "bars", "--results", str(results), "--out", "f.png", cwd=tmp_path)
    (line,) = result.stderr.splitlines()  # argparse's refusal is one line too
    assert result.returncode == 2 and "invalid choice: 'bars'" in line and "rank_sweep" in line
    assert "peftbench plot --help" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_the_plot_module_imports_no_ml_stack():
    code = (
        "import sys, peftbench.results.plot;"
        "heavy = {'torch', 'transformers', 'datasets', 'numpy', 'matplotlib'} & set(sys.modules);"
        "sys.exit(f'imported {sorted(heavy)}' if heavy else 0)"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
