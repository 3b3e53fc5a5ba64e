"""The papers' figures from run records: LoRA's rank sweep, the efficiency frontier, and score
against sparsity.

Two steps, kept apart. ``rank_sweep``, ``frontier`` and ``sparsity`` reduce records to a ``Plot`` (panels of
series of points: plain data that tests check); ``results/draw.py`` turns a ``Plot`` into a PNG
or SVG file.
Each point reduces its runs over seeds as the tables do (``peftbench.results.table``): one value
per seed (the newest run), the median or mean, the sample standard deviation. Runs with a caveat
(sample data, a reduced training subset) make a point only where no full-data runs exist, and
such points carry the tables' footnote marks (†); the two are never mixed in one point.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple

from peftbench.errors import UserError
from peftbench.results.table import caveat_marks, comparable, data_caveats, median_params, reduce_over_seeds

# The LoRA paper's names for the attention projections (Hu et al. 2021, §7.1, Table 5), in its order.
WEIGHT_NAMES = {"attn.q": "Wq", "attn.k": "Wk", "attn.v": "Wv", "attn.o": "Wo"}


@dataclass(frozen=True)
class Point:
    """One plotted point: ``value`` is the statistic over seeds of the chosen metric (as recorded,
    e.g. 0.866 for 86.6% accuracy), ``spread`` the sample standard deviation over seeds (0 for
    one seed), ``n`` the seed count. ``x`` is the rank r (rank sweep), the median trainable
    method parameters (frontier) or the median share of the backbone kept or trained (sparsity). ``caveats`` say how the runs differ from a full-data run
    (empty when they do not). Frontier points also have a ``label`` and the median peak
    ``memory`` in MB (None where the records have none)."""

    x: float
    value: float
    spread: float
    n: int
    caveats: tuple[str, ...] = ()
    label: str = ""
    memory: float | None = None


@dataclass(frozen=True)
class Series:
    """A line (rank sweep: one weight-type set) or a colour (frontier: one method); points by x."""

    label: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Panel:
    """One (model, task) and the metric plotted on its y axis. ``frontier`` (frontier plots only)
    holds the Pareto-optimal points of the panel, by parameters."""

    model: str
    task: str
    split: str
    metric: str
    series: tuple[Series, ...]
    frontier: tuple[Point, ...] = ()


@dataclass(frozen=True)
class Plot:
    """What ``draw`` draws. ``marks`` maps each caveat found in a point to its footnote mark;
    ``unscored`` counts the matching runs that have no value for the metric."""

    kind: str
    statistic: str
    panels: tuple[Panel, ...]
    marks: dict[str, str]
    unscored: int = 0

    def marked(self, caveats: Iterable[str]) -> str:
        """The marks of ``caveats`` ('' when there are none)."""
        return "".join(self.marks[caveat] for caveat in caveats)


class _Run(NamedTuple):
    """What a plot needs of one complete record. ``seed``, ``finished`` and ``caveats`` (and
    ``trainable``) are the fields the tables' seed and caveat rules read; ``share`` is
    ``backbone_share``'s."""

    model: str
    task: str
    method: str
    seed: object
    finished: str
    method_config: dict
    split: str
    metric: str
    value: float
    trainable: float | None
    memory: float | None
    caveats: tuple[str, ...]
    share: float | None


# --- records -> runs -----------------------------------------------------------------------------


def parse_metric(metric: str | None) -> tuple[str | None, str | None]:
    """``--metric``: ``NAME`` (on the split of the task's main metric) or ``SPLIT/NAME``."""
    if metric is None:
        return None, None
    split, _, name = metric.rpartition("/")
    if not name:
        raise UserError(f"--metric {metric!r} names no metric; pass NAME or SPLIT/NAME, e.g. accuracy")
    return split or None, name


def _score(record: dict, split: str | None, metric: str | None) -> tuple[str, str, float] | None:
    """(split, metric, value) of the record's best checkpoint: the task's main metric unless
    ``metric`` is given; None where the record has no finite value for it."""
    metrics = record.get("metrics") or {}
    main = metrics.get("main") or {}
    if metric is None:
        split, metric, value = main.get("split"), main.get("metric"), main.get("value")
    else:
        split = split or main.get("split")
        value = ((metrics.get("best") or {}).get(split) or {}).get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return split, metric, float(value)


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def backbone_share(record: dict) -> float | None:
    """The share of the backbone a run keeps or trains, the sparsity plot's x (its sparsity is 1
    minus it), by method family:

    * a method that masks backbone weights (pruning, lottery tickets, supermasks, mask tuning,
      movement and head pruning: the record has ``sparsity``, ``peftbench.methods.binary_mask``)
      keeps 1 − ``sparsity.measured``: the exact zeros of its merged masked tensors over their
      entries (the encoder's linear projections; embeddings, biases and norms are never masked);
    * any other method (LoRA, BitFit, adapters, the sparse differences of LT-SFT and diff pruning,
      full fine-tuning) trains ``params.trainable_method`` / (``params.total`` − ``params.head``):
      its trained floats over the model's parameters without the task head (a removed entry of a
      sparse difference is not counted, ``peftbench.counting``).

    None where the record has neither."""
    measured = _number((record.get("sparsity") or {}).get("measured"))
    if measured is not None:
        return 1.0 - measured
    params = record.get("params") or {}
    trained, total, head = (_number(params.get(key)) for key in ("trainable_method", "total", "head"))
    if trained is None or not total or total - (head or 0.0) <= 0:
        return None
    return trained / (total - (head or 0.0))


