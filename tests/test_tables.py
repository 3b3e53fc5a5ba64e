"""Table specs and tables: statistics over seeds, matching, the paper beside ours, rendering.

Every expected number is worked out by hand in a comment next to it.
"""

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from peftbench.errors import UserError
from peftbench.results.record import iter_records
from peftbench.results.spec import list_tables, load_spec
from peftbench.results.render import RENDERERS, format_count, render, render_markdown
from peftbench.results.table import build_table

REPO_CONF = Path(__file__).resolve().parents[1] / "conf"

SPEC_YAML = """\
title: Toy GLUE
source: {paper: "A Toy Paper", authors: Doe et al., year: 2021, arxiv: "2101.00001", version: v3,
         table: 2}
statistic: median
seeds: 5
scale: 100
decimals: 1
columns:
  - {task: rte, metric: accuracy, label: RTE}
  - {task: cola, metric: mcc, label: CoLA}
  - {id: mnli-m, task: mnli, split: validation_matched, metric: accuracy, label: MNLI-m}
average: {label: Avg., columns: [rte, cola, mnli-m]}
rows:
  - label: Base LoRA
    model: roberta-base
    method: lora
    match: {r: 8, targets: [attn.q, attn.v]}
    paper_params: 0.3M
    paper: {rte: 73.4, cola: 61.0, mnli-m: null, avg: 72.0}
  - label: Base FT
    model: roberta-base
    method: full
    paper_params: 125.0M
    paper: {rte: 78.7, cola: 63.6, mnli-m: 87.6, avg: 76.6}
notes: ["A note from the spec."]
"""


def write_spec(conf_dir, text=SPEC_YAML):
    (conf_dir / "table").mkdir(parents=True, exist_ok=True)
    (conf_dir / "table" / "toy.yaml").write_text(text)
    return load_spec("toy", conf_dir)


@pytest.fixture
def spec(tmp_path):
    return write_spec(tmp_path / "conf")


def run(
    task="rte",
    value=0.7,
    seed=1,
    *,
    model="roberta-base",
    method="lora",
    config=None,
    split="validation",
    metric="accuracy",
    finished="2026-11-22T12:00:00+00:00",
    sample=False,
    subset=None,
    paper=None,
    status="complete",
    trainable_method=294912,
):
    """A hand-made complete record with one metric value (a fraction); ``subset`` is the data's
    official subset (fewglue), ``paper`` the preset's
    paper source."""
    if config is None:
        config = {"name": "lora", "r": 8, "alpha": 16, "targets": ["attn.q", "attn.v"]}
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
        "metrics": {"best": {split: {metric: value}}, "last": {split: {metric: value - 0.1}}},
        "params": {"trainable_method": trainable_method},
        "data": {"sample": sample, "subset": subset},
        "config": {"paper": paper or {}},
    }


def cell(table, row_label, header):
    row = next(row for row in table.rows if row.label == row_label)
    return row.cells[table.headers.index(header)]


# --- statistics over seeds -------------------------------------------------------------------


def test_median_of_an_odd_number_of_seeds_with_spread_n_and_difference(spec):
    records = [run(value=0.80, seed=1), run(value=0.70, seed=2), run(value=0.72, seed=3)]
    rte = cell(build_table(spec, records), "Base LoRA", "RTE")
    # 70, 72, 80 -> median 72.0 (the mean would be 74.0);
    # sample std: deviations from 74 are -4, -2, 6 -> sqrt((16 + 4 + 36) / 2) = sqrt(28) = 5.2915
    assert rte.value == pytest.approx(72.0)
    assert rte.spread == pytest.approx(5.2915, abs=1e-4)
    assert rte.n == 3
    assert rte.paper == 73.4
    assert rte.difference == pytest.approx(-1.4)  # 72.0 - 73.4
    assert rte.caveats == ()


def test_median_of_an_even_number_of_seeds_averages_the_middle_two(spec):
    records = [run(value=v, seed=s) for s, v in [(1, 0.60), (2, 0.98), (3, 0.70), (4, 0.80)]]
    rte = cell(build_table(spec, records), "Base LoRA", "RTE")
    # 60, 70, 80, 98 -> (70 + 80) / 2 = 75.0 (the mean would be 77.0);
    # std: deviations from 77 are -17, -7, 3, 21 -> sqrt((289 + 49 + 9 + 441) / 3) = 16.2070
    assert rte.value == pytest.approx(75.0)
    assert rte.spread == pytest.approx(16.2070, abs=1e-4)
    assert rte.n == 4


def test_mean_statistic(tmp_path):
    mean_spec = SPEC_YAML.replace("statistic: median", "statistic: mean")
    spec = write_spec(tmp_path / "conf", mean_spec)
    records = [run(value=0.70, seed=1), run(value=0.71, seed=2), run(value=0.75, seed=3)]
    rte = cell(build_table(spec, records), "Base LoRA", "RTE")
    # (70 + 71 + 75) / 3 = 72.0 (the median would be 71.0); deviations -2, -1, 3 -> sqrt(14 / 2)
    assert rte.value == pytest.approx(72.0)
    assert rte.spread == pytest.approx(2.6458, abs=1e-4)
    assert rte.difference == pytest.approx(-1.4)  # 72.0 - 73.4


