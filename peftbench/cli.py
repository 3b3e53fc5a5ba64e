"""The ``peftbench`` command: subcommands, kept thin.

Heavy imports (torch, transformers, datasets, peft) happen inside the commands that need them,
so ``peftbench --help`` and ``peftbench list`` answer at once. A ``UserError`` anywhere becomes one
line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from peftbench.errors import UserError

LISTABLE = ("methods", "tasks", "models", "tables", "experiments", "trainers", "runs")
PLOTS = ("rank_sweep", "frontier", "sparsity", "fusion", "routing", "heads")


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (no usage block) naming the help that fixes them."""

    def error(self, message: str):
        raise UserError(f"{message}; see `{self.prog} --help`")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    listing.add_argument("--results", default="results", help="runs: the results folder (default: results)")
    params = commands.add_parser(
        "params",
        help="trainable / total parameters of model × method from configs alone (no weights)",
        description="peftbench params model=roberta-large method=lora [method.r=4] [task=mnli]",
    )
    params.add_argument("overrides", nargs="*", help="Hydra overrides, as for run")
    params.add_argument("--json", action="store_true", help="print the counts as JSON")
    export = commands.add_parser("export", help="a finished run as an HF peft adapter folder")
    export.add_argument("run_dir", help="a run folder under results/")
    export.add_argument("--format", default="peft", choices=("peft",), help="output format")
    export.add_argument("--out", required=True, help="a new folder for the adapter")
    score = commands.add_parser("score", help="a task's official metric on a predictions file, as JSON")
    score.add_argument("task", help="a task name (peftbench list tasks) or e2e")
    score.add_argument("--predictions", required=True, help="one prediction per line (e2e: also csv/tsv)")
    score.add_argument("--references", help="one label per line (e2e: text grouped by blank lines, or csv/tsv)")
    score.add_argument("--data-dir", help="without --references: the task's data folder (default: $PEFTBENCH_DATA)")
    table = commands.add_parser("table", help="a paper's table from the run records, beside the published numbers")
    table.add_argument("name", help="a table spec in conf/table/ (peftbench list tables)")
    table.add_argument("--results", default="results", help="the results folder (default: results)")
    table.add_argument("--format", default="md", choices=("md", "csv", "latex", "html"), help="output format")
    table.add_argument("--out", help="write to this file instead of stdout")
    table.add_argument("--model", help="fill the rows of the table's first backbone from runs on another model "
                       "(e.g. minilm-l6), or another backbone's rows: roberta-large=minilm-l6")
    reproduce = commands.add_parser(
        "reproduce", help="launch every run a paper's table needs (or --dry-run: list them), skipping what is complete",
        description="peftbench reproduce TABLE [--dry-run] [--rows PATTERN …] [--columns PATTERN …] [--model [ROWS_MODEL=]M] "
                    "[overrides for every run, e.g. hydra/launcher=joblib trainer.max_steps=100]",
    )  # fmt: skip
    reproduce.add_argument("name", help="a table spec in conf/table/ (peftbench list tables)")
    reproduce.add_argument("overrides", nargs="*", help="Hydra overrides added to every run")
    reproduce.add_argument("--dry-run", action="store_true", help="print every run and what it costs; write nothing")
    reproduce.add_argument("--rows", action="append", help="only rows whose label matches (shell pattern; repeat)")
    reproduce.add_argument("--columns", action="append", help="only columns whose id matches (shell pattern; repeat)")
    reproduce.add_argument("--model", help="run the first backbone's rows on M, or another backbone's: roberta-large=M")
    plot = commands.add_parser("plot", help="a paper's figure from the run records, as PNG or SVG")
    plot.add_argument("kind", choices=PLOTS, help="rank_sweep: LoRA's score against r; frontier: score against parameters; "
                      "sparsity: score against the backbone share kept (masks) or trained (differences), one line per method; "
                      "fusion: AdapterFusion's attention over its adapters; routing RUN: a routing run's module usage; "
                      "heads RUN: a head_pruning run's head importances and pruned heads")
    plot.add_argument("run", nargs="?", help="routing, heads: the run, its folder or its run id in --results")
    plot.add_argument("--results", default="results", help="the results folder (default: results)")
    plot.add_argument("--out", required=True, help="the figure file, .png or .svg")
    plot.add_argument("--model", help="only this model's runs (default: a panel per model and task)")
    plot.add_argument("--task", help="only this task's runs")
    plot.add_argument("--metric", help="NAME or SPLIT/NAME of the best checkpoint (default: the task's main metric)")
    plot.add_argument("--statistic", default="median", choices=("median", "mean"), help="over seeds (default: median)")
    compare = commands.add_parser(
        "compare", help="the Pareto view of any two recorded figures (memory, time, file size, parameters, a metric)",
        description="peftbench compare --x peak_memory --y accuracy [--task T] [--out FILE.png|.svg]: the frontier as a "
                    "Markdown table (and a figure with --out); a wrong field name lists the valid ones",
    )  # fmt: skip
    compare.add_argument("--x", required=True, help="a figure: peak_memory, avg_memory, train_time, file_size, "
                         "trainable_params, a metric (accuracy, or validation.accuracy), …")
    compare.add_argument("--y", required=True, help="another figure (as --x)")
    compare.add_argument("--results", default="results", help="the results folder (default: results)")
    compare.add_argument("--task", help="only this task's runs (default: a panel per task)")
    compare.add_argument("--out", help="also draw the view to this file, .png or .svg")
    routing = commands.add_parser(
        "routing-table", help="a token-level moe_adapters run's tokens per module (seed 004's expert-token table)",
        description="peftbench routing-table RUN [--site SITE] [--top N]: per site and module, its most frequent tokens",
    )  # fmt: skip
    routing.add_argument("run", help="the run, its folder or its run id in --results")
    routing.add_argument("--results", default="results", help="the results folder (default: results)")
    routing.add_argument("--site", help="only this site, by label (layer 5 ln.ffn) or number")
    routing.add_argument("--top", type=int, default=5, help="tokens per module (default: 5)")
    submit = commands.add_parser("submit", help="a benchmark server's submission from finished runs (GLUE's zip)")
    submit.add_argument("benchmark", choices=("glue",), help="the benchmark whose server takes it")
    submit.add_argument("runs", nargs="+", help="run folders, one per task (MNLI's also gives AX)")
    submit.add_argument("--out", default="glue_submission.zip", help="the zip to write (default: glue_submission.zip)")
    submit.add_argument("--partial", action="store_true", help="zip the files there are, even if the server needs more")
    doctor = commands.add_parser("doctor", help="incomplete, stale and corrupt runs in a results folder")
    doctor.add_argument("--results", default="results", help="the results folder (default: results)")
    doctor.add_argument("--fix", action="store_true", help="cure what can be cured (never touches complete runs)")
    doctor.add_argument("--deep", action="store_true", help="also verify every checkpoint's checksum")
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["run"]:
            from peftbench.launch import launch

            launch(argv[1:])
            return
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra and args.command == "reproduce" and not any(item.startswith("-") for item in extra):
            args.overrides += extra  # overrides after an option: reproduce TABLE --dry-run trainer.max_steps=1
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if args.command is None:
            build_parser().print_help()
            return
        commands = {
            "list": cmd_list, "table": cmd_table, "params": cmd_params, "export": cmd_export, "score": cmd_score,
            "doctor": cmd_doctor, "plot": cmd_plot, "reproduce": cmd_reproduce, "submit": cmd_submit,
            "routing-table": cmd_routing_table,
            "compare": cmd_compare,
        }  # fmt: skip
        commands[args.command](args)
    except UserError as error:
        from peftbench.train.distributed import speaks

        if speaks():  # under a launcher every rank refuses alike; rank 0 says so
            print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def cmd_list(args) -> None:
    from peftbench.catalog import describe

    if args.what == "runs":
        return list_runs(args.results)
    group = args.what.rstrip("s")
    for name, summary in describe(group):
        print(f"{name:<24} {summary}")


