"""WikiSQL (Zhong, Xiong & Socher, 2017, "Seq2SQL: Generating Structured Queries from Natural
Language using Reinforcement Learning"): questions about Wikipedia tables, each with the SQL query
that answers it; 56,355 train, 8,421 dev and 15,878 test questions. LoRA's GPT-3 tables (Hu et al.
2021, Tables 4 and 6) report the logical-form accuracy on the dev set (Table 4's caption: "the
logical form validation accuracy on WikiSQL"; Appendix C: "56,355/8,421 training/validation
examples").

A row is one question: ``text`` the question as released, ``label`` its SQL query as the official
library prints it (``wikisql_query.query_text``: ``SELECT  col3 FROM table WHERE col5 = Butler CC
(KS)``), ``sql`` the release's query (``sel``, ``agg``, ``conds``), and ``header``, ``types`` and
``table_id`` of the table it asks about. The LoRA paper encodes "context as x = {table schema,
query} and target as y = {SQL}" (Appendix C) and says no more; here the schema is each column's
name in the official database (``col0``, ``col1``, …, the names its SQL uses) with the header and
type it stands for, then the question (``prompt``): our choice, stated. Runs select their weights
on validation (dev) and score test once with them (``Task.test_splits``).

**Metric.** ``accuracy``: the logical-form accuracy of the official ``evaluate.py`` (its
``lf_accuracy``): the generated text is read back into a query (``parse_query``) and compared with
the gold one by the official ``Query.__eq__`` (same column, aggregation and conditions as a set,
values compared lower-cased); a text that is no query counts as wrong, as the script counts a
prediction with an ``error``. Its execution accuracy (``ex_accuracy``) is left out: it runs both
queries on the release's SQLite tables (``*.db``, cells lower-cased), which a run never reads.

Sources (``tasks/sources.py``): ``"dir"`` the release's ``data/`` folder (``data.tar.bz2``
unpacked): ``train.jsonl``, ``dev.jsonl`` and ``test.jsonl`` (one question a line: ``phase``,
``table_id``, ``question``, ``sql``) each beside its ``*.tables.jsonl`` (one table a line: ``id``,
``header``, ``types``, ``rows``, …), under ``DIR/wikisql/data/``, ``DIR/data/`` or in the folder
itself; ``"hub"`` ``datasets.load_dataset("Salesforce/wikisql", revision="refs/convert/parquet")``,
the hub's parquet export of its loading script's rows, which join each question to its table
(the main branch holds only that script, which ``datasets`` >= 4 refuses; that the export is still
served could not be checked offline). No copy of the tables files could be found offline, so no
slice ships (``peftbench/tasks/data/README.md``).
"""

from __future__ import annotations

import json
from pathlib import Path

from peftbench.errors import UserError
from peftbench.tasks.base import generation_task
from peftbench.tasks.sources import FIX, DataSource, wanted
from peftbench.tasks.wikisql_query import AGG_OPS, COND_OPS, parse_query, query_text, same_query

HUB_DATASET = "Salesforce/wikisql"
HUB_REVISION = "refs/convert/parquet"
SPLITS = (("train", "train"), ("validation", "dev"), ("test", "test"))  # split, the release's file stem
RESTORE = "restore it from WikiSQL's data.tar.bz2"


def prompt(row: dict) -> str:
    """The table schema, then the question (LoRA, Appendix C: x = {table schema, query})."""
    columns = " | ".join(f"col{i}: {name} ({kind})" for i, (name, kind) in enumerate(zip(row["header"], row["types"])))
    return f"Table: {columns}\nQuestion: {row['text']}\nSQL:"


def _row(question: str, sql: dict, table: dict) -> dict:
    return {"text": question, "label": query_text(sql), "sql": sql, "header": table["header"],
            "types": table["types"], "table_id": table["id"]}  # fmt: skip


def _read_folder(folder: Path, wanted_splits=None) -> dict[str, list[dict]]:
    splits = {}
    for split, stem in (item for item in SPLITS if wanted(item[0], wanted_splits)):
        questions, tables = folder / f"{stem}.jsonl", folder / f"{stem}.tables.jsonl"
        if split == "test" and not questions.is_file():
            continue
        for path in (questions, tables):
            if not path.is_file():
                raise UserError(f"missing {path} (WikiSQL {split}); {FIX} to the folder holding data.tar.bz2's data/")
        splits[split] = _read_questions(questions, _read_tables(tables), tables.name)
    return splits


