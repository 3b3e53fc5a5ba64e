"""The paper table specs in conf/table: they load, their averages agree with their columns within
the paper's rounding, they render in every format, and their numbers are the ones the seed decks
print (/work/shared/seeds, read here where a deck prints a table plainly).

Each spec's YAML says where its numbers come from; these tests hold the specs to that.
"""

import re
import statistics
from pathlib import Path

import pytest
import yaml

from peftbench.results.spec import list_tables, load_spec
from peftbench.results.table import build_table

from peftbench.results.render import RENDERERS

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SEEDS = REPO.parent / "shared" / "seeds"  # the project's lecture decks, beside the checkout

SPECS = list_tables(CONF)
EXPECTED = {
    "adapterfusion_table1",
    "bitfit_table1_dev",
    "bitfit_table1_test",
    "bitfit_table2",
    "bitfit_table3",
    "houlsby_table1",
    "houlsby_table2",
    "hyperformer",
    "hyperformer_ablation",
    "hyperformer_fewshot",
    "lora_rank_study",
    "lora_table2",
    "lora_table3",
    "lora_table4_gpt3",
    "prefix_table1_acl",
    "prefix_table1_arxiv",
    "prompt_tuning_domain_transfer",
    "prompt_tuning_qqp_mrpc",
    "ptuning_encoders",
    "ptuning_superglue",
    "tfew_raft",
}

# Models and methods that rows name although this project cannot run them: the rows carry the
# paper's numbers (and fill with --model X where the method exists).
PAPER_ONLY_MODELS = {
    "unstated",  # the P-tuning encoder ablation names no model
    "human",
    "pet-submission",
    "setfit-submission",
    "prior-work",  # prefix-tuning's quoted SOTA row
    "automl-tfhub",  # Houlsby Table 2's no-BERT baseline (Neural AutoML over TF-Hub embeddings)
}
PAPER_ONLY_METHODS = {
    "pet_ft",  # P-tuning's PET-FT baseline
    "human",
    "pet",
    "setfit",
    "sota",
    "automl",  # Houlsby Table 2's no-BERT baseline
    "diff_prune",  # BitFit's Diff-Prune rows: a learned L0 mask, which `sparse` does not learn
    "rand_uniform",  # BitFit Table 3's random parameter subsets
    "rand_rowcol",
}
PAPER_ONLY_TASKS = {
    "glue",  # Hyperformer's ablation: the GLUE average over 8 tasks, one number a run
}  # fmt: skip
# A match field that names no config field, so that the row matches no run, on purpose: the
# pre-existing Adpt-D rows (robust AdapterDrop, which no method config expresses; see the spec).
UNMATCHABLE = {
    ("lora_table2", "RoBERTa-base Adpt-D 0.3M"): {"adapter_drop"},
    ("lora_table2", "RoBERTa-base Adpt-D 0.9M"): {"adapter_drop"},
    # the LoRA paper's PreEmbed and PreLayer put tokens before and after the input (infix): neither
    # prompt nor prefix here has infix tokens
    ("lora_table4_gpt3", "GPT-3 PreEmbed"): {"infix_length"},
    ("lora_table4_gpt3", "GPT-3 PreLayer"): {"infix_length"},
    # Hyperformer's ablations: components no hyperformer config switches off
    ("hyperformer_ablation", "– Adapter blocks"): {"adapter_blocks"},
    ("hyperformer_ablation", "– Conditional layer norm"): {"conditional_layer_norm"},
    ("hyperformer_ablation", "– Conditional layer norm, T5 Layer norm"): {"conditional_layer_norm"},
}


def spec(name):
    return load_spec(name, CONF)


def seed_lines(name):
    return (SEEDS / name).read_text(encoding="utf-8").splitlines()


def first_number(cell):
    """The first decimal number of a seed table cell: '90.2±.3', '$\\textbf{95.1}_{\\pm .2}$',
    '87.1 <sub>±.0</sub>' all give their value."""
    found = re.search(r"\d+\.\d+", cell)
    return float(found.group()) if found else None