def list_runs(results: str) -> None:
    """One line per readable run: status, main metric, run id (damaged records and checkpoints warned)."""
    from pathlib import Path

    from peftbench.doctor import records

    for record in records(Path(results)):
        main = (record.get("metrics") or {}).get("main")
        score = f"{main['metric']}={main['value']:.4f}" if main else ""
        print(f"{record['status']:<9} {score:<22} {record['run_id']}")


def cmd_submit(args) -> None:
    from peftbench.submit import submit_glue

    print(submit_glue(args.runs, args.out, args.partial))


def cmd_doctor(args) -> None:
    from pathlib import Path

    from peftbench.doctor import report

    results = Path(args.results)
    if not results.is_dir():
        raise UserError(f"results folder {results} does not exist; pass --results DIR")
    if report(results, fix=args.fix, deep=args.deep):
        sys.exit(1)


def cmd_params(args) -> None:
    import json

    from peftbench.counting import counts_from_config
    from peftbench.launch import compose, expand_lists, jobs

    expanded = jobs(expand_lists(args.overrides))
    if len(expanded) != 1:
        raise UserError(f"params counts one configuration, the overrides describe {len(expanded)}; drop the sweep")
    counts = counts_from_config(compose(expanded[0]))
    if args.json:
        print(json.dumps(counts, indent=2))
        return
    share = 100 * counts["trainable_method"] / counts["backbone"]
    method = ", ".join(f"{k}={v}" for k, v in counts["method"].items() if k != "name")
    print(f"model      {counts['model']} ({counts['model_type']}, {counts['layers']} layers, hidden {counts['hidden']})")
    print(f"method     {counts['method']['name']}" + (f" ({method})" if method else ""))
    print(f"method's   {counts['trainable_method']:>15,}   {share:.4f}% of the backbone")
    if len(counts["tasks"]) > 1:  # one model for several tasks: the papers' "per task" column
        n = len(counts["tasks"])
        print(f"per task   {counts['trainable_method'] / n:>15,.0f}   {share / n:.4f}% of the backbone ({n} tasks share it)")
    if counts["mask_bits"]:
        print(f"mask bits  {counts['mask_bits']:>15,}   binary mask entries, not parameters ({-(-counts['mask_bits'] // 8):,} bytes packed)")
    print(f"head       {counts['head']:>15,}   ({counts['task']}, trained with every method)")
    print(f"trainable  {counts['trainable']:>15,}")
    print(f"backbone   {counts['backbone']:>15,}")
    print(f"total      {counts['total']:>15,}")