def test_one_seed_has_zero_spread(spec):
    rte = cell(build_table(spec, [run(value=0.7)]), "Base LoRA", "RTE")
    assert (rte.value, rte.spread, rte.n) == (pytest.approx(70.0), 0.0, 1)


def test_a_seed_run_twice_counts_once_with_its_newest_run(spec):
    records = [
        run(value=0.90, seed=1, finished="2026-11-23T09:00:00+00:00"),
        run(value=0.50, seed=1, finished="2026-11-22T09:00:00+00:00"),
        run(value=0.70, seed=2),
    ]
    rte = cell(build_table(spec, records), "Base LoRA", "RTE")
    # seed 1 -> 90 (the newer run), seed 2 -> 70: median 80.0, n 2
    assert rte.value == pytest.approx(80.0)
    assert rte.n == 2


def test_the_split_and_checkpoint_come_from_the_spec(spec):
    records = [run("mnli", 0.85, split="validation_matched"), run("mnli", 0.99, split="validation")]
    mnli = cell(build_table(spec, records), "Base LoRA", "MNLI-m")
    # best validation_matched (0.85), not validation, nor last (0.85 - 0.1)
    assert mnli.value == pytest.approx(85.0)
    assert mnli.n == 1
    assert mnli.paper is None and mnli.difference is None


# --- which runs fill which cell --------------------------------------------------------------


def test_only_complete_runs_of_the_row_and_column_that_match_fill_a_cell(spec):
    lora = {"name": "lora", "r": 8, "alpha": 16, "targets": ["attn.q", "attn.v"]}
    records = [
        run(value=0.70, seed=1),
        run(value=0.72, seed=2, config={**lora, "alpha": 32, "dropout": 0.1}),  # alpha is free
        run(value=0.74, seed=3, config={**lora, "targets": ["attn.v", "attn.q"]}),  # any order
        run(value=0.10, seed=4, config={**lora, "r": 4}),  # another variant
        run(value=0.10, seed=5, config={"name": "lora", "targets": ["attn.q", "attn.v"]}),  # no r
        run(value=0.10, seed=6, config={**lora, "targets": ["attn.q", "attn.k", "attn.v"]}),
        run(value=0.10, seed=7, model="roberta-large"),
        run(value=0.10, seed=8, status="running"),
        run(value=0.10, seed=9, status="failed"),
        run("cola", value=0.10, seed=10, metric="mcc"),
    ]
    rte = cell(build_table(spec, records), "Base LoRA", "RTE")
    # 70, 72, 74 -> median 72.0
    assert (rte.value, rte.n) == (pytest.approx(72.0), 3)


def test_a_row_matching_per_task_takes_each_tasks_variant(tmp_path):
    """A row whose variant differs by task (prefix tuning's prefix length 5 on E2E, 10 on DART)
    maps each column's task to its match: each cell takes the runs of its task's variant only."""
    text = SPEC_YAML.replace(
        "match: {r: 8, targets: [attn.q, attn.v]}",
        "match: {rte: {r: 8}, cola: {r: 4}, mnli: {r: 8}}\n    preset: {rte: a, cola: b, mnli: a}",
    )
    spec = write_spec(tmp_path / "conf", text)
    (row,) = [row for row in spec.rows if row.label == "Base LoRA"]
    assert (row.match_for("cola"), row.preset_for("cola"), row.preset_for("rte")) == ({"r": 4}, "b", "a")
    lora = {"name": "lora", "r": 8, "alpha": 16, "targets": ["attn.q", "attn.v"]}
    records = [
        run(value=0.70, seed=1),
        run(value=0.10, seed=2, config={**lora, "r": 4}),  # cola's variant, not rte's
        run("cola", value=0.60, seed=1, metric="mcc", config={**lora, "r": 4}),
        run("cola", value=0.10, seed=2, metric="mcc"),  # rte's variant, not cola's
    ]
    table = build_table(spec, records)
    assert (cell(table, "Base LoRA", "RTE").value, cell(table, "Base LoRA", "RTE").n) == (pytest.approx(70.0), 1)
    assert (cell(table, "Base LoRA", "CoLA").value, cell(table, "Base LoRA", "CoLA").n) == (pytest.approx(60.0), 1)


def test_an_empty_match_takes_every_config_of_the_method(spec):
    records = [run(value=0.80, method="full", config={"name": "full"})]
    assert cell(build_table(spec, records), "Base FT", "RTE").value == pytest.approx(80.0)
    assert cell(build_table(spec, records), "Base LoRA", "RTE").value is None


