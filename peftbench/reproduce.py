"""``peftbench reproduce TABLE``: every run a paper's table needs, worked out, then launched.

For each row × column of the table spec (narrowed with ``--rows`` / ``--columns``, shell patterns)
the run that fills the cell is the row's preset (its ``preset:``, an experiment config; the
column task's own where the row maps its tasks to presets) or its model, method and ``match``
fields (the column task's, likewise) as overrides, with the column's task (and few-shot size,
``data.train_samples``) and the paper's seed count
(``seeds:``, else one seed; a preset's own seed sweep where it has one); a multi-task row's
columns are one run over their tasks. ``--model M`` runs one backbone's rows on M, as
``peftbench table --model`` reads them (``ROWS_MODEL=M`` for another backbone's). Cells no run can
fill are listed with the reason: a model, method or task peftbench does not have, a row whose
match names a field no config has, a split only the benchmark's server scores.

Every run is planned as ``peftbench run`` plans it (names, values, data, weights; nothing
written). ``--dry-run`` prints one line per run — complete, to run, or cannot plan and why; an upper
bound of its training compute, 6 × parameters × training tokens with every row at
``task.max_length``; and the exact ``peftbench run`` command — then the total, and writes nothing.
Otherwise the runs not yet complete are launched, the runs of one row and task as one sweep,
through Hydra's configured launcher: overrides after the table's name (``hydra/launcher=joblib``,
``trainer.max_steps=…``, ``data.dir=…``) apply to every run. The exit status is 2 when a run failed.
"""

from __future__ import annotations

import fnmatch
import functools
import sys
from dataclasses import dataclass, field

from peftbench.errors import UserError


@dataclass
class Job:
    overrides: list[str]  # one run's overrides, as `peftbench run` takes them
    state: str = "to run"  # complete | to run | cannot plan
    why: str = ""  # why it cannot be planned
    flops: float | None = None  # an upper bound of its training compute


@dataclass
class Sweep:
    rows: list[str]  # the labels of the rows its runs fill
    overrides: list[str]  # the sweep's overrides (seed=0,1,2 …), without the user's
    jobs: list[Job] = field(default_factory=list)


@dataclass
class Reproduction:
    table: str
    sweeps: list[Sweep]
    unreachable: list[tuple[str, str, str]]  # (row, column, why no run can fill it)
    planner: object = None  # the plans made (peftbench.plan.Planner): launching takes them, not plans again

    @property
    def jobs(self) -> list[Job]:
        return [job for sweep in self.sweeps for job in sweep.jobs]


def work_out(name: str, rows=None, columns=None, model: str | None = None, overrides=()) -> Reproduction:
    """The runs that fill table ``name``, each planned (nothing is written)."""
    from peftbench.config import CONF_DIR
    from peftbench.results.spec import load_spec
    from peftbench.results.table import substitution

    spec = load_spec(name, CONF_DIR)
    chosen_rows = _select([row.label for row in spec.rows], rows, "row", name)
    chosen_columns = _select([column.id for column in spec.columns], columns, "column", name)
    replacing, substitute = substitution(spec, model)
    sweeps: dict[tuple, Sweep] = {}
    unreachable = []
    for row in (row for row in spec.rows if row.label in chosen_rows):
        row_model = substitute if substitute and row.model == replacing else row.model
        tasks: dict[int | None, list[str]] = {}  # the tasks of the columns, by their few-shot size
        for column in (column for column in spec.columns if column.id in chosen_columns):
            why = _unreachable(row, row_model, column)
            if why:
                unreachable.append((row.label, column.id, why))
            elif column.task not in tasks.setdefault(column.train_samples, []):
                tasks[column.train_samples].append(column.task)
        groups = [
            (k, group)
            for k, named in tasks.items()
            for group in ([named] if row.training == "multitask" and len(named) > 1 else [[task] for task in named])
        ]
        for k, group in groups:
            # a row whose match or preset differs by task is single-task (spec.py): group[0] is its task
            sweep_overrides = [*_row_overrides(row, group[0]), f"model={row_model}", _task_override(group)]
            sweep_overrides += [f"data.train_samples={k}"] if k is not None else []
            sweep_overrides += _seeds(spec.seeds, row.preset_for(group[0]), list(overrides))
            key = tuple(sweep_overrides)
            sweeps.setdefault(key, Sweep([], sweep_overrides)).rows.append(row.label)
    reproduction = Reproduction(name, list(sweeps.values()), unreachable)
    _plan(reproduction, list(overrides))
    return reproduction


