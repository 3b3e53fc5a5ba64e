"""``peftbench compare``: the Pareto view of two recorded figures, from hand-made records.

Every expected point and frontier is worked out by hand in a comment next to it.
"""

import json
import xml.etree.ElementTree as ElementTree

import pytest

from peftbench.errors import UserError
from peftbench.results.compare import compare, figures, frontier_markdown
from peftbench.results.frame import runs_frame
from peftbench.results.table import SAMPLE_CAVEAT
from tests.cli import peftbench

SVG = "{http://www.w3.org/2000/svg}"


def record(method, seed, accuracy=None, *, r=None, task="rte", model="roberta-base", memory=None, rate=None,
           file_bytes=None, ter=None, sample=False, finished="2026-11-22T12:00:00+00:00", status="complete"):  # fmt: skip
    """A hand-made record; figures left None are not recorded (as in records older than them)."""
    config = {"name": method, **({"r": r, "alpha": 16, "targets": ["attn.q", "attn.v"]} if r else {})}
    split, main = ("test", "bleu") if task == "webnlg" else ("validation", "accuracy")
    best = {"accuracy": accuracy} if task != "webnlg" else {"bleu": 0.4, "ter": ter}
    cost = {"peak_memory_mb": memory, "samples_per_s": rate, "adapter_file_bytes": file_bytes}
    return {
        "schema": 1, "run_id": f"{task}.{model}.{method}.r{r}.s{seed}.{finished[:10]}", "status": status,
        "finished": finished, "model": model, "method": method, "task": task, "seed": seed, "method_config": config,
        "metrics": {"best": {split: best}, "last": {split: best}, "main": {"split": split, "metric": main, "value": best[main]}},
        "params": {"trainable_method": 1000}, "cost": {k: v for k, v in cost.items() if v is not None},
        "data": {"sample": sample},
    }  # fmt: skip


def records():
    return [
        # RTE: (peak memory MB, accuracy, samples/s) per seed
        record("bitfit", 1, 0.70, memory=800, rate=100),
        record("bitfit", 2, 0.75, memory=800, rate=100),
        record("bitfit", 3, 0.71, memory=800, rate=100),  # median 800, 0.71, 100
        record("lora", 1, 0.70, r=1, memory=900, rate=80),
        record("lora", 2, 0.72, r=1, memory=950, rate=80),
        record("lora", 3, 0.80, r=1, memory=1000, rate=80),  # median 950, 0.72, 80
        record("lora", 1, 0.80, r=8, memory=1000, rate=80),
        record("lora", 2, 0.84, r=8, memory=1100, rate=80),  # median 1050, 0.82, 80
        record("lora", 1, 0.99, r=8, memory=100, rate=900, finished="2026-11-21T12:00:00+00:00"),  # seed 1 again, older
        record("houlsby", 1, 0.80, memory=1200, rate=90),
        record("full", 1, 0.86, memory=4000, rate=20),
        record("full", 2, 0.88, memory=4200, rate=20),  # median 4100, 0.87, 20
        record("lora", 1, 0.99, r=4, memory=100, rate=500, sample=True),  # sample data: never on a full-data frontier
        record("lora", 4, 1.00, r=8, memory=50, rate=1000, status="failed"),  # failed: left out
        record("ia3", 1, 0.90),  # an old record: no memory, no throughput
        # WebNLG: (adapter file bytes, TER), where lower TER is better
        record("prefix", 1, task="webnlg", model="gpt2-medium", file_bytes=1000, ter=0.50),
        record("houlsby", 1, task="webnlg", model="gpt2-medium", file_bytes=1500, ter=0.60),
        record("lora", 1, task="webnlg", model="gpt2-medium", r=4, file_bytes=2000, ter=0.40),
        record("full", 1, task="webnlg", model="gpt2-medium", file_bytes=500_000, ter=0.45),
    ]


def frame(recs=None):
    return runs_frame(records() if recs is None else recs)


def panel(comparison, task):
    (found,) = [p for p in comparison.panels if p.task == task]
    return found


def test_memory_against_accuracy_lower_memory_and_higher_accuracy_are_better():
    rte = panel(compare(frame(), "peak_memory", "accuracy", task="rte"), "rte")
    points = {p.label: (p.x, p.y, p.n, p.caveats) for p in rte.points}
    assert points == {
        "bitfit": (800, pytest.approx(0.71), 3, ()),
        "full": (4100, pytest.approx(0.87), 2, ()),
        "houlsby": (1200, pytest.approx(0.80), 1, ()),
        "lora r=1": (950, pytest.approx(0.72), 3, ()),
        "lora r=4": (100, pytest.approx(0.99), 1, (SAMPLE_CAVEAT,)),
        "lora r=8": (1050, pytest.approx(0.82), 2, ()),  # the older seed-1 run is not used
    }
    # by memory: bitfit 800 0.71 (on) · lora r=1 950 0.72 (on) · lora r=8 1050 0.82 (on) ·
    # houlsby 1200 0.80 (no: r=8 uses less and scores more) · full 4100 0.87 (on);
    # lora r=4 at 100 MB is sample data, not compared with full-data points
    assert [p.label for p in rte.frontier] == ["bitfit", "lora r=1", "lora r=8", "full"]


def test_a_throughput_is_better_higher():
    rte = panel(compare(frame(), "samples_per_s", "validation.accuracy", task="rte"), "rte")
    # by samples/s, most first: bitfit 100 0.71 (on) · houlsby 90 0.80 (on) · lora r=8 80 0.82 (on) ·
    # lora r=1 80 0.72 (no: r=8 as fast, better) · full 20 0.87 (on)
    assert [(p.label, p.x) for p in rte.frontier] == [("bitfit", 100), ("houlsby", 90), ("lora r=8", 80), ("full", 20)]