def test_runs_without_the_columns_metric_fill_no_cell_and_are_noted(spec):
    table = build_table(spec, [run("cola", 0.6, metric="accuracy")])
    assert cell(table, "Base LoRA", "CoLA").value is None
    assert "1 run(s) of cola have no best validation mcc and fill no cell." in table.notes


# --- average, parameters, rows without runs --------------------------------------------------


def test_average_is_recomputed_from_our_cells_when_all_columns_have_runs(spec):
    records = [
        run("rte", 0.75),
        run("cola", 0.60, metric="mcc"),
        run("mnli", 0.85, split="validation_matched"),
    ]
    average = cell(build_table(spec, records), "Base LoRA", "Avg.")
    # (75 + 60 + 85) / 3 = 73.333 -> printed 73.3; paper 72.0 -> difference +1.3
    assert average.value == pytest.approx(73.3333, abs=1e-4)
    assert average.difference == pytest.approx(1.3)
    assert average.spread is None


def test_average_is_left_empty_when_a_column_has_no_runs(spec):
    records = [run("rte", 0.75), run("cola", 0.60, metric="mcc")]
    average = cell(build_table(spec, records), "Base LoRA", "Avg.")
    assert average.value is None
    assert average.paper == 72.0


def test_our_parameter_count_is_the_median_over_the_rows_runs(spec):
    records = [
        run("rte", 0.7, seed=1, trainable_method=294912),
        run("rte", 0.7, seed=2, trainable_method=300000),
        run("cola", 0.6, seed=1, metric="mcc", trainable_method=294912),
    ]
    row = build_table(spec, records).rows[0]
    assert row.params == 294912  # median of 294912, 294912, 300000
    assert row.paper_params == "0.3M"


@pytest.mark.parametrize(
    ("count", "printed"),
    [
        (294912, "294.9K"),
        (125_000_000, "125.0M"),
        (786432, "786.4K"),
        (355_000_000, "355.0M"),
        (175_255_800_000, "175,255.8M"),
        (512, "512"),
    ],
)
def test_parameter_counts_print_as_papers_print_them(count, printed):
    assert format_count(count) == printed


def test_rows_without_runs_still_show_the_papers_numbers(spec):
    table = build_table(spec, [])
    ft = next(row for row in table.rows if row.label == "Base FT")
    assert [c.paper for c in ft.cells] == [78.7, 63.6, 87.6, 76.6]
    assert all(c.value is None and c.n == 0 for c in ft.cells)
    assert ft.params is None and ft.paper_params == "125.0M"
    markdown = render(table, "md")
    assert "| Base FT" in markdown and "78.7" in markdown and "76.6" in markdown


# --- another model, sample data --------------------------------------------------------------


def test_model_runs_the_same_rows_on_another_model(spec):
    records = [run(value=0.65, model="minilm-l6"), run(value=0.90, model="roberta-base")]
    table = build_table(spec, records, model="minilm-l6")
    rte = cell(table, "Base LoRA", "RTE")
    assert (rte.value, rte.n) == (pytest.approx(65.0), 1)
    assert rte.paper == 73.4
    assert rte.difference == pytest.approx(-8.4)  # 65.0 - 73.4
    assert {row.model for row in table.rows} == {"minilm-l6"}
    markdown = render(table, "md")
    assert "ours on minilm-l6" in markdown
    assert any("minilm-l6" in note for note in table.notes)


def test_model_fills_one_backbones_rows_only(tmp_path):
    """A spec with RoBERTa-base and RoBERTa-large LoRA rows: --model minilm-l6 fills the first
    backbone's rows, roberta-large=minilm-l6 the other's, never both from one run."""
    text = SPEC_YAML.replace("""  - label: Base FT
    model: roberta-base""", """  - label: Large LoRA
    model: roberta-large
    method: lora
    match: {r: 8, targets: [attn.q, attn.v]}
    paper: {rte: 85.2, cola: 68.2, mnli-m: 90.6, avg: 81.3}
  - label: Base FT
    model: roberta-base""")
    loaded = write_spec(tmp_path / "conf", text)
    records = [run(value=0.65, model="minilm-l6")]
    first = build_table(loaded, records, model="minilm-l6")
    assert cell(first, "Base LoRA", "RTE").value == pytest.approx(65.0) and cell(first, "Large LoRA", "RTE").value is None
    assert [row.model for row in first.rows] == ["minilm-l6", "roberta-large", "minilm-l6"]
    assert any("roberta-large rows show the paper's numbers alone" in note for note in first.notes)
    large = build_table(loaded, records, model="minilm-l6", replacing="roberta-large")
    assert cell(large, "Large LoRA", "RTE").value == pytest.approx(65.0) and cell(large, "Base LoRA", "RTE").value is None
    with pytest.raises(UserError, match="has no deberta-v2-xxlarge rows; choose one of: roberta-base, roberta-large"):
        build_table(loaded, records, model="minilm-l6", replacing="deberta-v2-xxlarge")