def cmd_export(args) -> None:
    from pathlib import Path

    from peftbench.export import export_peft

    run_dir = Path(args.run_dir)
    if not (run_dir / "record.json").is_file():
        raise UserError(f"{run_dir} is not a run folder (no record.json); pass a folder under results/")
    print(export_peft(run_dir, Path(args.out)))


def cmd_score(args) -> None:
    import json
    from pathlib import Path

    from peftbench.score import score_file

    references = Path(args.references) if args.references else None
    print(json.dumps(score_file(args.task, Path(args.predictions), references, args.data_dir), indent=2))


def cmd_table(args) -> None:
    from pathlib import Path

    from peftbench.config import CONF_DIR
    from peftbench.doctor import records
    from peftbench.results.spec import load_spec
    from peftbench.results.render import render
    from peftbench.results.table import build_table, substitution

    spec = load_spec(args.name, CONF_DIR)
    results = Path(args.results)
    found = records(results) if results.is_dir() else []
    replacing, model = substitution(spec, args.model)
    text = render(build_table(spec, found, model=model, replacing=replacing), args.format)
    if args.out:
        from peftbench.atomic import write_text_atomic

        write_text_atomic(Path(args.out), text)
    else:
        print(text, end="" if text.endswith("\n") else "\n")


def cmd_reproduce(args) -> None:
    from peftbench.reproduce import reproduce

    status = reproduce(args.name, args.rows, args.columns, args.model, args.overrides, dry_run=args.dry_run)
    if status:
        sys.exit(status)


def cmd_routing_table(args) -> None:
    from pathlib import Path

    from peftbench.results.routing import routing_run, token_table

    folder, record = routing_run(args.run, Path(args.results))
    print(token_table(folder, record, args.site, args.top), end="")


def cmd_plot(args) -> None:
    from pathlib import Path

    from peftbench.doctor import records
    from peftbench.results import draw, plot

    out = Path(args.out)
    draw.output_format(out)  # a bad --out fails before any record is read
    if (args.run is not None) != (args.kind in ("routing", "heads")):
        raise UserError("name the run for plot routing and plot heads (peftbench plot heads RUN --out FILE), and only for them")
    if args.kind == "heads":
        from peftbench.results.head_plot import head_maps
        from peftbench.results.heat_map import draw_heat_maps

        maps, title, colour = head_maps(args.run, Path(args.results))
        draw_heat_maps(maps, out, title, colour)
        print(out)
        return
    if args.kind == "routing":
        from peftbench.results.heat_map import draw_heat_maps
        from peftbench.results.routing import routing_maps, routing_run

        _, record = routing_run(args.run, Path(args.results))
        maps, title, shares = routing_maps(record)
        draw_heat_maps(maps, out, title, shares)
        print(out)
        return
    if args.kind == "fusion":
        from peftbench.results.fusion_plot import draw_fusion, fusion_maps

        draw_fusion(fusion_maps(records(Path(args.results)), Path(args.results), args.model, args.task), out)
        print(out)
        return
    build = {"rank_sweep": plot.rank_sweep, "frontier": plot.frontier, "sparsity": plot.sparsity}[args.kind]
    figure = build(
        records(Path(args.results)),
        model=args.model, task=args.task, metric=args.metric, statistic=args.statistic, where=f"{Path(args.results)}/",
    )  # fmt: skip
    if figure.unscored:
        print(f"warning: {figure.unscored} matching run(s) have no value for the metric and are not plotted", file=sys.stderr)
    draw.draw(figure, out)
    print(out)


def cmd_compare(args) -> None:
    """The frontier of two figures as Markdown on stdout; with ``--out``, the figure too."""
    from pathlib import Path

    from peftbench.doctor import records
    from peftbench.results import draw
    from peftbench.results.compare import compare, frontier_markdown
    from peftbench.results.frame import runs_frame

    out = Path(args.out) if args.out else None
    if out is not None:
        draw.output_format(out)  # a bad --out fails before any record is read
    results = Path(args.results)
    if not results.is_dir():
        raise UserError(f"results folder {results} does not exist; pass --results DIR")
    comparison = compare(runs_frame(records(results)), args.x, args.y, args.task, where=f"{results}/")
    print(frontier_markdown(comparison), end="")
    if out is not None:
        draw.draw_comparison(comparison, out)
        print(f"wrote {out}", file=sys.stderr)
