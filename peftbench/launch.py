"""``peftbench run``: check every job of a run or sweep, then hand over to Hydra.

Hydra composes ``conf/`` into one config per job and, with ``-m``, runs a sweep through its
launcher (basic, joblib, submitit). Before any of that, every job the command line describes is
composed and planned here (``peftbench.plan``): an unknown name, a wrong type or an
impossible value in any job of a sweep exits with status 2 and one line, and nothing runs.

Every job is planned once: the check plans it, and a job that runs in this process (Hydra's basic
launcher) executes that plan; joblib and submitit workers, other processes, plan their job again.
The jobs of one command read each task's rows once (``peftbench.plan.Planner``).

Each job holds its run's lock (``peftbench.results.lock``) while it trains: a second process on
the same run says who holds it and moves on (exit status 3 for a single run), or waits for it
with ``--wait`` and then finds the run complete.

A sweep expands as Hydra's sweeper does: the ``hydra.sweeper.params`` of the config that the
fixed overrides compose (an experiment preset may set them), then the command line's sweeps. Its
jobs run wherever the launcher puts them (this process, joblib workers, submitit jobs), so a job
that fails on bad input prints its line and returns rather than exiting its worker, and the
sweep's outcome is read back from the run records: one line per run, then exit status 2 when a
run failed. A sweep whose runs are all complete already launches nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from peftbench.config import CONF_DIR, GROUPS, available, register_configs
from peftbench.errors import UserError
from peftbench.train.distributed import leave, speaks

MULTIRUN_FLAGS = {"-m", "--multirun"}
WAIT_FLAG = "--wait"
BUSY_STATUS = 3


_planner = None  # this command's Planner (a worker process starts with none and makes its own)


def planner():
    """This process's planner: the command's jobs share it."""
    global _planner
    if _planner is None:
        from peftbench.plan import Planner

        _planner = Planner()
    return _planner


def launch(argv: list[str], planned=None) -> None:
    """Run or sweep ``argv``; ``planned`` is a Planner that holds plans made already (peftbench
    reproduce's), else this command starts a fresh one: nothing planned or read before is reused."""
    import hydra

    global _planner
    _planner = planned
    register_configs()
    wait = WAIT_FLAG in argv
    argv = expand_lists([a for a in argv if a != WAIT_FLAG])
    multirun = any(a in MULTIRUN_FLAGS for a in argv)
    overrides = [a for a in argv if not a.startswith("-")]
    sweep = None
    if not any(a in {"-h", "--help", "--hydra-help", "-c", "--cfg", "--info"} for a in argv):
        run_dirs = [planner().plan(compose(job)).run_dir for job in jobs(overrides, multirun=multirun)]
        sweep = Sweep(run_dirs) if multirun else None
    if sweep and len(sweep.done_before) == len(sweep.run_dirs):  # nothing to launch
        if speaks():
            sweep.report()
        return

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)
    def run_job(cfg) -> None:
        from peftbench.results.lock import RunBusy

        try:
            _run_job(cfg, wait)
        except UserError as error:
            if speaks():
                print(f"error: {error}", file=sys.stderr)
            if not multirun:  # in a sweep the other jobs go on; the sweep's report sets the status
                leave(together=False)
                sys.exit(2)
        except RunBusy as busy:
            if speaks():
                print(f"busy: {busy}", file=sys.stderr)
            if not multirun:
                leave(together=False)
                sys.exit(BUSY_STATUS)

    sys.argv = ["peftbench run", *argv]
    run_job()
    leave()  # not after a failure: a rank that fails alone must exit, so that the launcher stops the others
    if sweep:
        sys.exit(sweep.report(quiet=not speaks()))


LISTS = {"task": ("multi", "tasks"), "method": ("composed", "methods")}  # group=[a,b] -> group=X group.field=[a,b]


def expand_lists(argv: list[str]) -> list[str]:
    """``task=[rte,mrpc,sst2]`` (a multi-task run) and ``method=[lora,bitfit]`` (a combination) as
    the overrides they stand for, ``task=multi task.tasks=[rte,mrpc,sst2]`` and ``method=composed
    method.methods=[lora,bitfit]``; every other argument as it is."""
    expanded = []
    for argument in argv:
        group, _, value = argument.partition("=")
        if group in LISTS and value.startswith("[") and value.endswith("]"):
            option, field = LISTS[group]
            expanded += [f"{group}={option}", f"{group}.{field}={value}"]
        else:
            expanded.append(argument)
    return expanded


def jobs(overrides: list[str], multirun: bool = False) -> list[list[str]]:
    """The override list of every job: one for a run, the Cartesian product for a sweep.

    A sweep (``multirun``) first takes the ``hydra.sweeper.params`` of the config its fixed
    (non-sweep) overrides compose, then the command line's overrides, which win where both name
    a key — Hydra's BasicSweeper, so the jobs checked here are the jobs Hydra launches."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.errors import HydraException

    parsed = _parse(overrides)
    if multirun:
        params = _sweeper_params([o.input_line for o in parsed if not o.is_sweep_override()])
        parsed = _parse(params + overrides) if params else parsed
    parsed = [o for o in parsed if not o.get_key_element().startswith("hydra")]
    try:
        return BasicSweeper.split_arguments(parsed, None)[0]
    except HydraException as error:
        raise UserError(f"cannot expand the sweep: {_first_line(error)}") from None


def _parse(overrides: list[str]) -> list:
    """Hydra's parsed overrides; an unknown model, method, task, trainer or experiment refused."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as error:
        raise UserError(f"cannot read the overrides: {_first_line(error)}; write them as key=value") from None
    for override in parsed:
        group = override.get_key_element().lstrip("+~")
        if group in GROUPS and not override.is_delete():
            values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [
                override.get_value_element_as_str()
            ]
            for value in values:
                if value not in available(group):
                    raise UserError(
                        f"unknown {group} '{value}'; choose one of: {', '.join(available(group))} "
                        f"(peftbench list {group}s)"
                    )
    return parsed