def test_runs_on_sample_data_fill_a_cell_only_marked(spec):
    table = build_table(spec, [run(value=0.60, sample=True)])
    rte = cell(table, "Base LoRA", "RTE")
    assert rte.caveats == ("runs on sample data (a slice of the official splits)",)
    assert rte.value == pytest.approx(60.0)
    assert any(note.startswith("†") and "sample data" in note for note in table.notes)
    assert "60.0† ± 0.0 (n=1)" in render(table, "md")
    rte_line = next(r for r in csv.DictReader(io.StringIO(render(table, "csv"))) if r["ours"])
    assert rte_line["caveats"] == "runs on sample data (a slice of the official splits)"


def test_runs_on_the_official_data_take_precedence_over_sample_runs(spec):
    records = [run(value=0.60, seed=1, sample=True), run(value=0.80, seed=2)]
    table = build_table(spec, records)
    rte = cell(table, "Base LoRA", "RTE")
    assert (rte.value, rte.n, rte.caveats) == (pytest.approx(80.0), 1, ())
    assert "†" not in render(table, "md")


def test_an_average_over_a_sample_cell_is_marked_too(spec):
    records = [
        run("rte", 0.75, sample=True),
        run("cola", 0.60, metric="mcc"),
        run("mnli", 0.85, split="validation_matched"),
    ]
    assert cell(build_table(spec, records), "Base LoRA", "Avg.").caveats == (
        "runs on sample data (a slice of the official splits)",
    )


def test_fewglue_runs_are_marked_in_a_full_data_table_and_fill_a_fewglue_one(tmp_path, spec):
    few = [run(value=0.60, seed=1, subset="fewglue")]
    rte = cell(build_table(spec, few), "Base LoRA", "RTE")
    assert rte.caveats == ("runs on FewGLUE's 32 training examples",)
    fewglue_spec = write_spec(tmp_path / "few", SPEC_YAML.replace("decimals: 1\n", "decimals: 1\ndata: fewglue\n"))
    assert fewglue_spec.data == "fewglue"
    table = build_table(fewglue_spec, [*few, run(value=0.90, seed=2)])
    rte = cell(table, "Base LoRA", "RTE")
    assert (rte.value, rte.n, rte.caveats) == (pytest.approx(60.0), 1, ())  # the full-data run is left out
    only_full = cell(build_table(fewglue_spec, [run(value=0.90, seed=2)]), "Base LoRA", "RTE")
    assert only_full.caveats == ("runs on the full training data, not the paper's fewglue setting",)


def test_a_preset_of_another_version_of_the_paper_is_a_caveat(spec):
    # The toy spec is arXiv:2101.00001v3; a preset from its v1 differs, one from another paper does not count.
    v1 = run(value=0.60, seed=1, paper={"arxiv": "2101.00001", "version": "v1"})
    same = run(value=0.70, seed=2, paper={"arxiv": "2101.00001", "version": "v3"})
    other = run(value=0.80, seed=3, paper={"arxiv": "1902.00751", "version": "v2"})
    assert cell(build_table(spec, [v1]), "Base LoRA", "RTE").caveats == (
        "runs with the hyperparameters of the paper's v1 version, not v3",
    )
    rte = cell(build_table(spec, [v1, same, other]), "Base LoRA", "RTE")
    assert (rte.value, rte.n, rte.caveats) == (pytest.approx(75.0), 2, ())  # median of 70 and 80


def multitask_run(value_by_task, seed=1):
    """A hand-made multi-task record: one run, a part and ``task/validation`` metrics per task."""
    record = run("+".join(value_by_task), 0.0, seed)
    best = {f"{task}/validation": {"accuracy": value} for task, value in value_by_task.items()}
    record["metrics"] = {"best": best, "last": best}
    record["parts"] = [
        {"task": task, "benchmark": "glue", "format": "rank_classification", "data": {"sample": False},
         "main": {"split": "validation", "metric": "accuracy"}}
        for task in value_by_task
    ]  # fmt: skip
    return record


def test_multitask_runs_fill_multitask_rows_and_single_task_runs_single_task_rows(tmp_path):
    text = SPEC_YAML.replace(
        "    paper: {rte: 78.7, cola: 63.6, mnli-m: 87.6, avg: 76.6}\n",
        "    paper: {rte: 78.7, cola: 63.6, mnli-m: 87.6, avg: 76.6}\n"
        "  - label: Base LoRA multi-task\n    model: roberta-base\n    method: lora\n    training: multitask\n"
        "    paper: {rte: 80.0, cola: null, mnli-m: null, avg: null}\n",
    )
    spec = write_spec(tmp_path / "conf", text)
    assert [row.training for row in spec.rows] == ["single", "single", "multitask"]
    multi, single = multitask_run({"rte": 0.9, "cola": 0.5}), run(value=0.6, seed=2)
    table = build_table(spec, [multi, single])
    assert (cell(table, "Base LoRA", "RTE").value, cell(table, "Base LoRA", "RTE").caveats) == (pytest.approx(60.0), ())
    rte = cell(table, "Base LoRA multi-task", "RTE")
    assert (rte.value, rte.n, rte.caveats) == (pytest.approx(90.0), 1, ())
    # each kind of run fills the other kind's row only alone, and marked
    assert cell(build_table(spec, [multi]), "Base LoRA", "RTE").caveats == (
        "trained on several tasks at once (rte, cola), not on this one alone",
    )
    assert cell(build_table(spec, [single]), "Base LoRA multi-task", "RTE").caveats == (
        "trained on this task alone, not with the paper's other tasks",
    )
    with pytest.raises(UserError, match=r"rows\[2\].training"):
        write_spec(tmp_path / "bad", text.replace("training: multitask", "training: jointly"))