needs_seeds = pytest.mark.skipif(not SEEDS.is_dir(), reason="the seed decks are not on this machine")


# --- (a) every spec loads -------------------------------------------------------------------


def test_the_expected_specs_are_there():
    assert EXPECTED <= set(SPECS)


@pytest.mark.parametrize("name", SPECS)
def test_spec_loads_and_is_complete(name):
    loaded = spec(name)
    assert loaded.rows and loaded.columns
    assert loaded.source.version.strip()
    for row in loaded.rows:  # every column and the average have a value or an explicit null
        assert set(row.paper) == {c.id for c in loaded.columns} | (
            {loaded.average.id} if loaded.average else set()
        )


@pytest.mark.parametrize("name", [n for n in SPECS if any(row.preset or row.task_preset for row in spec(n).rows)])
def test_a_rows_preset_makes_runs_that_fill_the_row(name):
    """A row's preset (peftbench reproduce runs it; a row may give one per task) composes, on the
    row's model where there is a config for it and on the first of the columns' tasks it fills, to
    the row's method with a config that task's match accepts."""
    from peftbench.config import available
    from peftbench.launch import compose
    from peftbench.results.table import matches

    tasks = list(dict.fromkeys(column.task for column in spec(name).columns if column.task in available("task")))
    for row in (row for row in spec(name).rows if row.preset or row.task_preset):
        model = [f"model={row.model}"] if row.model in available("model") else []
        first_task = {row.preset_for(task): task for task in reversed(tasks)}  # each preset once
        for preset, task in first_task.items():
            assert preset in available("experiment"), (row.label, task)
            method = compose([f"experiment={preset}", *model, f"task={task}"]).method
            assert method.name == row.method and matches(dict(method), row.match_for(task)), (row.label, task, dict(method))


@pytest.mark.parametrize("name", SPECS)
def test_rows_name_real_models_methods_tasks_and_config_fields(name):
    loaded = spec(name)
    models = {path.stem for path in (CONF / "model").glob("*.yaml")}
    methods = {path.stem for path in (CONF / "method").glob("*.yaml")}
    tasks = {path.stem for path in (CONF / "task").glob("*.yaml")}
    for column in loaded.columns:
        assert column.task in tasks | PAPER_ONLY_TASKS, column.id
    for row in loaded.rows:
        assert row.model in models | PAPER_ONLY_MODELS, row.label
        assert row.method in methods | PAPER_ONLY_METHODS, row.label
        if row.method in methods:  # a match names fields of the method's config
            fields = set(yaml.safe_load((CONF / "method" / f"{row.method}.yaml").read_text()))
            unknown = {key for column in loaded.columns for key in row.match_for(column.task)} - fields
            assert unknown == UNMATCHABLE.get((name, row.label), set()), row.label
        else:
            assert not any(row.match_for(column.task) for column in loaded.columns), row.label


def test_only_the_ptuning_encoder_ablation_is_few_shot():
    assert {name: spec(name).data for name in SPECS if spec(name).data != "full"} == {
        "ptuning_encoders": "fewglue"
    }


# --- (b) averages against their columns -----------------------------------------------------

# When a paper prints each column and the average to the same last decimal place u, every column
# is off its true value by at most u/2, so their mean is too, and the printed average is off the
# true mean by at most u/2: the printed average and the mean of the printed columns differ by at
# most u. That is each spec's tolerance (plus float noise).
TOLERANCE = {
    "lora_table2": 0.1,  # LoRA Table 2 prints every number to 0.1
    "hyperformer": 0.01,  # Hyperformer prints every number to 0.01
    "tfew_raft": 0.1,  # T-Few Table 11 and Table 2 print to 0.1
    "houlsby_table2": 0.1,  # Houlsby Table 2 prints its averages to 0.1
    "adapterfusion_table1": 0.01,  # AdapterFusion Table 1 prints every number to 0.01
}