class _Scan(NamedTuple):
    """What a scan of the records found: the scored runs; how many matching runs have no value
    for the metric, and one of them (to say which metrics they do have); and the (model, task)
    pairs of runs of the method that the model and task filters left out."""

    runs: list[_Run]
    unscored: int
    unscored_example: dict | None
    elsewhere: set[tuple[str, str]]


def _scan(records: Iterable[dict], method, model, task, metric) -> _Scan:
    """The complete runs of ``method`` on ``model`` and ``task`` (None: any) with their score."""
    split, name = parse_metric(metric)
    runs, unscored, example, elsewhere = [], 0, None, set()
    for record in records:
        if record.get("status") != "complete" or (method and record["method"] != method):
            continue
        if (model and record["model"] != model) or (task and record["task"] != task):
            elsewhere.add((record["model"], record["task"]))
            continue
        score = _score(record, split, name)
        if score is None:
            unscored += 1
            example = example or record
            continue
        params, cost = record.get("params") or {}, record.get("cost") or {}
        runs.append(
            _Run(
                model=record["model"],
                task=record["task"],
                method=record["method"],
                seed=record["seed"],
                finished=record.get("finished") or "",
                method_config=record["method_config"],
                split=score[0],
                metric=score[1],
                value=score[2],
                trainable=_number(params.get("trainable_method")),
                memory=_number(cost.get("peak_memory_mb")),
                caveats=data_caveats(record),
                share=backbone_share(record),
            )
        )
    return _Scan(runs, unscored, example, elsewhere)


def _reduce(runs: list[_Run], statistic: str, x: float, **extra) -> Point:
    """The runs of one point -> the point: the tables' caveat rule (full-data runs where there
    are any), one value per seed (the newest run), the statistic and the sample std over seeds."""
    value, spread, n, caveats = reduce_over_seeds([(run, run.value) for run in runs], statistic)
    return Point(x, value, spread, n, caveats, **extra)


# --- labels --------------------------------------------------------------------------------------


def weight_types(targets) -> str:
    """A LoRA target set as the paper names it: ``[attn.v, attn.q]`` -> ``Wq, Wv`` (the
    attention projections in the paper's order, any other role by its name after them)."""
    if not isinstance(targets, (list, tuple)):
        return str(targets)
    return ", ".join(WEIGHT_NAMES.get(role, role) for role in sorted(targets, key=_role_order))


def _role_order(role: str) -> tuple:
    names = list(WEIGHT_NAMES)
    return (names.index(role), "") if role in names else (len(names), role)


def _canonical(value) -> str:
    """A config value as comparable text; lists in any order are the same (as the tables match)."""
    if isinstance(value, list):
        value = sorted(value, key=lambda item: json.dumps(item, sort_keys=True))
    return json.dumps(value, sort_keys=True)


def variant_key(method_config: dict, ignore: tuple[str, ...]) -> tuple:
    """What tells a method variant apart: its config without the ``ignore``d fields, comparable."""
    return tuple(sorted((k, _canonical(v)) for k, v in method_config.items() if k not in ignore))


def differing(configs: list[dict], ignore: tuple[str, ...]) -> list[str]:
    """The fields, in config order, whose value is not the same in every one of ``configs``."""
    fields = list(dict.fromkeys(k for config in configs for k in config if k not in ignore))
    missing = object()
    return [
        field
        for field in fields
        if len({_canonical(c[field]) if field in c else missing for c in configs}) > 1
    ]


def _field_text(config: dict, field: str) -> str:
    if field not in config:
        return f"no {field}"
    value = config[field]
    if field == "targets":
        return weight_types(value)
    return f"{field}={value:g}" if isinstance(value, float) else f"{field}={value}"


# --- rank sweep ----------------------------------------------------------------------------------