def test_each_caveat_gets_its_own_mark_and_footnote(spec):
    records = [
        run("rte", 0.60, sample=True),
        run("cola", 0.50, metric="mcc", subset="fewglue"),
        run("mnli", 0.80, split="validation_matched", model="roberta-base", method="full", config={"name": "full"}),
    ]
    table = build_table(spec, records)
    assert table.marks == {
        "runs on sample data (a slice of the official splits)": "†",
        "runs on FewGLUE's 32 training examples": "‡",
    }
    text = render(table, "md")
    assert "60.0† ± 0.0 (n=1)" in text and "50.0‡ ± 0.0 (n=1)" in text and "80.0 ± 0.0 (n=1) Δ -7.6" in text
    assert "- † from runs on sample data (a slice of the official splits): not comparable with the paper's number." in text
    assert "- ‡ from runs on FewGLUE's 32 training examples: not comparable with the paper's number." in text


# --- rendering -------------------------------------------------------------------------------


def parse_markdown_table(text):
    lines = [line for line in text.splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]
    assert set(lines[1]) <= {"|", "-"}
    return rows[0], rows[2:]


def test_markdown_parses_back_with_paper_and_our_lines(spec):
    records = [run(value=0.70, seed=1), run(value=0.80, seed=2), run(value=0.72, seed=3)]
    text = render(build_table(spec, records), "md")
    header, rows = parse_markdown_table(text)

    assert header == ["Row", "Numbers", "Params", "RTE", "CoLA", "MNLI-m", "Avg."]
    assert rows[0] == ["Base LoRA", "paper", "0.3M", "73.4", "61.0", "–", "72.0"]
    # 70, 72, 80: median 72.0, std 5.29, 72.0 - 73.4 = -1.4; no CoLA or MNLI runs, so no Avg.
    ours = "72.0 ± 5.3 (n=3) Δ -1.4"
    assert rows[1] == ["Base LoRA", "ours", "294.9K", ours, "–", "–", "–"]
    assert rows[2][:3] == ["Base FT", "paper", "125.0M"]
    assert len(rows) == 4
    assert "Doe et al. (2021), A Toy Paper, arXiv:2101.00001v3, Table 2; median of 5 seeds" in text
    assert "Ours: median over seeds" in text
    assert "- A note from the spec." in text
    assert text.endswith("\n")


def test_csv_parses_back_one_line_per_row_and_column(spec):
    records = [run(value=0.70, seed=1), run(value=0.80, seed=2), run(value=0.72, seed=3)]
    lines = list(csv.DictReader(io.StringIO(render(build_table(spec, records), "csv"))))

    assert len(lines) == 8  # 2 rows x (3 columns + the average)
    rte = lines[0]
    assert [rte[key] for key in ("row", "model", "method", "column")] == [
        "Base LoRA",
        "roberta-base",
        "lora",
        "rte",
    ]
    assert float(rte["ours"]) == pytest.approx(72.0)  # median of 70, 72, 80
    assert float(rte["std"]) == pytest.approx(5.2915, abs=1e-4)  # sqrt(28), as above
    assert [rte[key] for key in ("n", "paper", "difference", "caveats")] == [
        "3",
        "73.4",
        "-1.4",  # 72.0 - 73.4
        "",
    ]
    assert (rte["params"], rte["paper_params"]) == ("294912", "0.3M")
    mnli = lines[2]
    assert [mnli[key] for key in ("column", "split", "paper", "ours")] == [
        "mnli-m",
        "validation_matched",
        "",
        "",
    ]
    assert lines[3]["column"] == "avg" and lines[3]["paper"] == "72.0"


def test_unknown_format_is_a_user_error(spec):
    with pytest.raises(UserError, match="unknown table format 'pdf'; choose one of: md, csv, latex, html"):
        render(build_table(spec, []), "pdf")


def test_render_markdown_pads_and_escapes():
    text = render_markdown(["Run", "Accuracy"], [["a|b", 0.5], ["long name", None]])
    assert text.splitlines() == [
        "| Run       | Accuracy |",
        "|-----------|----------|",
        "| a\\|b      | 0.5      |",
        "| long name | –        |",
    ]