@pytest.mark.parametrize("name", [n for n in SPECS if spec(n).average and spec(n).average.columns])
def test_published_average_is_the_mean_of_its_columns(name):
    loaded = spec(name)
    assert name in TOLERANCE, f"state {name}'s rounding in TOLERANCE"
    for row in loaded.rows:
        values = [row.paper[column_id] for column_id in loaded.average.columns]
        if row.paper[loaded.average.id] is None or None in values:
            continue
        mean = statistics.mean(values)
        assert abs(mean - row.paper[loaded.average.id]) <= TOLERANCE[name] + 1e-9, (row.label, mean)


def test_tfew_average_sits_at_the_edge_of_rounding():
    # Table 11's T-Few cells average 833.2 / 11 = 75.745..., which prints as 75.7; Table 2 prints
    # 75.8. Consistent only through the cells' own rounding (the gap, 0.055, is within 0.1).
    row = next(r for r in spec("tfew_raft").rows if r.label == "T-Few")
    cells = [row.paper[c.id] for c in spec("tfew_raft").columns]
    assert sum(cells) == pytest.approx(833.2) and round(statistics.mean(cells), 1) == 75.7
    assert row.paper["avg"] == 75.8


def test_ptuning_average_is_over_tasks_with_two_metric_tasks_averaged_first():
    # The paper's Avg. averages 7 tasks, CB = mean(acc, F1) and MultiRC = mean(EM, F1a); a plain mean
    # of the 9 columns misses by more than a point, so the spec gives a note, not columns. Printed to
    # 0.1: each task score is off by at most 0.05, so is their mean, and the print by 0.05: 0.1.
    loaded = spec("ptuning_superglue")
    assert loaded.average.columns is None and loaded.average.note
    for row in loaded.rows:
        p = row.paper
        tasks = [
            p["boolq"],
            (p["cb_acc"] + p["cb_f1"]) / 2,
            p["wic"],
            p["rte"],
            (p["multirc_em"] + p["multirc_f1a"]) / 2,
            p["wsc"],
            p["copa"],
        ]
        assert abs(statistics.mean(tasks) - p["avg"]) <= 0.1 + 1e-9, row.label
    first = loaded.rows[0].paper  # BERT-base CLS-FT: plain mean 64.9, printed 66.2
    plain = statistics.mean(first[c.id] for c in loaded.columns)
    assert plain == pytest.approx(64.93, abs=0.01) and first["avg"] == 66.2


def test_houlsby_total_is_the_glue_server_score_not_the_columns_mean():
    loaded = spec("houlsby_table1")
    assert loaded.average.columns is None and "server" in loaded.average.note
    for row in loaded.rows:  # the nine columns average 82.0, 81.5, 81.1 against 80.4, 80.0, 79.6
        mean = statistics.mean(row.paper[c.id] for c in loaded.columns)
        assert mean - row.paper["total"] > 1.0, row.label
    assert all(column.split.startswith("test") for column in loaded.columns)


# --- (c) every spec renders in every format -------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(RENDERERS))
@pytest.mark.parametrize("name", SPECS)
def test_spec_renders_without_runs(name, fmt):
    loaded = spec(name)
    text = RENDERERS[fmt](build_table(loaded, []))
    assert text.endswith("\n") and len(text.splitlines()) > len(loaded.rows)
    if fmt in ("md", "csv"):
        for row in loaded.rows:
            assert row.label in text


def _records_filling(loaded) -> list[dict]:
    """Two seeds of a complete record for every row x column of a spec, each with the row's match
    as its method config and the column's task, split, metric and few-shot size; the value encodes the cell
    (row i, column j, seed s: 0.5 + i/100 + j/1000 + s/10000), so misplaced runs show. A
    multi-task row gets one multi-task record per seed, with a part for each of the columns' tasks."""
    records = []
    for i, row in enumerate(loaded.rows):
        for seed in (1, 2):
            singles = []
            for j, column in enumerate(loaded.columns):
                value = 0.5 + i / 100 + j / 1000 + seed / 10_000
                singles.append({
                    "schema": 1, "run_id": f"{i}.{j}.{seed}", "status": "complete", "finished": "2026-11-22T12:00:00+00:00",
                    "model": row.model, "method": row.method, "task": column.task, "seed": seed,
                    "method_config": {"name": row.method, **row.match_for(column.task)},
                    "metrics": {loaded.checkpoint: {column.split: {column.metric: value}}},
                    "params": {"trainable_method": 1000 + i},
                    "data": {"sample": False, "subset": None if loaded.data == "full" else loaded.data},
                    "config": {"paper": {"arxiv": loaded.source.arxiv, "version": loaded.source.version},
                               "data": {"train_samples": column.train_samples}},
                })  # fmt: skip
            records += _as_one_multitask_run(singles) if row.training == "multitask" else singles
    return records


