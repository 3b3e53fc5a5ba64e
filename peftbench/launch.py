"""``peftbench run``: check every job of a run or sweep, then hand over to Hydra.

Hydra composes ``conf/`` into one config per job and, with ``-m``, runs a sweep through its
launcher (basic, joblib, submitit). Before any of that, every job the command line describes is
composed and planned here (``peftbench.run.plan``): an unknown name, a wrong type or an
impossible value in any job of a sweep exits with status 2 and one line, and nothing runs.

Each job holds its run's lock (``peftbench.results.lock``) while it trains: a second process on
the same run says who holds it and moves on (exit status 3 for a single run), or waits for it
with ``--wait`` and then finds the run complete.
"""

from __future__ import annotations

import sys

from peftbench.config import CONF_DIR, GROUPS, available, register_configs
from peftbench.errors import UserError

MULTIRUN_FLAGS = {"-m", "--multirun"}
WAIT_FLAG = "--wait"
BUSY_STATUS = 3


def launch(argv: list[str]) -> None:
    import hydra

    register_configs()
    wait = WAIT_FLAG in argv
    argv = [a for a in argv if a != WAIT_FLAG]
    overrides = [a for a in argv if not a.startswith("-")]
    if not any(a in {"-h", "--help", "--hydra-help", "-c", "--cfg", "--info"} for a in argv):
        for job in jobs(overrides):
            plan_job(job)

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)
    def run_job(cfg) -> None:
        from peftbench.results.lock import RunBusy

        try:
            _run_job(cfg, wait)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        except RunBusy as busy:
            print(f"busy: {busy}", file=sys.stderr)
            if not any(a in MULTIRUN_FLAGS for a in argv):
                sys.exit(BUSY_STATUS)

    sys.argv = ["peftbench run", *argv]
    run_job()


def jobs(overrides: list[str]) -> list[list[str]]:
    """The override list of every job: one for a run, the Cartesian product for a sweep."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as error:
        raise UserError(f"cannot read the overrides: {_first_line(error)}; write them as key=value") from None
    parsed = [o for o in parsed if not o.get_key_element().startswith("hydra")]
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
    try:
        return BasicSweeper.split_arguments(parsed, None)[0]
    except HydraException as error:
        raise UserError(f"cannot expand the sweep: {_first_line(error)}") from None


def compose(job: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_configs()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            return hydra_compose(config_name="config", overrides=job)
    except (HydraException, OmegaConfBaseException) as error:
        raise UserError(_describe_composition_error(error)) from None


def plan_job(job: list[str]):
    from peftbench.run import plan

    return plan(compose(job))


def _run_job(cfg, wait: bool) -> None:
    from peftbench.results.lock import run_lock
    from peftbench.results.record import is_complete, read_record
    from peftbench.run import execute, plan
    from peftbench.summary import print_summary

    p = plan(cfg)
    if not is_complete(p.run_dir):
        with run_lock(p.run_dir, wait):
            if not is_complete(p.run_dir):  # it may have been completed while we waited
                print_summary(execute(p), p.run_dir)
                return
    print(f"skipped {p.run_id}: already complete in {p.run_dir}", file=sys.stderr)
    print_summary(read_record(p.run_dir), p.run_dir)


def _describe_composition_error(error) -> str:
    key = getattr(error, "full_key", None)
    message = _first_line(error)
    if key:
        return f"{key}: {message}; fix the override {key}=…"
    return f"{message}; check the overrides (peftbench list …)"


def _first_line(error) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
