"""WikiSQL's official logical-form accuracy, from the official code itself, without the tables DB.

    python scripts/reference/wikisql_lf_accuracy.py --wikisql DIR SOURCE_FILE PRED_FILE [--ordered]

DIR is a checkout of github.com/salesforce/WikiSQL (its ``lib/query.py`` and ``lib/common.py``;
checked with 7857cfd8aefcc9823245c370f9e39ecd55745ea6). The loop is ``evaluate.py``'s (same
commit, blob f530665b): SOURCE_FILE holds gold lines (``{"table_id", "question", "sql"}``),
PRED_FILE one line per gold line, ``{"query": {"sel", "agg", "conds"}}`` or ``{"error": …}``, and a
line counts when ``Query.from_dict(pred) == Query.from_dict(gold)``. It leaves out what needs the
release's SQLite tables: ``evaluate.py`` builds a ``DBEngine`` (which imports ``records`` and
``babel``) to execute both queries for ``ex_accuracy``; ``lf_accuracy`` needs only ``lib.query``.

Prints JSON: ``lf_accuracy``, ``exact_match`` (one boolean per line) and ``gold_repr``
(``repr(Query)`` of each gold query: the SQL text peftbench's wikisql task trains on). The tests
compare peftbench's scorer with a stored output of this script (``tests/data/wikisql/``), and with
a fresh one when ``WIKISQL_REPO`` names a checkout.
"""

from __future__ import annotations

import json
import sys
from argparse import ArgumentParser


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wikisql", required=True, help="a checkout of salesforce/WikiSQL (holding lib/query.py)")
    parser.add_argument("source_file")
    parser.add_argument("pred_file")
    parser.add_argument("--ordered", action="store_true", help="compare the conditions in order (evaluate.py's flag)")
    args = parser.parse_args()
    sys.path.insert(0, args.wikisql)
    from lib.query import Query  # the official class, from the checkout

    exact_match, gold_repr = [], []
    with open(args.source_file, encoding="utf-8") as fs, open(args.pred_file, encoding="utf-8") as fp:
        for ls, lp in zip(fs, fp):
            eg, ep = json.loads(ls), json.loads(lp)
            qg = Query.from_dict(eg["sql"], ordered=args.ordered)
            qp = None if ep.get("error", None) else Query.from_dict(ep["query"], ordered=args.ordered)
            exact_match.append(qp == qg)
            gold_repr.append(repr(qg))
    print(json.dumps({"lf_accuracy": sum(exact_match) / len(exact_match), "exact_match": exact_match,
                      "gold_repr": gold_repr}, indent=1, ensure_ascii=False))  # fmt: skip


if __name__ == "__main__":
    main()