def _as_one_multitask_run(singles: list[dict]) -> list[dict]:
    """The single-task records of one seed merged into the record of one run over their tasks."""
    tasks = list(dict.fromkeys(record["task"] for record in singles))
    merged = {**singles[0], "task": "+".join(tasks), "run_id": singles[0]["run_id"] + ".multi", "metrics": {}}
    for record in singles:
        for checkpoint, splits in record["metrics"].items():
            for split, values in splits.items():
                merged["metrics"].setdefault(checkpoint, {}).setdefault(f"{record['task']}/{split}", {}).update(values)
    merged["parts"] = [{"task": task, "benchmark": "glue", "format": "rank_classification",
                        "data": singles[0]["data"], "main": {"split": "validation", "metric": "accuracy"}}
                       for task in tasks]  # fmt: skip
    return [merged]


@pytest.mark.parametrize("name", SPECS)
def test_spec_renders_from_records_with_every_cell_filled_where_it_should_be(name):
    loaded = spec(name)
    table = build_table(loaded, _records_filling(loaded))
    rows_by_match: dict = {}

    def key(row):  # rows with the same model, method, match (each task's) and training share their runs
        return row.model, row.method, repr([sorted(row.match_for(c.task).items()) for c in loaded.columns]), row.training

    for row in loaded.rows:
        rows_by_match.setdefault(key(row), []).append(row)
    for i, (row, built) in enumerate(zip(loaded.rows, table.rows)):
        sharing = rows_by_match[key(row)]
        for j, column in enumerate(loaded.columns):
            cell = built.cells[j]
            scale = loaded.scale if column.scale is None else column.scale
            # Each row's runs are its own two seeds, plus those of rows that match the same runs;
            # the statistic over the seeds' newest values (all "finished" alike: the last listed).
            assert cell.n == 2 and not cell.caveats, (row.label, column.id)
            if len(sharing) == 1:
                expected = statistics.median([0.5 + i / 100 + j / 1000 + s / 10_000 for s in (1, 2)]) * scale
                assert cell.value == pytest.approx(expected), (row.label, column.id)
    for fmt, render in RENDERERS.items():
        text = render(table)
        assert text.endswith("\n") and "(n=2)" in text or fmt == "csv", fmt


# --- (d) the numbers against the seed decks -------------------------------------------------


@needs_seeds
def test_lora_table2_rows_are_the_seed_table_in_order():
    # seed 003 prints Table 2 (arXiv v2) as 14 lines, one per row, in the spec's row order: the
    # method, the parameter count, then 8 columns and Avg. with their spreads in various markups.
    lines = seed_lines("003_76270c60e04718bc.txt")
    start = next(i for i, line in enumerate(lines) if line.startswith("RoB <sub>base</sub> (FT)*"))
    table = lines[start : start + 14]
    loaded = spec("lora_table2")
    ids = [c.id for c in loaded.columns] + ["avg"]
    assert len(loaded.rows) == 14
    for line, row in zip(table, loaded.rows):
        cells = line.split("\t")
        assert cells[1] == row.paper_params, row.label
        assert [first_number(cell) for cell in cells[2:]] == [row.paper[i] for i in ids], row.label


