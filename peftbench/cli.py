"""The ``peftbench`` command: subcommands, kept thin.

Heavy imports (torch, transformers, datasets, peft) happen inside the commands that need them,
so ``peftbench --help`` and ``peftbench list`` answer at once. A ``UserError`` anywhere becomes one
line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from peftbench.errors import UserError

LISTABLE = ("methods", "tasks", "models", "tables", "experiments", "trainers")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="peftbench",
        description="Reproduce the benchmark tables of the parameter-efficient fine-tuning literature.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "run",
        help="one run, or a sweep with -m (Hydra overrides: model=… method=… task=… seed=…)",
        description="peftbench run [-m] [key=value …]; with no overrides, the offline demo.",
    )
    listing = commands.add_parser("list", help="what can be named: " + ", ".join(LISTABLE))
    listing.add_argument("what", choices=LISTABLE)
    table = commands.add_parser("table", help="a paper's table from the run records, beside the published numbers")
    table.add_argument("name", help="a table spec in conf/table/ (peftbench list tables)")
    table.add_argument("--results", default="results", help="the results folder (default: results)")
    table.add_argument("--format", default="md", choices=("md", "csv"), help="output format")
    table.add_argument("--out", help="write to this file instead of stdout")
    table.add_argument("--model", help="show the table's rows for another model (e.g. minilm-l6)")
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["run"]:
            from peftbench.launch import launch

            launch(argv[1:])
            return
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return
        {"list": cmd_list, "table": cmd_table}[args.command](args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def cmd_list(args) -> None:
    from peftbench.catalog import describe

    group = args.what.rstrip("s")
    for name, summary in describe(group):
        print(f"{name:<24} {summary}")


def cmd_table(args) -> None:
    from pathlib import Path

    from peftbench.config import CONF_DIR
    from peftbench.results.record import iter_records
    from peftbench.results.spec import load_spec
    from peftbench.results.table import build_table, render

    spec = load_spec(args.name, CONF_DIR)
    results = Path(args.results)
    records = iter_records(results) if results.is_dir() else []
    text = render(build_table(spec, records, model=args.model), args.format)
    if args.out:
        from peftbench.results.record import write_text_atomic

        write_text_atomic(Path(args.out), text)
    else:
        print(text, end="" if text.endswith("\n") else "\n")