def test_render_markdown_rejects_a_short_row():
    with pytest.raises(ValueError):
        render_markdown(["a", "b"], [["only one"]])


# --- specs -----------------------------------------------------------------------------------


def test_lora_table2_spec_loads_and_its_averages_agree_with_its_columns():
    spec = load_spec("lora_table2", REPO_CONF)
    assert "lora_table2" in list_tables(REPO_CONF)
    assert spec.source.arxiv == "2106.09685" and spec.source.version == "v2"
    assert (spec.statistic, spec.seeds, spec.scale) == ("median", 5, 100)
    tasks = [column.task for column in spec.columns]
    assert tasks == ["mnli", "sst2", "mrpc", "cola", "qnli", "qqp", "rte", "stsb"]
    assert len(spec.rows) == 14
    for row in spec.rows:  # the paper's Avg. is the mean of its 8 columns, printed to 0.1
        columns = [row.paper[column.id] for column in spec.columns]
        assert sum(columns) / 8 == pytest.approx(row.paper["avg"], abs=0.051), row.label
    lora = next(row for row in spec.rows if row.label == "RoBERTa-base LoRA")
    assert lora.match == {"r": 8, "targets": ["attn.q", "attn.v"]}
    assert lora.paper["rte"] == 86.6


def test_unknown_table_names_the_known_ones(tmp_path, spec):
    with pytest.raises(UserError, match=r"unknown table 'nope'; choose one of: toy"):
        load_spec("nope", tmp_path / "conf")


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (("statistic: median", "statistic: mode"), "statistic: must be one of median, mean"),
        (('arxiv: "2101.00001"', "arxiv: 2101.00001"), "source.arxiv: must be a non-empty string"),
        (("mnli-m: null, avg: 72.0", "avg: 72.0"), "rows[0].paper: no value for 'mnli-m'"),
        (("rte: 78.7", "rte: high"), "rows[1].paper.rte: must be a number"),
        (("seeds: 5", "seed: 5"), "top level: unknown field 'seed'"),
        (("columns: [rte, cola, mnli-m]", "columns: [rte, sst2]"), "unknown column 'sst2'"),
        (("label: Base FT", "label: Base LoRA"), "rows[1].label: 'Base LoRA' is used twice"),
        (("title: Toy GLUE", "title: [Toy"), "invalid YAML"),
        # a match or preset per task names every column's task and no other, in a single-task row
        (("match: {r: 8, targets: [attn.q, attn.v]}", "match: {rte: {r: 8}, cola: {r: 8}}"),
         "rows[0].match: no value for task 'mnli'; map each of the columns' tasks (rte, cola, mnli) to one"),
        (("match: {r: 8, targets: [attn.q, attn.v]}", "match: {rte: {r: 8}, cola: {r: 8}, mnli: {r: 8}, qqp: {r: 8}}"),
         "rows[0].match: 'qqp' is no column's task"),
        (("match: {r: 8, targets: [attn.q, attn.v]}", "match: {r: 8, rte: {r: 4}}"),
         "rows[0].match: give method_config fields, or map each of the columns' tasks (rte, cola, mnli) to its fields, not both"),
        (("paper_params: 0.3M", "paper_params: 0.3M\n    preset: {rte: a, cola: b}"),
         "rows[0].preset: no value for task 'mnli'"),
        (("paper_params: 0.3M", "paper_params: 0.3M\n    preset: {rte: a, cola: b, mnli: ''}"),
         "rows[0].preset.mnli: must be a non-empty string"),
        (("paper_params: 0.3M", "paper_params: 0.3M\n    training: multitask\n    preset: {rte: a, cola: b, mnli: c}"),
         "rows[0].preset: a multitask row trains its tasks in one run; give one for every task"),
    ],
)
def test_a_broken_spec_is_one_line_naming_the_file_and_the_field(tmp_path, broken, message):
    old, new = broken
    assert old in SPEC_YAML
    with pytest.raises(UserError) as caught:
        write_spec(tmp_path, SPEC_YAML.replace(old, new, 1))
    assert str(tmp_path / "table" / "toy.yaml") in str(caught.value)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_column_prints_with_its_own_scale_and_decimals(tmp_path):
    # E2E tables print BLEU as a percentage but NIST as it is (8.85), with two decimals.
    text = SPEC_YAML.replace(
        "  - {task: cola, metric: mcc, label: CoLA}",
        "  - {task: cola, metric: mcc, label: CoLA}\n  - {id: nist, task: e2e, metric: nist, label: NIST, scale: 1, decimals: 2}",
    ).replace("mnli-m: null, avg: 72.0}", "mnli-m: null, nist: 8.85, avg: 72.0}").replace("mnli-m: 87.6, avg: 76.6}", "mnli-m: 87.6, nist: null, avg: 76.6}")
    spec = write_spec(tmp_path / "conf", text)
    records = [run("e2e", 8.5, seed=1, metric="nist"), run("e2e", 8.7, seed=2, metric="nist"), run("rte", 0.7)]
    table = build_table(spec, records)
    nist = cell(table, "Base LoRA", "NIST")
    # mean of 8.5 and 8.7 is 8.6 (median of two), unscaled; 8.60 - 8.85 = -0.25
    assert nist.value == pytest.approx(8.6) and nist.difference == pytest.approx(-0.25)
    assert cell(table, "Base LoRA", "RTE").value == pytest.approx(70.0)  # the spec's ×100 still
    rendered = render(table, "md")
    assert "8.60 ± 0.14 (n=2) Δ -0.25" in rendered and "| 8.85 " in rendered
    assert "×100 (NIST ×1)" in rendered


