"""WikiSQL's logical form as its official library defines it (Zhong, Xiong & Socher 2017;
``lib/query.py`` of salesforce/WikiSQL@7857cfd8aefcc9823245c370f9e39ecd55745ea6, blob 12ea1b81).

A query is ``{"sel": column index, "agg": index into AGG_OPS, "conds": [[column index, index into
COND_OPS, value], ...]}``, the ``sql`` field of a WikiSQL line.

- ``query_text``: the query as ``Query.__repr__`` prints it, ``SELECT {agg} col{sel} FROM table``
  followed by `` WHERE col{i} {op} {value} AND ...`` (two spaces after SELECT when there is no
  aggregation, as the library prints it). The columns are the official database's own names: its
  tables are ``CREATE TABLE … (col0 text, col1 real, …)`` (``lib/table.py``).
- ``parse_query``: such a text back into a query, or None when it is not one. Keywords may be in
  any case (an uncased tokenizer writes "select"), spaces between them runs of any whitespace (a
  T5 tokenizer collapses "SELECT  col3"): neither changes the logical form. A value is everything
  after its operator and one space, up to `` AND col<j> <op> `` or the end, verbatim.
  A value that itself holds such a clause cannot be read back; no value of the dev and test files
  checked (``tests/test_wikisql_task.py``) does.
- ``same_query``: ``Query.__eq__`` as ``evaluate.py`` uses it for ``lf_accuracy``: the same ``sel``
  and ``agg``, and the conditions equal as a set of ``(column, operator, str(value).lower())``
  (the script's default; ``--ordered`` compares them as lists, which nothing here uses).
"""

from __future__ import annotations

import re

AGG_OPS = ("", "MAX", "MIN", "COUNT", "SUM", "AVG")  # Query.agg_ops
COND_OPS = ("=", ">", "<", "OP")  # Query.cond_ops

_OPERATOR = "|".join(re.escape(op) for op in COND_OPS)
_AGGREGATION = "|".join(op for op in AGG_OPS if op)
_FLAGS = re.DOTALL | re.IGNORECASE
_QUERY = re.compile(rf"SELECT\s+(?:({_AGGREGATION})\s+)?col(\d+)\s+FROM\s+table(?:\s+WHERE\s+(col.*))?", _FLAGS)
_CONDITION = re.compile(rf"col(\d+)\s+({_OPERATOR}) (.*)", _FLAGS)
_NEXT_CONDITION = re.compile(rf" AND (?=col\d+\s+(?:{_OPERATOR}) )", _FLAGS)


def query_text(sql: dict) -> str:
    """``Query.__repr__`` of ``sql``: the SQL text a model learns to write."""
    text = f"SELECT {AGG_OPS[sql['agg']]} col{sql['sel']} FROM table"
    if sql["conds"]:
        text += " WHERE " + " AND ".join(f"col{col} {COND_OPS[op]} {value}" for col, op, value in sql["conds"])
    return text


def parse_query(text: str) -> dict | None:
    """The query ``text`` prints (``query_text``'s inverse); None when ``text`` is no such query."""
    found = _QUERY.fullmatch(text)
    if found is None:
        return None
    aggregation, selected, where = found.groups()
    conditions = []
    for clause in _NEXT_CONDITION.split(where) if where is not None else ():
        condition = _CONDITION.fullmatch(clause)
        if condition is None:
            return None
        column, operator, value = condition.groups()
        conditions.append([int(column), COND_OPS.index(operator.upper()), value])
    return {"sel": int(selected), "agg": AGG_OPS.index((aggregation or "").upper()), "conds": conditions}


def logical_form(sql: dict) -> tuple:
    """What ``Query.__eq__`` compares: sel, agg and the set of (column, operator, lower-cased value)."""
    return sql["sel"], sql["agg"], frozenset((col, op, str(value).lower()) for col, op, value in sql["conds"])


def same_query(predicted: dict, gold: dict) -> bool:
    """``Query.from_dict(predicted) == Query.from_dict(gold)`` (unordered conditions)."""
    return logical_form(predicted) == logical_form(gold)
