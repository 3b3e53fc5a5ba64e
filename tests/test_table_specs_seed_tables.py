"""Four table specs against the lecture decks that print their tables, cell by cell, in order.

- conf/table/lora_table4_gpt3.yaml: LoRA (Hu et al., arXiv 2106.09685v2) Table 4, GPT-3 175B on
  WikiSQL, MNLI-m and SAMSum, printed in seed 001_b72434ba3235ae5c.txt as one tab-separated line
  per row: method, parameter count, WikiSQL, MNLI-m, "R1/R2/RL" (bold as <b>, underline as <u>).
- conf/table/hyperformer_ablation.yaml: Hyperformer (Karimi Mahabadi et al., arXiv 2106.04489)
  Table 4, the ablations, printed in seed 002_7effa339caa18948.txt as "variant<TAB>GLUE" lines.
- conf/table/hyperformer_fewshot.yaml: Hyperformer Table 3, few-shot domain transfer, printed in
  the same seed as "data set<TAB>k<TAB>T5<TAB>Adapters<TAB>Hyperformer++" lines (the data set only
  on its first line), cells "mean \\pm std"; the spec transposes it.
- conf/table/prompt_tuning_domain_transfer.yaml: prompt tuning (Lester et al., arXiv 2104.08691)
  Table 1, SQuAD -> MRQA out-of-domain F1, printed in seed 003_76270c60e04718bc.txt as one line per
  dataset (dataset, domain, model tuning, prompt tuning, Δ); the spec transposes it.

Every value, printed spread, bold cell and parameter count of the three specs is checked against
the seed lines; the tests skip where the seed decks are not on the machine. What the seeds do not
print (the configs behind the counts, which rows match which runs) is checked from the specs and
the method configs.
"""

import re
from pathlib import Path

import pytest
import yaml

from peftbench.results.render import RENDERERS, format_count
from peftbench.results.spec import load_spec
from peftbench.results.table import build_table

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"

LORA_SEED = "001_b72434ba3235ae5c.txt"
HYPERFORMER_SEED = "002_7effa339caa18948.txt"
PROMPT_SEED = "003_76270c60e04718bc.txt"

SPECS = ("lora_table4_gpt3", "hyperformer_ablation", "hyperformer_fewshot", "prompt_tuning_domain_transfer")

# GPT-3 175B: 96 layers, d_model 12288 (the LoRA paper's counts, e.g. 2·96·12288·r for LoRA).
GPT3_LAYERS, GPT3_WIDTH = 96, 12288


def spec(name):
    return load_spec(name, CONF)


def seed_lines(name: str) -> list[str]:
    path = SEEDS / name
    if not path.is_file():
        pytest.skip(f"the seed deck {name} is not on this machine")
    return path.read_text(encoding="utf-8").splitlines()


def method_fields(method: str) -> set[str]:
    return set(yaml.safe_load((CONF / "method" / f"{method}.yaml").read_text(encoding="utf-8")))


_TAGS = re.compile(r"</?(?:b|u|sup|sub|i)>")


def plain(cell: str) -> str:
    """A seed cell without its HTML markup: '<u>7.1M</u>' -> '7.1M', 'Adapter<sup>H</sup>' -> 'AdapterH'."""
    return _TAGS.sub("", cell).strip()


def parse_cell(cell: str) -> tuple[float, str | None, bool]:
    """'<b>66.8</b> ±2.9', '$77.9 \\pm 0.4$', '<b>79.1</b> $\\pm 0.3$', '73.8' -> (value, the
    spread as printed or None, bold)."""
    bold = "<b>" in cell
    text = plain(cell).replace("$", "").replace("\\pm", "±")
    found = re.fullmatch(r"\s*(-?\d+\.\d+)\s*(?:±\s*(\d*\.?\d+))?\s*", text)
    assert found, cell
    return float(found.group(1)), found.group(2), bold


# --- LoRA Table 4 (seed 001) ----------------------------------------------------------------

# The seed's method names (inside "GPT-3 ( ... )", markup removed) and the spec rows' methods.
LORA_METHODS = {
    "FT": "full",
    "BitFit": "bitfit",
    "PreEmbed": "prompt",
    "PreLayer": "prefix",
    "AdapterH": "houlsby",
    "LoRA": "lora",
}
LORA_IDS = ["wikisql", "mnli", "samsum_r1", "samsum_r2", "samsum_rl"]