def test_latex_is_booktabs_with_escaped_text_and_our_numbers(spec):
    records = [run(value=0.70, seed=1), run(value=0.80, seed=2), run(value=0.72, seed=3), run("cola", 0.5, metric="mcc", sample=True)]
    text = render(build_table(spec, records), "latex")
    lines = text.splitlines()
    assert lines[0] == r"\begin{table}[t]" and lines[-1] == r"\end{table}"
    assert r"\begin{tabular}{llrrrrr}" in lines  # Row, Numbers, then Params and 4 number columns
    assert lines.index(r"\toprule") < lines.index(r"\midrule") < lines.index(r"\bottomrule")
    body = lines[lines.index(r"\midrule") + 1 : lines.index(r"\bottomrule")]
    rows = [line for line in body if line.endswith(r"\\")]
    assert len(rows) == 4 and all(line.count(" & ") == 6 for line in rows)  # 2 spec rows x (paper, ours)
    assert rows[0].startswith("Base LoRA & paper & 0.3M & 73.4 & 61.0 & -- & 72.0")
    # 70, 72, 80: median 72.0 ± 5.3, Δ -1.4 (as in the Markdown test); the sample CoLA cell is marked.
    assert r"72.0 $\pm$ 5.3 (n=3) $\Delta$ -1.4" in rows[1]
    assert r"50.0\textsuperscript{\dag} $\pm$ 0.0 (n=1)" in rows[1]
    assert r"294.9K" in rows[1]
    assert r"A Toy Paper, arXiv:2101.00001v3" in text
    assert r"\textsuperscript{\dag} from runs on sample data" in text


def test_latex_escapes_special_characters(tmp_path):
    spec = write_spec(tmp_path / "conf", SPEC_YAML.replace("title: Toy GLUE", "title: '100% of R&D_x #1 {a} $5'"))
    text = render(build_table(spec, []), "latex")
    assert r"\caption{100\% of R\&D\_x \#1 \{a\} \$5}" in text


def test_html_parses_with_a_row_pair_per_spec_row_and_escapes(tmp_path):
    from html.parser import HTMLParser

    spec = write_spec(tmp_path / "conf", SPEC_YAML.replace("label: Base FT", "label: Base <FT> & co"))
    records = [run(value=0.70, seed=1), run(value=0.80, seed=2), run(value=0.72, seed=3)]
    text = render(build_table(spec, records), "html")

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.open = [], []

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append([])
            self.open.append(tag)

        def handle_endtag(self, tag):
            assert self.open.pop() == tag, f"</{tag}> closes another element"

        def handle_data(self, data):
            if self.open and self.open[-1] in ("td", "th") and self.rows:
                self.rows[-1].append(data)

    parser = Cells()
    parser.feed(text)
    assert parser.open == []  # every element closed, in order
    header, *rows = parser.rows
    assert header == ["Row", "Numbers", "Params", "RTE", "CoLA", "MNLI-m", "Avg."]
    assert len(rows) == 4
    assert rows[0] == ["Base LoRA", "paper", "0.3M", "73.4", "61.0", "–", "72.0"]
    assert rows[1] == ["ours", "294.9K", "72.0 ± 5.3 (n=3) Δ -1.4", "–", "–", "–"]
    assert rows[2][0] == "Base <FT> & co" and "Base &lt;FT&gt; &amp; co" in text


def test_the_command_line_offers_every_format():
    from peftbench.cli import build_parser

    table = build_parser()._subparsers._group_actions[0].choices["table"]
    (format_action,) = [a for a in table._actions if a.dest == "format"]
    assert tuple(format_action.choices) == tuple(RENDERERS)


# --- scale and weight ------------------------------------------------------------------------


def test_ten_thousand_records_aggregate(tmp_path, spec):
    root = tmp_path / "results"
    root.mkdir()
    for i in range(10_000):
        task, metric = ("rte", "accuracy") if i % 2 else ("cola", "mcc")
        record = run(task, 0.5, seed=i, metric=metric)
        (root / f"run{i:05d}").mkdir()
        (root / f"run{i:05d}" / "record.json").write_text(json.dumps(record))

    table = build_table(spec, iter_records(root))
    assert cell(table, "Base LoRA", "RTE").n == 5_000
    assert cell(table, "Base LoRA", "CoLA").n == 5_000


