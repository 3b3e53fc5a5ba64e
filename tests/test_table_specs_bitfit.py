"""BitFit's Tables 1-3 (Ben Zaken, Ravfogel & Goldberg, ACL 2022, arXiv:2106.10199v5) as table specs:
bitfit_table1_dev and bitfit_table1_test (Table 1's (V) and (T) rows), bitfit_table2, bitfit_table3.

Their numbers are held, cell by cell and in order, to the text copy of the paper's tables in
/work/shared/papers/bitfit_tables.md (beside the checkout; the tests that read it skip where it is
absent); their averages to the rule the printed Avg. follows; and the rows the paper prints twice
(or copies from Houlsby et al.) to each other.
"""

import re
import statistics
from pathlib import Path

import pytest
import yaml

from peftbench.results.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
PAPER_TEXT = Path(__file__).resolve().parents[2] / "shared" / "papers" / "bitfit_tables.md"

needs_text = pytest.mark.skipif(not PAPER_TEXT.is_file(), reason="the text copy of BitFit's tables is not on this machine")

# spec -> (the heading of its markdown table in bitfit_tables.md, the prefix of its rows' labels there)
SPECS = {
    "bitfit_table1_dev": ("### Table 1 — cleaned markdown", "(V) "),
    "bitfit_table1_test": ("### Table 1 — cleaned markdown", "(T) "),
    "bitfit_table2": ("### Table 2 — cleaned markdown", ""),
    "bitfit_table3": ("### Table 3 — cleaned markdown", ""),
}
DEV_SPECS = ["bitfit_table1_dev", "bitfit_table2", "bitfit_table3"]
NINE = ["qnli", "sst2", "mnli_m", "mnli_mm", "cola", "mrpc", "stsb", "rte", "qqp"]


def spec(name):
    return load_spec(name, CONF)


def paper_lines():
    return PAPER_TEXT.read_text(encoding="utf-8").splitlines()


def markdown_table(heading):
    """The header cells and the body rows (lists of cells) of the first pipe table after `heading`."""
    lines = paper_lines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    first = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("|"))
    table = []
    for line in lines[first:]:
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    header, separator, *body = table
    assert set("".join(separator)) <= {"-", ":"}
    return header, body


def printed_rows(name):
    heading, prefix = SPECS[name]
    header, body = markdown_table(heading)
    rows = [row for row in body if row[0].startswith(prefix) and row[0] != "Train size"]
    return header, [[row[0][len(prefix) :], *row[1:]] for row in rows]


def printed(cell):
    """'91.7±0.1' -> (91.7, '0.1'); '84.1' -> (84.1, None)."""
    found = re.fullmatch(r"(\d+(?:\.\d+)?)(?:±(\d*\.?\d+))?", cell)
    assert found, cell
    return float(found.group(1)), found.group(2)


def verbatim_lines():
    """The lines inside the file's ``` blocks (the pypdf extraction, as read)."""
    inside, out = False, []
    for line in paper_lines():
        if line.startswith("```"):
            inside = not inside
        elif inside:
            out.append(line)
    return out


# --- the specs against bitfit_tables.md -----------------------------------------------------


@needs_text
def test_the_text_copy_is_of_arxiv_v5_as_the_specs_say():
    assert "`arXiv:2106.10199v5 [cs.LG] 5 Sep 2022`" in PAPER_TEXT.read_text(encoding="utf-8")
    for name in SPECS:
        source = spec(name).source
        assert (source.arxiv, source.version) == ("2106.10199", "v5"), name
    assert [spec(name).source.table for name in SPECS] == ["1", "1", "2", "3"]


@needs_text
@pytest.mark.parametrize("name", SPECS)
def test_columns_are_the_printed_header_in_order(name):
    header, _ = printed_rows(name)
    loaded = spec(name)
    assert header[1] == "%Param"
    assert header[2:] == [column.label for column in loaded.columns] + [loaded.average.label]
    assert [column.id for column in loaded.columns] == NINE


@needs_text
@pytest.mark.parametrize("name", SPECS)
def test_every_number_is_the_printed_one_cell_by_cell_in_order(name):
    _, rows = printed_rows(name)
    loaded = spec(name)
    ids = [column.id for column in loaded.columns] + [loaded.average.id]
    assert len(rows) == len(loaded.rows)
    for cells, row in zip(rows, loaded.rows):
        assert row.label == cells[0]
        assert row.paper_params == cells[1], row.label
        assert len(cells[2:]) == len(ids), row.label
        for column_id, cell in zip(ids, cells[2:]):
            value, spread = printed(cell)
            assert row.paper[column_id] == value, (row.label, column_id)
            assert row.paper_spread.get(column_id) == spread, (row.label, column_id)