def test_ter_is_better_lower():
    comparison = compare(frame(), "file_size", "ter", task="webnlg")
    assert (comparison.x.lower_is_better, comparison.y.lower_is_better) == (True, True)
    webnlg = panel(comparison, "webnlg")
    # by file size: prefix 1000 0.50 (on) · houlsby 1500 0.60 (no: prefix smaller and lower) ·
    # lora 2000 0.40 (on) · full 500,000 0.45 (no: lora smaller and lower)
    assert [(p.label, p.x, p.y) for p in webnlg.frontier] == [("prefix", 1000, 0.50), ("lora", 2000, 0.40)]


def test_the_frontier_as_markdown_states_each_direction():
    text = frontier_markdown(compare(frame(), "file_size", "ter", task="webnlg"))
    lines = text.splitlines()
    assert lines[0] == ("x: file_size = cost.adapter_file_bytes (adapter file size, bytes), lower is better; "
                        "y: ter at each task's main split, lower is better.")  # fmt: skip
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if line.startswith("|")]
    assert rows[0] == ["task", "method variant", "file_size", "ter", "seeds"]
    assert rows[2:] == [["webnlg", "prefix", "1,000", "0.5000", "1"], ["webnlg", "lora", "2,000", "0.4000", "1"]]


def test_runs_without_a_figure_are_counted_and_sample_points_marked():
    comparison = compare(frame(), "peak_memory", "accuracy")
    assert [p.task for p in comparison.panels] == ["rte"]  # WebNLG's runs have no peak memory (nor accuracy)
    assert comparison.unscored == 1 + 4  # the old IA3 record, and the WebNLG runs
    text = frontier_markdown(comparison)
    assert "5 complete run(s) have no value for peak_memory or accuracy and are left out." in text
    sample_only = compare(frame([record("lora", 1, 0.6, r=4, memory=10, sample=True)]), "peak_memory", "accuracy")
    assert "| rte  | lora†" in frontier_markdown(sample_only)
    assert f"† from {SAMPLE_CAVEAT}" in frontier_markdown(sample_only)


def test_several_models_in_a_panel_are_named_in_the_labels():
    recs = [record("lora", 1, 0.5, r=8, memory=100), record("lora", 1, 0.4, r=8, model="minilm-l6", memory=50)]
    (cola,) = compare(frame(recs), "peak_memory", "accuracy").panels
    assert [p.label for p in cola.frontier] == ["minilm-l6 lora", "roberta-base lora"]


def test_figures_name_aliases_cost_params_and_metrics_with_their_directions():
    known = figures(frame())
    assert known["peak_memory"].column == "cost.peak_memory_mb" and known["peak_memory"].lower_is_better
    assert known["method_params"].column == "params.trainable_method"
    assert known["samples_per_s"].lower_is_better is False
    assert known["accuracy"].column is None and known["accuracy"].lower_is_better is False
    assert known["test.ter"].lower_is_better and not known["test.bleu"].lower_is_better
    assert "avg_memory" not in known  # no record has it


def test_unknown_figures_and_tasks_are_user_errors():
    with pytest.raises(UserError, match=r"--y 'acc' is not a recorded figure; valid fields: peak_memory, .*accuracy"):
        compare(frame(), "peak_memory", "acc")
    with pytest.raises(UserError, match="both name accuracy"):
        compare(frame(), "accuracy", "accuracy")
    with pytest.raises(UserError, match="no complete run of task cola in the results; it has: rte, webnlg"):
        compare(frame(), "peak_memory", "accuracy", task="cola")


# --- the command line ------------------------------------------------------------------------


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    for i, rec in enumerate(records()):
        (root / f"run{i:03d}").mkdir(parents=True)
        (root / f"run{i:03d}" / "record.json").write_text(json.dumps(rec))
    return root


def test_compare_prints_the_frontier_and_draws_it(tmp_path, results):
    out = tmp_path / "view.svg"
    done = peftbench("compare", "--results", str(results), "--x", "peak_memory", "--y", "accuracy", "--task", "rte",
                     "--out", str(out), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| rte")]
    assert [row.split("|")[2].strip() for row in rows] == ["bitfit", "lora r=1", "lora r=8", "full"]
    svg = ElementTree.parse(out).getroot()
    ids = {element.get("id") for element in svg.iter()}
    assert "pareto-0" in ids and "points-0-0" in ids
    texts = " ".join(element.text or "" for element in svg.iter(f"{SVG}text"))
    assert "lora r=8" in texts and "lower is better" in texts and "higher is better" in texts


def test_a_bad_field_is_one_line_listing_the_valid_ones(tmp_path, results):
    done = peftbench("compare", "--results", str(results), "--x", "memory", "--y", "accuracy", cwd=tmp_path)
    (line,) = done.stderr.splitlines()
    assert done.returncode == 2
    assert line.startswith("error: --x 'memory' is not a recorded figure; valid fields: peak_memory, ")
    assert "file_size" in line and "validation.accuracy" in line


def test_a_bad_out_is_refused_before_reading_and_writes_nothing(tmp_path, results):
    done = peftbench("compare", "--results", str(results), "--x", "peak_memory", "--y", "accuracy", "--out",
                     str(tmp_path / "view.pdf"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and "pass an --out ending in .png or .svg" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]