def test_the_results_package_imports_no_ml_stack():
    code = (
        "import sys, peftbench.results.record, peftbench.results.spec, peftbench.results.table, peftbench.results.render;"
        "heavy = {'torch', 'transformers', 'datasets', 'numpy'} & set(sys.modules);"
        "sys.exit(f'imported {sorted(heavy)}' if heavy else 0)"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_papers_spreads_and_bold_cells_print_as_the_paper_prints_them(tmp_path):
    """A paper value may carry the ± the paper prints beside it ("92.39 ± 0.22", ".3" kept as
    printed) and a row may name its bold cells: every format shows both, and the value alone is
    what Δ is taken against."""
    text = SPEC_YAML.replace("paper: {rte: 78.7, cola: 63.6, mnli-m: 87.6, avg: 76.6}",
                             'paper: {rte: "78.7 ± .3", cola: 63.6, mnli-m: "87.6±0.25", avg: 76.6}\n    bold: [cola, avg]')
    loaded = write_spec(tmp_path / "conf", text)
    row = loaded.rows[1]
    assert row.paper["rte"] == 78.7 and row.paper_spread == {"rte": ".3", "mnli-m": "0.25"} and row.bold == ("cola", "avg")
    table = build_table(loaded, [run("rte", 0.80, method="full", config={"name": "full"})])
    built = table.rows[1].cells[0]
    assert built.paper == 78.7 and built.paper_spread == ".3" and built.difference == pytest.approx(1.3)
    md, latex, html = (render(table, fmt) for fmt in ("md", "latex", "html"))
    paper_line = next(line for line in md.splitlines() if line.startswith("| Base FT ") and "| paper " in line)
    assert [cell.strip() for cell in paper_line.split("|")[4:8]] == ["78.7 ± .3", "**63.6**", "87.6 ± 0.25", "**76.6**"]
    assert r"78.7 $\pm$ .3" in latex and r"\textbf{63.6}" in latex
    assert "<td>78.7 ± .3</td>" in html and "<td><b>63.6</b></td>" in html
    rows = list(csv.DictReader(io.StringIO(render(table, "csv"))))
    cola = next(r for r in rows if r["row"] == "Base FT" and r["column"] == "cola")
    rte = next(r for r in rows if r["row"] == "Base FT" and r["column"] == "rte")
    assert (cola["paper_bold"], rte["paper_std"], rte["paper"]) == ("bold", ".3", "78.7")


@pytest.mark.parametrize("printed", ['"about 78"', '"78.7 ± "', '"± 0.3"'])
def test_a_paper_value_that_is_neither_a_number_nor_value_and_spread_is_refused(tmp_path, printed):
    text = SPEC_YAML.replace("rte: 78.7,", f"rte: {printed},")
    with pytest.raises(UserError, match=r"rows\[1\]\.paper\.rte: must be a number or 'value ± spread'"):
        write_spec(tmp_path / "conf", text)


def test_a_few_shot_column_takes_only_the_runs_that_drew_its_k_rows(tmp_path):
    """``train_samples: k`` columns (Hyperformer's few-shot table) hold the runs with
    data.train_samples=k; a full-data run fills the full column only, and the reverse."""
    text = SPEC_YAML.replace(
        "  - {task: cola, metric: mcc, label: CoLA}\n",
        "  - {task: cola, metric: mcc, label: CoLA}\n  - {id: rte_16, task: rte, metric: accuracy, train_samples: 16, label: RTE 16}\n",
    ).replace("avg: 72.0}", "avg: 72.0, rte_16: 60.1}").replace("avg: 76.6}", "avg: 76.6, rte_16: null}")
    few_spec = write_spec(tmp_path / "few", text)
    assert [c.train_samples for c in few_spec.columns] == [None, None, 16, None]

    def drawn(k, value, seed):
        record = run(value=value, seed=seed)
        record["config"]["data"] = {"train_samples": k}
        return record

    table = build_table(few_spec, [drawn(16, 0.60, 1), drawn(16, 0.70, 2), drawn(32, 0.9, 3), run(value=0.8, seed=4)])
    assert (cell(table, "Base LoRA", "RTE 16").value, cell(table, "Base LoRA", "RTE 16").n) == (pytest.approx(65.0), 2)
    assert cell(table, "Base LoRA", "RTE 16").caveats == ()
    assert (cell(table, "Base LoRA", "RTE").value, cell(table, "Base LoRA", "RTE").n) == (pytest.approx(80.0), 1)


def test_a_few_shot_size_must_be_a_count(tmp_path):
    text = SPEC_YAML.replace("{task: rte, metric: accuracy, label: RTE}", "{task: rte, metric: accuracy, label: RTE, train_samples: -4}")
    with pytest.raises(UserError, match=r"columns\[0\]\.train_samples"):
        write_spec(tmp_path / "bad", text)