def lora_seed_rows() -> list[list[str]]:
    """The 8 row lines of the GPT-3 table after "Results on GPT-3 175B:", split at tabs."""
    lines = seed_lines(LORA_SEED)
    start = lines.index("Results on GPT-3 175B:")
    header = next(i for i in range(start, len(lines)) if lines[i].startswith("Model&Method\t"))
    assert lines[header].split("\t") == ["Model&Method", "# Trainable Parameters", "WikiSQL", "MNLI-m", "SAMSum"]
    assert lines[header + 1].split("\t") == ["", "", "Acc. (%)", "Acc. (%)", "R1/R2/RL"]
    rows = []
    for line in lines[header + 2 :]:
        if not line.startswith("GPT-3 ("):
            break
        rows.append(line.split("\t"))
    assert len(rows) == 8 and all(len(cells) == 5 for cells in rows)
    return rows


def seed_method(label_cell: str) -> str:
    found = re.fullmatch(r"GPT-3 \(\s*(.+?)\s*\)", plain(label_cell))
    assert found, label_cell
    return found.group(1)


def test_lora_table4_is_the_seed_table_in_order():
    loaded = spec("lora_table4_gpt3")
    assert [c.id for c in loaded.columns] == LORA_IDS and loaded.average is None
    seed_rows = lora_seed_rows()
    assert len(loaded.rows) == len(seed_rows)
    for cells, row in zip(seed_rows, loaded.rows):
        assert row.model == "gpt3-175b", row.label
        assert row.method == LORA_METHODS[seed_method(cells[0])], row.label
        assert row.paper_params == plain(cells[1]), row.label
        wikisql, wikisql_spread, wikisql_bold = parse_cell(cells[2])
        mnli, mnli_spread, mnli_bold = parse_cell(cells[3])
        samsum = [float(value) for value in plain(cells[4]).split("/")]
        assert [row.paper[i] for i in LORA_IDS] == [wikisql, mnli, *samsum], row.label
        assert wikisql_spread is None and mnli_spread is None and row.paper_spread == {}, row.label
        bold = {"wikisql"} if wikisql_bold else set()
        bold |= {"mnli"} if mnli_bold else set()
        bold |= {"samsum_r1", "samsum_r2", "samsum_rl"} if "<b>" in cells[4] else set()
        assert set(row.bold) == bold, row.label


def test_lora_table4_bold_cells_are_the_seeds():
    bold = {row.label: set(row.bold) for row in spec("lora_table4_gpt3").rows if row.bold}
    assert bold == {
        "GPT-3 FT": {"wikisql"},
        "GPT-3 Adapter-H 40.1M": {"mnli"},
        "GPT-3 LoRA 4.7M": {"mnli", "samsum_r1", "samsum_r2", "samsum_rl"},
        "GPT-3 LoRA 37.7M": {"wikisql", "mnli"},
    }


def test_lora_table4_underlines_mark_the_methods_the_deck_presents_not_cells():
    # The seed underlines the method name and the count of the FT, BitFit, Adapter-H and LoRA rows
    # and no value. The deck's baseline list sets Fine-Tuning, BitFit and Adapter Tuning in bold,
    # prefix tuning not: the underlines are the lecturer's emphasis, which the spec keeps in a note.
    seed_rows = lora_seed_rows()
    for cells in seed_rows:
        assert ("<u>" in cells[0]) == ("<u>" in cells[1]), cells
        assert not any("<u>" in cell for cell in cells[2:]), cells
    underlined = {LORA_METHODS[seed_method(cells[0])] for cells in seed_rows if "<u>" in cells[0]}
    assert underlined == {"full", "bitfit", "houlsby", "lora"}
    lines = seed_lines(LORA_SEED)
    assert "  - ▶ **Fine-Tuning**" in lines and "  - ▶ **Adapter Tuning**" in lines
    assert "  - ▶ Bias-only/**BitFit**" in lines and "  - ▶ Prefix-embedding/Prefix-layer Tuning" in lines
    assert any("underline" in note for note in spec("lora_table4_gpt3").notes)