def rank_sweep(
    records: Iterable[dict],
    *,
    model: str | None = None,
    task: str | None = None,
    metric: str | None = None,
    statistic: str = "median",
    where: str = "the records",
) -> Plot:
    """LoRA's rank and weight-type study (Hu et al. 2021, arXiv 2106.09685, Table 6; Table 5's
    weight types): for each (model, task), the score of complete ``lora`` runs against the rank
    r, one series per target set (``method_config.targets``, labelled "Wq, Wv"). Runs that
    differ in another config field (alpha, dropout) form series of their own, labelled with it.
    Points are ordered by r."""
    scan = _scan(records, "lora", model, task, metric)
    runs = [run for run in scan.runs if isinstance(run.method_config.get("r"), int) and run.method_config["r"] > 0]
    if not runs:
        _nothing_to_plot("rank_sweep", scan, model, task, metric, where)
    panels = []
    for (model_, task_, split, metric_), panel_runs in _by_panel(runs).items():
        groups: dict[tuple, list[_Run]] = {}
        for run in panel_runs:
            groups.setdefault(variant_key(run.method_config, ("name", "r")), []).append(run)
        configs = [group[0].method_config for group in groups.values()]
        other_fields = differing(configs, ("name", "r", "targets"))
        series = []
        for group in groups.values():
            config = group[0].method_config
            label = weight_types(config.get("targets"))
            if other_fields:
                label += " · " + " ".join(_field_text(config, field) for field in other_fields)
            by_rank: dict[int, list[_Run]] = {}
            for run in group:
                by_rank.setdefault(run.method_config["r"], []).append(run)
            points = tuple(_reduce(by_rank[r], statistic, r) for r in sorted(by_rank))
            series.append((_series_order(config.get("targets"), label), Series(label, points)))
        series.sort(key=lambda item: item[0])
        panels.append(Panel(model_, task_, split, metric_, tuple(s for _, s in series)))
    return _plot("rank_sweep", statistic, panels, scan.unscored)


def _series_order(targets, label: str) -> tuple:
    """Fewer weight types first, then the paper's order (Wq before Wk, Wv, Wo), as in Table 5."""
    if not isinstance(targets, (list, tuple)):
        return (math.inf, (), label)
    return (len(targets), tuple(sorted(_role_order(role) for role in targets)), label)


# --- efficiency frontier -------------------------------------------------------------------------


def frontier(
    records: Iterable[dict],
    *,
    model: str | None = None,
    task: str | None = None,
    metric: str | None = None,
    statistic: str = "median",
    where: str = "the records",
) -> Plot:
    """The efficiency frontier, as in Compacter's Figure 1 (Karimi Mahabadi et al. 2021: score
    against trainable parameters on a log axis, marker area for memory): for each (model, task),
    one point per method variant (method and ``method_config``) at its median
    ``params.trainable_method``, with its median ``cost.peak_memory_mb``, labelled with the
    method and the config fields that tell its variants apart (``lora r=8``); one series per
    method; and the Pareto frontier (``pareto``)."""
    scan = _scan(records, None, model, task, metric)
    runs = [run for run in scan.runs if run.trainable is not None]
    if not runs:
        _nothing_to_plot("frontier", scan, model, task, metric, where)
    panels = []
    for (model_, task_, split, metric_), panel_runs in _by_panel(runs).items():
        series = _method_series(panel_runs, statistic, median_params)
        every_point = [point for s in series for point in s.points]
        panels.append(Panel(model_, task_, split, metric_, tuple(series), tuple(pareto(every_point))))
    return _plot("frontier", statistic, panels, scan.unscored)


def _method_series(runs: list[_Run], statistic: str, x: Callable) -> list[Series]:
    """One series per method (by name), one point per method variant (``method_config``) at
    ``x(runs used)``, labelled with the config fields that tell its variants apart; by x."""
    by_method: dict[str, dict[tuple, list[_Run]]] = {}
    for run in runs:
        variants = by_method.setdefault(run.method, {})
        variants.setdefault(variant_key(run.method_config, ("name",)), []).append(run)
    series = []
    for method in sorted(by_method):
        variants = list(by_method[method].values())
        fields = differing([variant[0].method_config for variant in variants], ("name",))
        points = [_variant_point(method, variant, fields, statistic, x) for variant in variants]
        series.append(Series(method, tuple(sorted(points, key=lambda p: (p.x, p.label)))))
    return series


# --- score against sparsity ---------------------------------------------------------------------


def sparsity(
    records: Iterable[dict],
    *,
    model: str | None = None,
    task: str | None = None,
    metric: str | None = None,
    statistic: str = "median",
    where: str = "the records",
) -> Plot:
    """Score against sparsity, the sparse-subnetwork methods beside LoRA and BitFit (seed 004,
    "Sparse Subnetworks"; Chen et al. 2020, NeurIPS, "The Lottery Ticket Hypothesis for
    Pre-trained BERT Networks", Figure 1 plots score against the share of weights remaining): for
    each (model, task), one point per method variant at the median ``backbone_share`` of its runs
    (the share kept, 1 − measured sparsity, for masks; the share trained for differences), one
    series per method, points by share."""
    scan = _scan(records, None, model, task, metric)
    runs = [run for run in scan.runs if run.share is not None]
    if not runs:
        _nothing_to_plot("sparsity", scan, model, task, metric, where)
    panels = [
        Panel(model_, task_, split, metric_, tuple(_method_series(panel_runs, statistic, _median_share)))
        for (model_, task_, split, metric_), panel_runs in _by_panel(runs).items()
    ]
    return _plot("sparsity", statistic, panels, scan.unscored)