@needs_text
def test_table1_splits_into_its_v_and_t_rows_and_nothing_else():
    _, body = markdown_table(SPECS["bitfit_table1_dev"][0])
    labels = [row[0] for row in body]
    assert labels[0] == "Train size"  # the training-set sizes, not a result row
    encoded = ["(V) " + r.label for r in spec("bitfit_table1_dev").rows] + ["(T) " + r.label for r in spec("bitfit_table1_test").rows]
    assert labels[1:] == encoded


@needs_text
def test_the_markdown_tables_are_the_verbatim_extraction():
    # The markdown was generated from the pypdf lines; each of its rows is one of those lines once
    # the extraction's stray space before '±' is closed up.
    lines = {line.replace(" ±", "±") for line in verbatim_lines()}
    for name in SPECS:
        for cells in markdown_table(SPECS[name][0])[1]:
            if cells[0] != "Train size":
                assert " ".join(cells) in lines, cells[0]


PAPER_METRICS = {"acc.": "accuracy", "Matthews corr.": "mcc", "F1": "f1", "Spearman corr.": "spearman"}
PAPER_TASKS = {"QNLI": "qnli", "SST-2": "sst2", "MNLI": "mnli", "CoLA": "cola", "MRPC": "mrpc", "STS-B": "stsb", "RTE": "rte", "QQP": "qqp"}


@needs_text
def test_metrics_are_the_papers_table_5():
    lines = verbatim_lines()
    start = lines.index("Task Name Metric")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("Table 5:"))
    metrics = {}
    for line in lines[start + 1 : end]:
        task, metric = line.split(" ", 1)
        metrics[PAPER_TASKS[task]] = metric
    assert metrics.pop("mnli") == "matched acc./mismatched acc."
    for name in SPECS:
        for column in spec(name).columns:
            if column.task == "mnli":
                assert column.metric == "accuracy"
                assert column.split.endswith("_matched" if column.id == "mnli_m" else "_mismatched")
            else:
                assert column.metric == PAPER_METRICS[metrics[column.task]], (name, column.id)


# --- averages ---------------------------------------------------------------------------------


def eight_task_mean(p):
    """The mean over the 8 tasks, MNLI counted once as the mean of matched and mismatched."""
    mnli = (p["mnli_m"] + p["mnli_mm"]) / 2
    return statistics.mean([p["qnli"], p["sst2"], mnli, p["cola"], p["mrpc"], p["stsb"], p["rte"], p["qqp"]])


# Printed to 0.1: each cell is off its true value by at most 0.05, so are MNLI's mean and the mean of
# the 8 tasks, and the printed average by another 0.05: they may differ by 0.1.
ROUNDING = 0.1
OFF = {("bitfit_table1_test", "Full-FT‡")}  # the one printed Avg. no rule gives (see the spec)


@pytest.mark.parametrize("name", SPECS)
def test_avg_is_the_mean_over_eight_tasks_with_mnli_averaged_first(name):
    loaded = spec(name)
    assert loaded.average.columns is None and "8 GLUE tasks" in loaded.average.note
    for row in loaded.rows:
        gap = abs(eight_task_mean(row.paper) - row.paper["avg"])
        if (name, row.label) in OFF:
            assert gap > 0.3, row.label
        else:
            assert gap <= ROUNDING + 1e-9, (row.label, eight_task_mean(row.paper))


@pytest.mark.parametrize("name", SPECS)
def test_avg_is_not_the_plain_mean_of_the_nine_columns_so_the_spec_notes_why(name):
    # A spec's recomputed average is the plain mean of its columns; here it misses by more than the
    # rounding in at least one row of every table, hence a note rather than columns.
    loaded = spec(name)
    gaps = [abs(statistics.mean(row.paper[i] for i in NINE) - row.paper["avg"]) for row in loaded.rows]
    assert max(gaps) > ROUNDING
    assert loaded.average.note and not loaded.average.columns


def test_full_ft_double_dagger_avg_fits_neither_rule():
    row = next(r for r in spec("bitfit_table1_test").rows if r.label == "Full-FT‡")
    assert row.paper["avg"] == 81.8
    assert eight_task_mean(row.paper) == pytest.approx(81.4875)
    assert statistics.mean(row.paper[i] for i in NINE) == pytest.approx(82.0222, abs=1e-4)
    assert "Full-FT‡" in spec("bitfit_table1_test").average.note