def test_lora_table4_counts_follow_from_the_matched_configs():
    rows = {row.label: row for row in spec("lora_table4_gpt3").rows}
    layers, d = GPT3_LAYERS, GPT3_WIDTH
    # Adapter-H: two adapters per block, 2·d·m + d + m each, no layer norm trained.
    for label in ("GPT-3 Adapter-H 7.1M", "GPT-3 Adapter-H 40.1M"):
        row = rows[label]
        m = row.match["bottleneck"]
        assert row.match["train_layer_norms"] is False and row.match["reduction_factor"] is None
        adapters = layers * 2 * (2 * d * m + d + m)
        assert format_count(adapters) == row.paper_params
        assert format_count(adapters + layers * 2 * 2 * d) != row.paper_params  # with the norms trained
        assert set(row.match) <= method_fields("houlsby")
    # LoRA: each printed budget is two configs (Appendix D.4), so neither row has a match.
    per_matrix = 2 * layers * d  # 2·L·d·r for one adapted matrix type at rank r
    assert format_count(per_matrix * 2) == format_count(2 * per_matrix * 1) == rows["GPT-3 LoRA 4.7M"].paper_params
    assert format_count(2 * per_matrix * 8) == format_count(4 * per_matrix * 4) == rows["GPT-3 LoRA 37.7M"].paper_params
    assert rows["GPT-3 LoRA 4.7M"].match == {} and rows["GPT-3 LoRA 37.7M"].match == {}
    # PreEmbed: d·(l_p + l_i) with l_p = 256, l_i = 8 (Appendix D.4).
    pre_embed = rows["GPT-3 PreEmbed"]
    assert format_count(d * (pre_embed.match["length"] + pre_embed.match["infix_length"])) == pre_embed.paper_params
    # PreEmbed and PreLayer name the paper's infix tokens, which neither method has: no run matches.
    assert set(pre_embed.match) - method_fields("prompt") == {"infix_length"}
    pre_layer = rows["GPT-3 PreLayer"]
    assert (pre_layer.match["length"], pre_layer.match["infix_length"]) == (8, 8)
    assert set(pre_layer.match) - method_fields("prefix") == {"infix_length"}
    assert rows["GPT-3 BitFit"].match == {"roles": None}


# --- Hyperformer Table 4 (seed 002) ---------------------------------------------------------


def hyperformer_seed_rows() -> list[tuple[str, float]]:
    lines = seed_lines(HYPERFORMER_SEED)
    start = lines.index("Model variant\tGLUE")
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        label, value = line.split("\t")
        rows.append((label, float(value)))
    caption = next(line for line in lines[start:] if line.startswith("Table "))
    assert caption == (
        "Table 4: Impact when removing different components of our framework. "
        "We report the average results on GLUE."
    )
    assert len(rows) == 6
    return rows


def test_hyperformer_ablation_is_the_seed_table_in_order():
    loaded = spec("hyperformer_ablation")
    assert loaded.source.table == "4" and [c.id for c in loaded.columns] == ["glue"] and loaded.average is None
    seed_rows = hyperformer_seed_rows()
    assert len(loaded.rows) == len(seed_rows)
    for (label, value), row in zip(seed_rows, loaded.rows):
        assert row.label == ("Hyperformer-small" if label == "HYPERFORMER _{SMALL}" else label)
        assert row.paper == {"glue": value}, row.label
        assert row.paper_spread == {} and row.bold == () and row.paper_params is None, row.label
        assert (row.model, row.method, row.training) == ("t5-small", "hyperformer", "multitask"), row.label


def test_hyperformer_ablation_full_row_is_the_glue_tables_average():
    # Table 4's HYPERFORMER_SMALL is Table 1's Avg of the same row (seed 002 line 224, last cell).
    line = next(line for line in seed_lines(HYPERFORMER_SEED) if line.startswith("HYPERFORMER _{SMALL}\t1.45×"))
    full = spec("hyperformer_ablation").rows[0]
    glue_table = {row.label: row for row in spec("hyperformer").rows}
    assert float(line.split("\t")[-1]) == full.paper["glue"] == glue_table["Hyperformer-small"].paper["avg"]


def test_hyperformer_ablation_rows_name_switches_the_method_lacks_except_projector_and_t5_layer_norm():
    fields = method_fields("hyperformer")
    assert {"train_layer_norms", "task_projector"} <= fields
    lacking = {row.label: set(row.match) - fields for row in spec("hyperformer_ablation").rows}
    assert lacking == {
        "Hyperformer-small": set(),
        "– Adapter blocks": {"adapter_blocks"},
        "– Conditional layer norm": {"conditional_layer_norm"},
        "– Task projector": set(),
        "– T5 Layer norm": set(),
        "– Conditional layer norm, T5 Layer norm": {"conditional_layer_norm"},
    }


def _multitask_record(run_id: str, method_config: dict, value: float) -> dict:
    return {
        "schema": 1, "run_id": run_id, "status": "complete", "finished": "2026-11-22T12:00:00+00:00",
        "model": "t5-small", "method": "hyperformer", "task": "glue", "seed": 1,
        "method_config": method_config,
        "metrics": {"best": {"glue/validation": {"average": value}}},
        "params": {"trainable_method": 1000},
        "data": {"sample": False, "subset": None},
        "parts": [{"task": "glue", "benchmark": "glue", "format": "rank_classification",
                   "data": {"sample": False, "subset": None}, "main": {"split": "validation", "metric": "average"}}],
    }  # fmt: skip