def _median_share(runs: list[_Run]) -> float:
    return statistics.median(run.share for run in runs)


def _variant_point(method: str, runs: list[_Run], fields: list[str], statistic: str, x: Callable = median_params) -> Point:
    """One method variant's point; ``x(runs used)`` (the median parameters) and the memory are
    medians over the runs used."""
    used, _ = comparable([(run, run.value) for run in runs])
    used_runs = [run for run, _ in used]
    memories = [run.memory for run in used_runs if run.memory is not None]
    return _reduce(
        used_runs,
        statistic,
        x(used_runs),
        label=variant_label(method, runs[0].method_config, fields),
        memory=statistics.median(memories) if memories else None,
    )


def variant_label(method: str, config: dict, fields: list[str]) -> str:
    """A method variant as a point's label: the method and the ``fields`` that tell its variants
    apart (``lora r=8 Wq, Wv``)."""
    return " ".join([method, *(_field_text(config, field) for field in fields)])


def pareto(points: list[Point]) -> list[Point]:
    """The Pareto frontier: the points with the best score for at most that many parameters,
    by parameters. A point is on it when it scores higher than every point with as many
    parameters or fewer."""
    return pareto_front(points, x=lambda p: p.x, y=lambda p: -p.value)


def pareto_front(points: list, x: Callable, y: Callable) -> list:
    """The points no other point beats on both ``x(point)`` and ``y(point)``, lower better in
    each, by ``x``: a point is on it when its ``y`` is lower than that of every point with an
    ``x`` as low or lower (of equal points, the first). Points with a caveat (``caveats``) are
    compared among themselves only, and only where there are no others: sample data and full
    data are not one scale."""
    clean = [point for point in points if not point.caveats]
    candidates = sorted(clean or points, key=lambda p: (x(p), y(p)))
    front, best = [], math.inf
    for point in candidates:
        if y(point) < best:
            front.append(point)
            best = y(point)
    return front


# --- shared --------------------------------------------------------------------------------------


def _by_panel(runs: list[_Run]) -> dict[tuple, list[_Run]]:
    """Runs grouped by (model, task, split, metric), in that order."""
    panels: dict[tuple, list[_Run]] = {}
    for run in runs:
        panels.setdefault((run.model, run.task, run.split, run.metric), []).append(run)
    return dict(sorted(panels.items()))


def _plot(kind: str, statistic: str, panels: list[Panel], unscored: int) -> Plot:
    points = [point for panel in panels for s in panel.series for point in s.points]
    marks = caveat_marks(c for point in points for c in point.caveats)
    return Plot(kind, statistic, tuple(panels), marks, unscored)


def _nothing_to_plot(kind: str, scan: _Scan, model, task, metric, where: str) -> None:
    """The ``UserError`` for an empty plot: which runs were looked for, and how to make them."""
    scope = "".join([f" of {model}" if model else "", f" on {task}" if task else ""])
    looked_for = f"complete lora runs{scope}" if kind == "rank_sweep" else f"complete runs{scope}"
    if scan.unscored:
        best = (scan.unscored_example.get("metrics") or {}).get("best") or {}
        have = sorted(f"{split}/{name}" for split, values in best.items() for name in values or {})
        wanted = f"--metric {metric}" if metric else "the task's main metric"
        raise UserError(
            f"{scan.unscored} {looked_for} in {where}, none with a value for {wanted}; "
            f"pass a --metric they have: {', '.join(have) or 'none recorded'}"
        )
    if scan.elsewhere:
        pairs = ", ".join(f"{m} on {t}" for m, t in sorted(scan.elsewhere))
        which = "lora runs" if kind == "rank_sweep" else "runs"
        raise UserError(f"no {looked_for} in {where}; it has {which} of {pairs}: pass one as --model/--task")
    overrides = "".join([f" model={model}" if model else "", f" task={task}" if task else ""])
    sweep = {"rank_sweep": "method=lora method.r=1,2,4,8", "sparsity": "experiment=sweep_sparsity_minilm"}.get(
        kind, "method=lora,bitfit,houlsby"
    )
    raise UserError(
        f"no {looked_for} in {where}; run `peftbench run -m {sweep}{overrides} seed=1,2,3` "
        "(or pass --results DIR)"
    )