@needs_seeds
def test_lora_rank_study_is_the_seed_table():
    # seed 001 prints the rank study as six lines: WikiSQL then MultiNLI, weight types Wq, (Wq, Wv),
    # (Wq, Wk, Wv, Wo), and the five ranks as the last five tab-separated cells.
    lines = [line for line in seed_lines("001_b72434ba3235ae5c.txt") if "\t$W_q" in line]
    assert len(lines) == 6
    printed = [[float(cell) for cell in line.split("\t")[-5:]] for line in lines]
    rows = spec("lora_rank_study").rows  # 3 weight types x 5 ranks, in that order
    for k in range(3):
        block = rows[5 * k : 5 * k + 5]
        assert [row.paper["wikisql"] for row in block] == printed[k]
        assert [row.paper["mnli"] for row in block] == printed[3 + k]
        assert [row.match["r"] for row in block] == [1, 2, 4, 8, 64]


@needs_seeds
@pytest.mark.parametrize("seed", ["000_c561985974e3658b.txt", "002_7effa339caa18948.txt"])
def test_houlsby_table1_is_the_seed_table(seed):
    # Both decks print Table 1 plainly: label, total params, trained params, 9 columns, Total.
    loaded = spec("houlsby_table1")
    lines = [line for line in seed_lines(seed) if "\t9.0×\t" in line or "\t1.3×\t" in line or "\t1.2×\t" in line]
    assert len(lines) == 3
    for line, row in zip(lines, loaded.rows):
        cells = line.split("\t")
        assert cells[2] == row.paper_params
        assert [float(cell) for cell in cells[3:]] == [row.paper[c.id] for c in loaded.columns] + [
            row.paper["total"]
        ]


@needs_seeds
def test_hyperformer_is_the_seed_table_in_order():
    # seed 002 prints 12 lines: label, total params, trained params, then CoLA, SST-2, MRPC a/b,
    # QQP a/b, STS-B a/b, MNLI, QNLI, RTE, Avg.
    lines = [line for line in seed_lines("002_7effa339caa18948.txt") if line.count("\t") == 11 and "%" in line]
    loaded = spec("hyperformer")
    assert len(lines) == len(loaded.rows) == 12
    ids = [c.id for c in loaded.columns] + ["avg"]
    for line, row in zip(lines, loaded.rows):
        cells = line.split("\t")
        assert cells[2] == row.paper_params, row.label
        printed = [float(value) for cell in cells[3:] for value in cell.split("/")]
        assert printed == [row.paper[i] for i in ids], row.label


@needs_seeds
def test_ptuning_superglue_is_the_seed_tables_in_order():
    lines = [
        line
        for line in seed_lines("003_76270c60e04718bc.txt")
        if re.match(r"^[^\t]*\t(CLS-FT|PET-FT|P-tuning)", line)
    ]
    loaded = spec("ptuning_superglue")
    assert len(lines) == len(loaded.rows) == 12
    ids = [c.id for c in loaded.columns] + ["avg"]
    for line, row in zip(lines, loaded.rows):
        cells = line.split("\t")
        assert [float(cell) for cell in cells[2:]] == [row.paper[i] for i in ids], row.label


PREFIX_SEED_ROWS = ["FINE-TUNE", "FT-TOP2", "ADAPTER(3%)", "ADAPTER(0.1%)", "Prefix(0.1%)", "FINE-TUNE", "Prefix", "SOTA"]


@needs_seeds
def test_prefix_arxiv_is_the_seed_table_with_three_cells_from_lora():
    # seed 003 prints prefix-tuning's arXiv v1 Table 1 as 8 lines of 20 cells ('-' for none). Three
    # cells of the first line are blank; the spec fills them from the LoRA paper's copy (Table 14).
    lines = [re.sub(r"</?b>", "", line) for line in seed_lines("003_76270c60e04718bc.txt")]
    table = [line for line in lines if line.split("\t")[0] in set(PREFIX_SEED_ROWS) and line.count("\t") == 20]
    loaded = spec("prefix_table1_arxiv")
    assert [line.split("\t")[0] for line in table] == PREFIX_SEED_ROWS
    ids = [c.id for c in loaded.columns]
    for line, row in zip(table, loaded.rows):
        cells = line.split("\t")[1:]
        blank = {i for i, cell in zip(ids, cells) if cell == ""}
        assert blank == ({"webnlg_met_u", "webnlg_met_a", "webnlg_ter_s"} if row.label == "GPT-2 M FINE-TUNE" else set())
        for column_id, cell in zip(ids, cells):
            if cell:
                assert row.paper[column_id] == (None if cell == "-" else float(cell)), (row.label, column_id)
    first = loaded.rows[0].paper
    assert (first["webnlg_met_u"], first["webnlg_met_a"], first["webnlg_ter_s"]) == (0.30, 0.38, 0.33)