def test_hyperformer_ablation_rows_do_not_take_the_full_methods_runs():
    # A run of the method as configured fills the full row only; one with T5's layer norms frozen
    # fills the "– T5 Layer norm" row only, one without the task projector the "– Task projector"
    # row only; the rows removing a component the config cannot remove stay empty. A record from
    # before the projector existed (no task_projector field: it had none) fills no row. (The
    # column's task is paper-only; records with that task stand in for runs.)
    config = yaml.safe_load((CONF / "method" / "hyperformer.yaml").read_text(encoding="utf-8"))
    records = [
        _multitask_record("full", dict(config), 0.80),
        _multitask_record("frozen-norms", {**config, "train_layer_norms": False}, 0.70),
        _multitask_record("no-projector", {**config, "task_projector": False}, 0.75),
        _multitask_record("older", {k: v for k, v in config.items() if k != "task_projector"}, 0.60),
    ]
    table = build_table(spec("hyperformer_ablation"), records)
    filled = {row.label: (row.cells[0].n, row.cells[0].value) for row in table.rows}
    assert filled["Hyperformer-small"] == (1, pytest.approx(80.0))
    assert filled["– T5 Layer norm"] == (1, pytest.approx(70.0))
    assert filled["– Task projector"] == (1, pytest.approx(75.0))
    matched = ("Hyperformer-small", "– T5 Layer norm", "– Task projector")
    assert all(n == 0 for label, (n, _) in filled.items() if label not in matched)


# --- Prompt tuning Table 1 (seed 003) -------------------------------------------------------

PROMPT_IDS = ["squad", "textbookqa", "bioasq", "race", "relation_extraction", "duorc", "drop"]


def prompt_seed_rows() -> list[list[str]]:
    """The 7 dataset lines after the header "Dataset Domain Model Prompt $\\Delta$"."""
    lines = seed_lines(PROMPT_SEED)
    start = lines.index("Dataset\tDomain\tModel\tPrompt\t$\\Delta$")
    rows = [line.split("\t") for line in lines[start + 1 : start + 8]]
    assert [cells[0] for cells in rows] == ["SQuAD", "TextbookQA", "BioASQ", "RACE", "RE", "DuoRC", "DROP"]
    assert all(len(cells) == 5 for cells in rows) and not lines[start + 8].strip()
    return rows


def test_prompt_tuning_domain_transfer_is_the_seed_table_transposed():
    loaded = spec("prompt_tuning_domain_transfer")
    assert [c.id for c in loaded.columns] == PROMPT_IDS and loaded.average is None
    assert {c.metric for c in loaded.columns} == {"f1"} and {c.task for c in loaded.columns} == {"mrqa_squad"}
    assert [c.split for c in loaded.columns] == ["validation", *PROMPT_IDS[1:]]  # one run: SQuAD dev, then held-out splits
    model, prompt = loaded.rows
    assert (model.method, prompt.method) == ("full", "prompt") and model.model == prompt.model == "t5-xxl-lm-adapt"
    assert prompt.match == {"length": 100} and model.match == {}
    assert model.paper_params is None and prompt.paper_params is None  # the table prints no counts
    for column, (dataset, domain, model_cell, prompt_cell, _) in zip(loaded.columns, prompt_seed_rows()):
        assert column.label.startswith(f"{dataset} ({domain}"), column.label
        for row, cell in ((model, model_cell), (prompt, prompt_cell)):
            value, spread, bold = parse_cell(cell)
            assert row.paper[column.id] == value, (row.label, column.id)
            assert row.paper_spread.get(column.id) == spread, (row.label, column.id)
            assert (column.id in row.bold) == bold, (row.label, column.id)


def test_prompt_tuning_delta_is_prompt_minus_model_and_kept_in_the_notes():
    loaded = spec("prompt_tuning_domain_transfer")
    model, prompt = loaded.rows
    printed = []
    for column, cells in zip(loaded.columns, prompt_seed_rows()):
        delta = cells[4]
        assert float(delta) == pytest.approx(prompt.paper[column.id] - model.paper[column.id], abs=1e-9), column.id
        printed.append(f"{cells[0]} {delta}")
    assert any(", ".join(printed) in note for note in loaded.notes)


# --- all three --------------------------------------------------------------------------------


# --- Hyperformer few-shot domain transfer (seed 002) ----------------------------------------

FEWSHOT_TASKS = {"SciTail": "scitail", "CB": "cb", "IMDB": "imdb", "Yelp polarity": "yelp_polarity"}