def _json_lines(path: Path):
    """(line number, object) for every non-blank line of a JSON-lines file."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                raise UserError(f"{path} line {number} is not JSON ({error.msg}); {RESTORE}") from error


def _read_tables(path: Path) -> dict[str, dict]:
    tables = {}
    for number, table in _json_lines(path):
        if not (isinstance(table, dict) and isinstance(table.get("id"), str) and isinstance(table.get("header"), list)
                and isinstance(table.get("types"), list) and len(table["header"]) == len(table["types"])):  # fmt: skip
            raise UserError(f"{path} line {number} is no WikiSQL table (id, header and one type per column); {RESTORE}")
        tables[table["id"]] = table
    return tables


def _read_questions(path: Path, tables: dict[str, dict], tables_file: str) -> list[dict]:
    rows = []
    for number, line in _json_lines(path):
        where = f"{path} line {number}"
        if not isinstance(line, dict) or not isinstance(line.get("question"), str) or "sql" not in line:
            raise UserError(f"{where} has no question and sql; {RESTORE}")
        table = tables.get(line.get("table_id"))
        if table is None:
            raise UserError(f"{where} asks about table {line.get('table_id')!r}, which {tables_file} lacks; {RESTORE}")
        rows.append(_row(line["question"], _checked(line["sql"], len(table["header"]), where), table))
    return rows


def _checked(sql, columns: int, where: str) -> dict:
    """``sql`` when it is a query on a table of ``columns`` columns; else one line saying so."""
    def index(value, size):
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < size

    conds = sql.get("conds") if isinstance(sql, dict) else None
    if not (isinstance(conds, list) and index(sql.get("sel"), columns) and index(sql.get("agg"), len(AGG_OPS))
            and all(isinstance(c, list) and len(c) == 3 and index(c[0], columns) and index(c[1], len(COND_OPS))
                    for c in conds)):  # fmt: skip
        raise UserError(f"{where}: sql is no query on its table's {columns} columns (sel, agg, conds); {RESTORE}")
    return {"sel": sql["sel"], "agg": sql["agg"], "conds": conds}


HUB_COLUMNS = ("question", "table.id", "table.header", "table.types", "sql.sel", "sql.agg",
               "sql.conds.column_index", "sql.conds.operator_index", "sql.conds.condition")  # fmt: skip


def _hub_splits(dataset_dict) -> dict[str, list[dict]]:
    """The parquet export's rows: ``table`` is the question's table, ``sql.conds`` a dict of lists
    (``column_index``, ``operator_index``, ``condition`` as a string), as the loading script wrote
    them. Only the columns a row needs are read (not the tables' cells)."""
    return {split: [_hub_row(example) for example in data.flatten().select_columns(list(HUB_COLUMNS))]
            for split, data in dataset_dict.items()}  # fmt: skip


def _hub_row(example: dict) -> dict:
    conds = zip(example["sql.conds.column_index"], example["sql.conds.operator_index"], example["sql.conds.condition"])
    sql = {"sel": example["sql.sel"], "agg": example["sql.agg"], "conds": [list(cond) for cond in conds]}
    table = {"id": example["table.id"], "header": example["table.header"], "types": example["table.types"]}
    return _row(example["question"], sql, table)


def matches(predictions: list[str], rows: list[dict]) -> list[bool]:
    """Per row, whether the generated text is the gold query's logical form (evaluate.py's exact_match)."""
    found = []
    for text, row in zip(predictions, rows, strict=True):
        predicted = parse_query(text)
        found.append(predicted is not None and same_query(predicted, _gold(row)))
    return found


def _gold(row: dict) -> dict:
    """The row's query; a references file (``peftbench score wikisql --references``) gives its text."""
    if "sql" in row:
        return row["sql"]
    gold = parse_query(row["label"])
    if gold is None:
        raise UserError(f"reference {row['label']!r} is no WikiSQL query as lib/query.py prints it (SELECT … FROM table …)")
    return gold


def score(predictions: list[str], rows: list[dict]) -> dict[str, float]:
    """Logical-form accuracy: the fraction of generated queries equal to the gold ones (evaluate.py)."""
    if not rows:
        raise ValueError("no predictions to score")
    return {"accuracy": sum(matches(predictions, rows)) / len(rows)}


SOURCE = DataSource(
    what="WikiSQL", benchmark="wikisql", folder="data",
    files=tuple(f"{stem}{suffix}" for _, stem in SPLITS for suffix in (".jsonl", ".tables.jsonl")),
    hub_id=HUB_DATASET, hub_config=None, read_folder=_read_folder, read_hub=_hub_splits, hub_revision=HUB_REVISION,
)  # fmt: skip
TASKS = {"wikisql": generation_task("wikisql", "wikisql", SOURCE, score, prompt, ("accuracy",), has_embedded=False)}