@needs_seeds
def test_tfew_averages_are_the_seed_table_2():
    lines = dict(
        line.split("\t") for line in seed_lines("003_76270c60e04718bc.txt") if re.search(r"\t\d+\.\d%$", line)
    )
    printed = {
        "T-Few": lines["T-Few"],
        "Human baseline": lines["Human baseline [2]"],
        "PET": lines["PET [50]"],
        "SetFit": lines["SetFit [51]"],
        "GPT-3 (in-context)": lines["GPT-3 [4]"],
    }
    for row in spec("tfew_raft").rows:
        assert f"{row.paper['avg']:.1f}%" == printed[row.label]


# --- cross-checks between specs (numbers one paper copies from another) ---------------------

E2E = ["bleu", "nist", "meteor", "rouge_l", "cider"]


def test_lora_table3_starred_rows_are_prefix_tuning_arxiv_v1():
    # The LoRA paper's * rows on GPT-2 come from Li & Liang (2021), arXiv v1 (the microsoft/LoRA
    # README: "Non-LoRA baselines, except for adapter on GPT-2 large, are taken from Li and Liang").
    lora = {row.label: row.paper for row in spec("lora_table3").rows}
    prefix = {row.label: row.paper for row in spec("prefix_table1_arxiv").rows}
    copied = {
        "GPT-2 M FT": "GPT-2 M FINE-TUNE",
        "GPT-2 M Adapter-L 0.37M": "GPT-2 M ADAPTER(0.1%)",
        "GPT-2 M Adapter-L 11.09M": "GPT-2 M ADAPTER(3%)",
        "GPT-2 M FT-Top2": "GPT-2 M FT-TOP2",
        "GPT-2 M PreLayer": "GPT-2 M Prefix(0.1%)",
        "GPT-2 L FT": "GPT-2 L FINE-TUNE",
        "GPT-2 L PreLayer": "GPT-2 L Prefix",
    }
    for lora_label, prefix_label in copied.items():
        assert [lora[lora_label][m] for m in E2E] == [prefix[prefix_label][m] for m in E2E], lora_label


def test_prefix_acl_differs_from_arxiv_only_where_its_note_says():
    arxiv = {row.label.replace("FINE-TUNE", "FT"): row.paper for row in spec("prefix_table1_arxiv").rows}
    acl = {row.label.replace("FT-FULL", "FT"): row.paper for row in spec("prefix_table1_acl").rows}
    assert arxiv.keys() == acl.keys()
    differs = {
        (label, column)
        for label in arxiv
        for column in arxiv[label]
        if arxiv[label][column] != acl[label][column]
    }
    webnlg = {"webnlg_bleu_s", "webnlg_bleu_u", "webnlg_bleu_a", "webnlg_met_s", "webnlg_ter_u", "webnlg_ter_a"}
    assert differs == (
        {("GPT-2 M FT", c) for c in E2E + sorted(webnlg)}
        | {("GPT-2 M ADAPTER(3%)", c) for c in ("webnlg_bleu_s", "webnlg_bleu_u", "webnlg_bleu_a", "webnlg_ter_u")}
        | {("GPT-2 M Prefix(0.1%)", c) for c in E2E + ["webnlg_bleu_u", "webnlg_bleu_a", "webnlg_met_u", "webnlg_ter_u", "webnlg_ter_a"]}
    )
    assert spec("prefix_table1_arxiv").source.version == "v1" and "ACL" in spec("prefix_table1_acl").source.version
    assert (acl["GPT-2 M FT"]["bleu"], arxiv["GPT-2 M FT"]["bleu"]) == (68.8, 68.2)