def hyperformer_fewshot_seed_lines() -> list[tuple[str, int, list[str]]]:
    """(data set, k, the three cells) of each line of the seed's few-shot table, in order."""
    lines = seed_lines(HYPERFORMER_SEED)
    header = lines.index("Dataset\t# Samples\tT5 _{BASE}\tAdapters [†] /BASE\tHYPERFORMER++/BASE")
    found, dataset = [], None
    for line in lines[header + 1 : lines.index("Low-resource Learning")]:
        cells = line.split("\t")
        if len(cells) != 5 or not cells[1]:  # group headings and blank lines
            continue
        dataset = cells[0] or dataset
        found.append((dataset, int(cells[1]), cells[2:]))
    return found


def test_hyperformer_fewshot_is_the_seed_table_transposed():
    loaded = spec("hyperformer_fewshot")
    seed = hyperformer_fewshot_seed_lines()
    assert len(seed) == len(loaded.columns) == 26 and loaded.average is None
    assert [row.method for row in loaded.rows] == ["full", "houlsby", "hyperformer_pp"]
    for (dataset, k, cells), column in zip(seed, loaded.columns):
        assert (column.task, column.train_samples, column.metric) == (FEWSHOT_TASKS[dataset], k, "accuracy")
        assert column.split == ("validation" if column.task == "cb" else "test")
        for cell, row in zip(cells, loaded.rows):
            value, spread, bold = parse_cell(cell)
            assert (row.paper[column.id], row.paper_spread[column.id], bold) == (value, spread, False), (row.label, column.id)
    assert all(row.model == "t5-base" and not row.bold and row.paper_params is None for row in loaded.rows)


def test_every_row_comment_names_its_seed_line():
    for name, seed in (("lora_table4_gpt3", "seed 001"), ("hyperformer_ablation", "seed 002"),
                       ("hyperformer_fewshot", "seed 002"), ("prompt_tuning_domain_transfer", "seed 003")):  # fmt: skip
        text = (CONF / "table" / f"{name}.yaml").read_text(encoding="utf-8")
        before_rows = text.split("\n  - label:")[:-1]
        assert len(before_rows) == len(spec(name).rows)
        for chunk in before_rows:  # the comment lines just above each row
            above = []
            for line in reversed(chunk.splitlines()):
                if not line.strip().startswith("#"):
                    break
                above.insert(0, line)
            assert above and seed in above[0] and "line" in above[0], (name, above)


def test_the_specs_name_these_paper_only_models_tasks_and_unmatchable_fields():
    # What tests/test_table_specs.py must know for these specs: names no conf file has, and match
    # fields no method config has (each such row matches no run, on purpose).
    models = {path.stem for path in (CONF / "model").glob("*.yaml")}
    methods = {path.stem for path in (CONF / "method").glob("*.yaml")}
    tasks = {path.stem for path in (CONF / "task").glob("*.yaml")}
    loaded = [spec(name) for name in SPECS]
    assert {r.model for s in loaded for r in s.rows} - models == set()  # gpt3-175b counts; t5-xxl-lm-adapt loads
    assert {r.method for s in loaded for r in s.rows} - methods == set()
    assert {c.task for s in loaded for c in s.columns} - tasks == {"glue"}
    unmatchable = {
        (s.name, r.label): set(r.match) - method_fields(r.method)
        for s in loaded
        for r in s.rows
        if set(r.match) - method_fields(r.method)
    }
    from tests.test_table_specs import UNMATCHABLE

    assert unmatchable == {key: fields for key, fields in UNMATCHABLE.items() if key[0] in SPECS}
    assert set(unmatchable) == {
        ("lora_table4_gpt3", "GPT-3 PreEmbed"), ("lora_table4_gpt3", "GPT-3 PreLayer"),
        ("hyperformer_ablation", "– Adapter blocks"), ("hyperformer_ablation", "– Conditional layer norm"),
        ("hyperformer_ablation", "– Conditional layer norm, T5 Layer norm"),
    }  # fmt: skip


@pytest.mark.parametrize("fmt", ["md", "latex"])
@pytest.mark.parametrize("name", SPECS)
def test_renders_with_every_paper_number(name, fmt):
    loaded = spec(name)
    text = RENDERERS[fmt](build_table(loaded, []))
    for row in loaded.rows:
        for column in loaded.columns:
            value = row.paper[column.id]
            if value is not None:
                decimals = loaded.decimals if column.decimals is None else column.decimals
                assert f"{value:.{decimals}f}" in text, (row.label, column.id)
    if fmt == "md":
        assert all(row.label in text for row in loaded.rows)
