"""The adapter papers' table specs against the lecture deck that prints them.

conf/table/houlsby_table2.yaml (Houlsby et al. 2019, Table 2) and
conf/table/adapterfusion_table1.yaml (Pfeiffer et al. 2021, Table 1) are read from seed
000_c561985974e3658b.txt, which prints both tables as tab-separated lines: one line per dataset,
one column per method. The specs transpose them (rows = methods, columns = datasets), so each spec
row is a seed column. Every cell is checked in order: value, the spread as printed, and bold.

The averages are checked against the columns without the seed. Tolerance: a paper printing every
number to the same last decimal u leaves each column within u/2 of its true value and the printed
average within u/2 of the true mean, so the mean of the printed columns and the printed average
differ by at most u: 0.1 for Houlsby's Table 2, 0.01 for AdapterFusion's Table 1.
"""

import re
import statistics
from pathlib import Path

import pytest
import yaml

from peftbench.results.spec import load_spec
from peftbench.results.table import build_table

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SEED = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "000_c561985974e3658b.txt"

needs_seed = pytest.mark.skipif(not SEED.is_file(), reason="the seed deck 000 is not on this machine")

TOLERANCE = {"houlsby_table2": 0.1, "adapterfusion_table1": 0.01}

# The seed's column headers, in order, and what each spec row (in the same order) is.
HOULSBY_HEADERS = [
    "No BERT baseline",
    "BERT <sub>BASE</sub> Fine-tune",
    "BERT <sub>BASE</sub> Variable FT",
    "BERT <sub>BASE</sub> Adapters",
]
HOULSBY_METHODS = ["automl", "full", "top_k", "houlsby"]
FUSION_HEADERS = ["Head", "Full", "ST-A", "MT-A", "F. w/ ST-A", "F. w/ MT-A", "ST-A <sup>Houlsby</sup>"]
FUSION_METHODS = [
    ("head", "single"),
    ("full", "single"),
    ("pfeiffer", "single"),
    ("task_routing", "multitask"),  # one Pfeiffer adapter and one head per task
    ("adapter_fusion", "single"),
    ("adapter_fusion", "single"),
    ("houlsby", "single"),
]

_CELL = re.compile(r"(?P<bold><b>)?(?P<value>\d+\.\d+)(?:</b>)?(?:\s*±\s*(?P<spread>\d*\.\d+))?")


def spec(name):
    return load_spec(name, CONF)


def parse_cell(cell: str) -> tuple[float, str | None, bool]:
    """'92.8 ± 0.1', '<b>93.00</b> ±0.20', '54.59' -> (value, spread as printed or None, bold)."""
    found = _CELL.fullmatch(cell.strip())
    assert found, f"not a table cell: {cell!r}"
    return float(found["value"]), found["spread"], bool(found["bold"])


def seed_table(header_start: str) -> tuple[list[str], list[list[str]]]:
    """The header cells after 'Dataset' and the tab-separated lines under it, up to a blank line."""
    lines = SEED.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    body = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        body.append(line.split("\t"))
    return lines[start].split("\t")[1:], body


def check_cells(loaded, body_lines, value_ids):
    """Every spec row against its seed column: value, spread as printed, bold; cell by cell."""
    assert [cells[0] for cells in body_lines] == [c.label for c in loaded.columns] + [loaded.average.label]
    for j, row in enumerate(loaded.rows, start=1):
        for cells, column_id in zip(body_lines, value_ids):
            value, spread, bold = parse_cell(cells[j])
            where = (row.label, column_id)
            assert row.paper[column_id] == value, where
            assert row.paper_spread.get(column_id) == spread, where
            assert (column_id in row.bold) == bold, where


# --- Houlsby et al. 2019, Table 2 -------------------------------------------------------------


@needs_seed
def test_houlsby_table2_is_the_seed_table_cell_by_cell():
    headers, body = seed_table("Dataset\tNo BERT baseline")
    loaded = spec("houlsby_table2")
    assert headers == HOULSBY_HEADERS
    assert [row.method for row in loaded.rows] == HOULSBY_METHODS
    assert len(loaded.columns) == 17
    # 17 dataset lines, Average, then the two parameter lines
    table, (total_line, trained_line) = body[:18], body[18:]
    ids = [c.id for c in loaded.columns] + [loaded.average.id]
    check_cells(loaded, table, ids)
    assert not any(row.bold for row in loaded.rows)  # the seed prints no bold in this table

    # "Trained params/task" is each row's paper_params ("—": none); "Total number of params" is in
    # a note, in row order.
    assert trained_line[0] == "Trained params/task" and total_line[0] == "Total number of params"
    assert [row.paper_params or "—" for row in loaded.rows] == trained_line[1:]
    totals = ", ".join(total_line[1:-1]) + " and " + total_line[-1]
    assert totals == "—, 17×, 9.9× and 1.19×"
    assert any(totals in note for note in loaded.notes)


def test_houlsby_table2_columns_are_test_accuracy_with_the_statistic_of_the_caption():
    loaded = spec("houlsby_table2")
    assert {(c.split, c.metric) for c in loaded.columns} == {("test", "accuracy")}
    assert loaded.statistic == "mean" and (loaded.scale, loaded.decimals) == (100, 1)
    assert (loaded.source.arxiv, loaded.source.table) == ("1902.00751", "2")
    assert {row.model for row in loaded.rows[1:]} == {"bert-base"}
    variable_ft = loaded.rows[2]
    assert variable_ft.method == "top_k" and variable_ft.match == {}  # k chosen per task: no match
    assert loaded.rows[3].match == {}  # adapter size chosen per task