def test_frozen_row_is_where_the_plain_mean_misses_most():
    row = next(r for r in spec("bitfit_table3").rows if r.label == "Frozen")
    assert statistics.mean(row.paper[i] for i in NINE) == pytest.approx(60.0333, abs=1e-4)
    assert row.paper["avg"] == 62.1 and eight_task_mean(row.paper) == pytest.approx(62.15)


# --- rows the paper prints twice, and rows copied from Houlsby et al. -------------------------


def rows_of(name):
    return {row.label: row for row in spec(name).rows}


def same_numbers(a, b):
    return a.paper == b.paper and a.paper_spread == b.paper_spread and a.paper_params == b.paper_params


def test_table2_bert_large_rows_are_table1_dev_rows():
    t1, t2 = rows_of("bitfit_table1_dev"), rows_of("bitfit_table2")
    assert same_numbers(t2["BL Full-FT"], t1["Full-FT"])
    assert same_numbers(t2["BL BitFit"], t1["BitFit"])


def test_table3_full_ft_and_bitfit_rows_are_table2_bert_base_rows():
    t2, t3 = rows_of("bitfit_table2"), rows_of("bitfit_table3")
    assert same_numbers(t3["Full-FT"], t2["BB Full-FT"])
    assert same_numbers(t3["BitFit"], t2["BB BitFit"])


def test_double_dagger_test_rows_are_houlsby_table1_cells():
    # Caption: ‡ rows are taken from Houlsby et al. (2019). Their nine cells are that paper's Table 1;
    # its Total (the GLUE server score) is not BitFit's Avg.
    bitfit, houlsby = rows_of("bitfit_table1_test"), rows_of("houlsby_table1")
    for ours, theirs in (("Full-FT‡", "BERT-large fine-tune"), ("Adapters‡", "Adapters (8-256)")):
        assert [bitfit[ours].paper[i] for i in NINE] == [houlsby[theirs].paper[i] for i in NINE], ours
        assert bitfit[ours].paper_params == houlsby[theirs].paper_params
        assert bitfit[ours].paper["avg"] != houlsby[theirs].paper["total"]
        assert (bitfit[ours].model, bitfit[ours].method, bitfit[ours].match) == (
            houlsby[theirs].model,
            houlsby[theirs].method,
            houlsby[theirs].match,
        )


# --- what the rows run ------------------------------------------------------------------------

METHODS = {
    "Full-FT": ("full", {}),
    "Full-FT†": ("full", {}),
    "Full-FT‡": ("full", {}),
    "BitFit": ("bitfit", {"roles": None}),
    "Diff-Prune†": ("diff_prune", {}),
    "Adapters‡": ("houlsby", {}),
    "bm2,bq": ("bitfit", {"roles": ["attn.q", "ffn.in"]}),
    "bm2": ("bitfit", {"roles": ["ffn.in"]}),
    "bq": ("bitfit", {"roles": ["attn.q"]}),
    "Frozen": ("head", {}),
    "rand uniform": ("rand_uniform", {}),
    "rand row/col": ("rand_rowcol", {}),
}
MODELS = {"BB": "bert-base", "BL": "bert-large", "Ro": "roberta-base"}


@pytest.mark.parametrize("name", SPECS)
def test_rows_name_the_papers_model_method_and_bias_subset(name):
    for row in spec(name).rows:
        if name == "bitfit_table2":
            prefix, label = row.label.split(" ", 1)
            model = MODELS[prefix]
        else:
            label, model = row.label, "bert-large" if name.startswith("bitfit_table1") else "bert-base"
        assert row.model == model, row.label
        assert (row.method, row.match) == METHODS[label], row.label


def test_bm2_bq_row_is_the_bitfit_qm2_preset():
    preset = yaml.safe_load((CONF / "method" / "bitfit_qm2.yaml").read_text())
    row = rows_of("bitfit_table3")["bm2,bq"]
    assert sorted(row.match["roles"]) == sorted(preset["roles"])


def test_splits_statistics_and_seeds():
    for name in DEV_SPECS:
        loaded = spec(name)
        assert not any(column.split.startswith("test") for column in loaded.columns), name
        assert (loaded.statistic, loaded.seeds) == ("mean", 5), name  # appendix A.2: mean of 5 seeds
    test = spec("bitfit_table1_test")
    assert all(column.split.startswith("test") for column in test.columns)
    assert test.seeds is None  # the paper states nothing about its test submissions


@pytest.mark.parametrize("name", SPECS)
def test_no_cell_is_bold_since_the_source_cannot_show_it(name):
    assert all(row.bold == () for row in spec(name).rows)