def reproduce(name: str, rows=None, columns=None, model: str | None = None, overrides=(), dry_run: bool = False) -> int:
    """Print the plan (``dry_run``) or launch the runs not yet complete; returns the exit status."""
    reproduction = work_out(name, rows, columns, model, overrides)
    _print(reproduction)
    if dry_run:
        return 0
    from peftbench.launch import launch

    failed = 0
    for sweep in reproduction.sweeps:
        if all(job.state == "complete" for job in sweep.jobs):
            continue
        try:
            launch(["-m", *sweep.overrides, *overrides], reproduction.planner)
        except SystemExit as done:
            failed += bool(done.code)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
    print(f"reproduce {name}: {len(reproduction.sweeps) - failed} of {len(reproduction.sweeps)} sweeps done"
          + (f", {failed} with failed runs" if failed else ""), file=sys.stderr)  # fmt: skip
    return 2 if failed else 0


def _select(names: list[str], patterns, what: str, table: str) -> set[str]:
    if not patterns:
        return set(names)
    chosen = set()
    for pattern in patterns:
        found = [name for name in names if fnmatch.fnmatchcase(name, pattern)]
        if not found:
            raise UserError(f"--{what}s {pattern!r} names no {what} of table {table}; its {what}s: {', '.join(names)}")
        chosen.update(found)
    return chosen


def _unreachable(row, model: str, column) -> str | None:
    """Why no run can fill the cell of ``row`` and ``column`` (None when one can)."""
    from peftbench.config import available, method_preset, model_config
    from peftbench.tasks import get_task

    if model not in available("model"):
        return f"no model config {model} (its rows show the paper's numbers; --model M runs them on another model)"
    config = model_config(model)
    if not (config.hub_id or config.package or config.path or config.random_init):
        return f"{model}'s weights were never published (its config counts parameters); --model M runs the row on another model"
    if row.method not in available("method"):
        return f"no method {row.method} in peftbench"
    missing = sorted(set(row.match_for(column.task)) - set(method_preset(row.method)))
    if missing:
        return f"its match names {', '.join(missing)}, which no {row.method} config has"
    if column.task not in available("task"):
        return f"no task {column.task} in peftbench yet"
    task = get_task(column.task)
    if column.split not in (*task.eval_splits, *task.test_splits):
        return f"{column.task}'s {column.split} split is scored by the benchmark's server, not by a run"
    if column.metric not in task.metric_names:
        return f"{column.task} runs score {', '.join(task.metric_names)}, not {column.metric} (the spec's notes say why)"
    return None


def _row_overrides(row, task: str) -> list[str]:
    """The row's preset for ``task``, or its method and the match fields that make its variant there."""
    preset = row.preset_for(task)
    if preset:
        return [f"experiment={preset}"]
    overrides = [f"method={row.method}"]
    for key, value in row.match_for(task).items():
        if isinstance(value, dict):  # a mapping field (method=peft's config): its entries, added or set
            overrides += [f"++method.{key}.{name}={_value(item)}" for name, item in value.items()]
        else:
            overrides.append(f"method.{key}={_value(value)}")
    return overrides


def _task_override(tasks: list[str]) -> str:
    return f"task={tasks[0]}" if len(tasks) == 1 else f"task=[{','.join(tasks)}]"


def _seeds(seeds: int | None, preset: str | None, overrides: list[str]) -> list[str]:
    """The paper's seed count as a sweep, unless the command line or the preset sets seeds (a sweep,
    or where the paper gives no count, the one seed its script runs: prefix tuning's 101)."""
    if any(override.startswith("seed=") for override in overrides) or "seed" in _preset_sweep(preset):
        return []
    if seeds is None and _preset_seed(preset) is not None:
        return []
    return [f"seed={','.join(str(seed) for seed in range(seeds or 1))}"]


def _preset_seed(preset: str | None) -> int | None:
    """The seed an experiment preset sets itself (its top-level ``seed:``), if any."""
    if preset is None:
        return None
    import yaml

    from peftbench.config import CONF_DIR

    return (yaml.safe_load((CONF_DIR / "experiment" / f"{preset}.yaml").read_text()) or {}).get("seed")


@functools.cache
def _preset_sweep(preset: str | None) -> dict:
    """The ``hydra.sweeper.params`` an experiment preset sets (e.g. its paper's seeds)."""
    if preset is None:
        return {}
    from omegaconf import OmegaConf

    from peftbench.launch import compose

    params = compose([f"experiment={preset}"], with_hydra=True).hydra.sweeper.get("params")
    return OmegaConf.to_container(params) if params else {}


def _value(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{_value(item)}" for key, item in value.items()) + "}"
    return str(value)