# --- Pfeiffer et al. 2021 (AdapterFusion), Table 1 ---------------------------------------------


@needs_seed
def test_adapterfusion_table1_is_the_seed_table_cell_by_cell():
    headers, body = seed_table("Dataset\tHead\t")
    loaded = spec("adapterfusion_table1")
    assert headers == FUSION_HEADERS
    assert [(row.method, row.training) for row in loaded.rows] == FUSION_METHODS
    assert len(body) == len(loaded.columns) + 1 == 17  # 16 datasets and Mean
    check_cells(loaded, body, [c.id for c in loaded.columns] + [loaded.average.id])
    # MNLI and QQP print a spread only for MT-A
    for row in loaded.rows:
        has = {"mnli", "qqp"} & set(row.paper_spread)
        assert has == ({"mnli", "qqp"} if row.label == "MT-A" else set()), row.label


def test_adapterfusion_table1_columns_rows_and_matches():
    loaded = spec("adapterfusion_table1")
    assert {c.metric for c in loaded.columns} == {"accuracy"}
    mnli = loaded.columns[0]
    assert (mnli.task, mnli.split) == ("mnli", "validation_matched")
    assert {c.split for c in loaded.columns[1:]} == {"validation"}
    assert loaded.statistic == "mean" and (loaded.scale, loaded.decimals) == (100, 2)
    assert {row.model for row in loaded.rows} == {"bert-base"}  # §4.1: BERT-base-uncased
    rows = {row.label: row for row in loaded.rows}
    assert rows["ST-A"].match == {"bottleneck": None, "reduction_factor": 16}
    assert rows["MT-A"].match == {"module": "pfeiffer", "settings": {}}  # the pfeiffer preset: factor 16
    assert _method_defaults("pfeiffer")["reduction_factor"] == 16
    assert rows["F. w/ ST-A"].match == {"adapter_method": "pfeiffer", "adapter_training": "single"}
    assert rows["F. w/ MT-A"].match == {"adapter_method": "pfeiffer", "adapter_training": "multitask"}


def _record(method, task, config, value, seed=1):
    return {
        "schema": 1, "run_id": f"{method}.{task}.{seed}", "status": "complete",
        "finished": "2026-11-22T12:00:00+00:00", "model": "bert-base", "method": method, "task": task,
        "seed": seed, "method_config": {"name": method, **config},
        "metrics": {"best": {"validation": {"accuracy": value}}}, "params": {"trainable_method": 1000},
        "data": {"sample": False, "subset": None}, "config": {},
    }  # fmt: skip


def _method_defaults(name):
    return yaml.safe_load((CONF / "method" / f"{name}.yaml").read_text(encoding="utf-8"))


def test_default_pfeiffer_and_fusion_runs_fill_their_rows_and_fusion_over_mt_a_its_own():
    loaded = spec("adapterfusion_table1")
    fusion = {**_method_defaults("adapter_fusion"), "adapter_tasks": ["rte", "mrpc"]}
    records = [
        _record("adapter_fusion", "rte", fusion, 0.80),
        _record("pfeiffer", "rte", _method_defaults("pfeiffer"), 0.70),  # reduction factor 16
        _record("houlsby", "rte", _method_defaults("houlsby"), 0.60),  # bottleneck 64, not factor 16
    ]
    table = build_table(loaded, records)
    rte = [c.id for c in loaded.columns].index("rte")
    cells = {row.label: row.cells[rte] for row in table.rows}
    assert cells["F. w/ ST-A"].value == pytest.approx(80.0)
    assert cells["ST-A"].value == pytest.approx(70.0)
    assert _method_defaults("adapter_fusion")["adapter_training"] == "single"
    assert cells["F. w/ MT-A"].value is None and cells["F. w/ MT-A"].n == 0
    # fusion over MT-A's modules (method.adapter_training=multitask) fills its row, not F. w/ ST-A
    over_mt_a = _record("adapter_fusion", "rte", {**fusion, "adapter_training": "multitask"}, 0.75, seed=2)
    cells = {row.label: row.cells[rte] for row in build_table(loaded, [over_mt_a]).rows}
    assert cells["F. w/ MT-A"].value == pytest.approx(75.0) and cells["F. w/ ST-A"].value is None
    assert cells["ST-A Houlsby"].value is None  # houlsby.yaml's default size is not ST-A_16^Houlsby


# --- both: the averages against their columns -------------------------------------------------


@pytest.mark.parametrize("name", sorted(TOLERANCE))
def test_printed_average_is_the_mean_of_the_columns_within_the_last_printed_decimal(name):
    loaded = spec(name)
    assert list(loaded.average.columns) == [c.id for c in loaded.columns]
    for row in loaded.rows:
        mean = statistics.mean(row.paper[c] for c in loaded.average.columns)
        assert abs(mean - row.paper[loaded.average.id]) <= TOLERANCE[name] + 1e-9, (row.label, mean)


def test_the_largest_average_gaps_are_the_rounding_ones():
    # Variable FT: 17 cells average 74.076, printed 74.0 (gap 0.076 < 0.1); AdapterFusion's Full:
    # 16 cells average 75.5156, printed 75.51 (gap 0.0056 < 0.01).
    houlsby = spec("houlsby_table2").rows[2]
    assert statistics.mean(houlsby.paper[c.id] for c in spec("houlsby_table2").columns) == pytest.approx(74.0765, abs=1e-4)
    full = spec("adapterfusion_table1").rows[1]
    assert statistics.mean(full.paper[c.id] for c in spec("adapterfusion_table1").columns) == pytest.approx(75.5156, abs=1e-4)