def _sweeper_params(fixed: list[str]) -> list[str]:
    """The ``hydra.sweeper.params`` of the config ``fixed`` composes, as ``key=value`` overrides."""
    from omegaconf import OmegaConf

    params = compose(fixed, with_hydra=True).hydra.sweeper.get("params")
    return [f"{key}={value}" for key, value in OmegaConf.to_container(params).items()] if params else []


def compose(overrides: list[str], with_hydra: bool = False):
    """The config ``overrides`` compose (with Hydra's own node when ``with_hydra``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_configs()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            return hydra_compose(config_name="config", overrides=overrides, return_hydra_config=with_hydra)
    except (HydraException, OmegaConfBaseException) as error:
        raise UserError(_describe_composition_error(error)) from None


def _run_job(cfg, wait: bool) -> None:
    """Train the job's run unless it is complete. Under a launcher (torchrun) the ranks join their
    process group only now, after planning; rank 0 holds the lock and decides, every rank follows."""
    import contextlib

    from peftbench.results.lock import RunBusy
    from peftbench.results.record import read_record
    from peftbench.run import execute
    from peftbench.summary import print_summary
    from peftbench.train.distributed import decided, join
    from peftbench.train.loop import resolve_device

    p = planner().take(cfg)
    join(resolve_device(p.config["trainer"]["device"]).type)
    with contextlib.ExitStack() as held:
        met: list[RunBusy] = []  # rank 0's, with who holds the run
        decision = decided(lambda: _claim(p.run_dir, wait, held, met))
        if decision == "busy":
            raise met[0] if met else RunBusy(p.run_dir, {})
        if decision == "train":
            record = execute(p)
            if speaks():
                print_summary(record, p.run_dir)
            return
    if speaks():
        print(f"skipped {p.run_id}: already complete in {p.run_dir}", file=sys.stderr)
        print_summary(read_record(p.run_dir), p.run_dir)


def _claim(run_dir: Path, wait: bool, held, met: list) -> str:
    """``train`` with the run's lock taken into ``held``, ``complete``, or ``busy`` (the
    ``RunBusy`` met appended to ``met``)."""
    from peftbench.results.lock import RunBusy, run_lock
    from peftbench.results.record import is_complete

    if is_complete(run_dir):
        return "complete"
    try:
        held.enter_context(run_lock(run_dir, wait))
    except RunBusy as busy:
        met.append(busy)
        return "busy"
    return "complete" if is_complete(run_dir) else "train"  # it may have been completed while we waited


class Sweep:
    """The runs of one sweep, checked before launch and read back from their records after it."""

    def __init__(self, run_dirs: list[Path]):
        from peftbench.results.record import is_complete

        self.run_dirs = list(dict.fromkeys(run_dirs))  # two jobs of one config are one run
        self.done_before = {run_dir for run_dir in self.run_dirs if is_complete(run_dir)}

    def report(self, quiet: bool = False) -> int:
        """One line per run (status, main metric, run folder) and a count; the exit status: 2 when
        a run failed (its job printed why), else 0 (a run another process holds is not a failure).
        ``quiet``: the status alone (a launcher's ranks other than 0)."""
        from peftbench.results.lock import lock_holder
        from peftbench.results.record import CorruptRecord, read_record

        counts = {"skipped": 0, "complete": 0, "busy": 0, "failed": 0}
        for run_dir in self.run_dirs:
            try:
                record = read_record(run_dir)
            except CorruptRecord:
                record = {"status": "missing"}
            if record["status"] == "complete":
                status = "skipped" if run_dir in self.done_before else "complete"
            else:
                status = "busy" if lock_holder(run_dir) else "failed"
            counts[status] += 1
            main = (record.get("metrics") or {}).get("main")
            score = f"{main['metric']}={main['value']:.4f}" if main else ""
            why = f" ({record['error']})" if status == "failed" and record.get("error") else ""
            if not quiet:
                print(f"{status:<9} {score:<22} {run_dir}{why}")
        if not quiet:
            print(
                f"sweep: {len(self.run_dirs)} runs — {counts['complete']} trained, {counts['skipped']} already "
                f"complete (skipped), {counts['busy']} busy in another process, {counts['failed']} failed",
                file=sys.stderr,
            )
        return 2 if counts["failed"] else 0


def _describe_composition_error(error) -> str:
    key = getattr(error, "full_key", None)
    message = _first_line(error)
    if key:
        return f"{key}: {message}; fix the override {key}=…"
    return f"{message}; check the overrides (peftbench list …)"


def _first_line(error) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