def _plan(reproduction: Reproduction, overrides: list[str]) -> None:
    """Expand each sweep into its runs and plan each: complete, to run, or why it cannot be planned."""
    from peftbench.plan import Planner
    from peftbench.results.record import is_complete

    planner = reproduction.planner = Planner()
    for sweep in reproduction.sweeps:
        for job, config in _runs(sweep, overrides):
            entry = Job(job)
            try:
                planned = planner.plan(config())
            except UserError as error:
                entry.state, entry.why = "cannot plan", str(error)
            else:
                entry.state = "complete" if is_complete(planned.run_dir) else "to run"
                entry.flops = _training_flops(planned)
            sweep.jobs.append(entry)


def _runs(sweep: Sweep, overrides: list[str]):
    """(overrides, config maker) of each run of ``sweep``. Where only the seed is swept, as in
    every table row, the config is composed once and each run's is a copy with its seed (Hydra
    composes in half a second); any other sweep expands as ``peftbench run -m`` does."""
    import copy

    from hydra.core.override_parser.overrides_parser import OverridesParser

    from peftbench.launch import compose, expand_lists, jobs

    given = expand_lists([*sweep.overrides, *overrides])
    parsed = OverridesParser.create().parse_overrides(given)
    swept = {o.get_key_element() for o in parsed if o.is_sweep_override()}
    preset = next((o.partition("=")[2] for o in given if o.startswith("experiment=")), None)
    if swept - {"seed"} or set(_preset_sweep(preset)) - {"seed"}:
        return [(job, lambda job=job: compose(job)) for job in jobs(given, multirun=True)]
    seeds = next((str(o.partition("=")[2]) for o in reversed(given) if o.startswith("seed=")), None)
    default = _preset_sweep(preset).get("seed", _preset_seed(preset))
    seeds = (seeds or str(0 if default is None else default)).split(",")
    fixed = [o for o in given if not o.startswith("seed=")]
    composed = []

    def config(seed: str):
        if not composed:
            composed.append(compose(fixed))
        copied = copy.deepcopy(composed[0])  # typed as composed, interpolations kept
        copied.seed = int(seed)
        return copied

    return [([*fixed, f"seed={seed}"], lambda seed=seed: config(seed)) for seed in seeds]


def _training_flops(p) -> float:
    """6 × parameters × training tokens, every training row at ``task.max_length``: an upper bound
    of the run's training compute (Kaplan et al. 2020's 6N per token for the forward and backward
    pass; a frozen backbone skips its weight gradients, about a third of that)."""
    trainer, length = p.config["trainer"], p.config["task"]["max_length"]
    if not p.method.trains:
        return 0.0
    if trainer["max_steps"] is not None:  # it overrides the epochs
        rows = trainer["max_steps"] * trainer["batch_size"] * trainer["grad_accum"]
    else:
        rows = trainer["epochs"] * sum(len(part.data.splits[part.task.train_split]) for part in p.parts)
    return 6.0 * _parameters(p.model_cfg.name, p.arch_config) * rows * length


_PARAMETERS: dict[str, int] = {}


def _parameters(model: str, arch_config) -> int:
    """The backbone's parameter count from its architecture alone (meta device), once per model."""
    if model not in _PARAMETERS:
        import torch
        from transformers import AutoModel

        with torch.device("meta"):
            _PARAMETERS[model] = sum(p.numel() for p in AutoModel.from_config(arch_config).parameters())
    return _PARAMETERS[model]


def _print(reproduction: Reproduction) -> None:
    jobs = reproduction.jobs
    counts = {state: sum(job.state == state for job in jobs) for state in ("complete", "to run", "cannot plan")}
    to_run = sum(job.flops or 0 for job in jobs if job.state == "to run")
    print(f"{reproduction.table}: {len(jobs)} runs — {counts['complete']} complete, {counts['to run']} to run "
          f"(≤ {_flops(to_run)} of training), {counts['cannot plan']} cannot be planned")  # fmt: skip
    for row, column, why in reproduction.unreachable:
        print(f"unreachable  {row} × {column}: {why}")
    for job in jobs:
        state = job.state if job.state != "cannot plan" else f"cannot plan ({job.why})"
        compute = f"≤ {_flops(job.flops)}" if job.flops is not None else ""
        print(f"{state:<11}  {compute:<14} peftbench run {' '.join(_quoted(o) for o in job.overrides)}")


def _flops(value: float) -> str:
    for unit, size in (("EFLOP", 1e18), ("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("FLOP", 1)):
        if value >= size:
            scaled = value / size
            return f"{scaled:.0f} {unit}" if scaled >= 10 else f"{scaled:.1f} {unit}"
    return "0 FLOP"


def _quoted(override: str) -> str:
    return f"'{override}'" if any(char in override for char in " []") else override
