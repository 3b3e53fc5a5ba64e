"""The task registry: every benchmark module (``glue``, ``superglue``, ``e2e``, ``raft``,
``classification``, ``samsum``, ``wikisql``, ``mrqa``, ``transfer``, ``commonsense``,
``adapterfusion_suite``, ``houlsby_suite``, ``webnlg``, ``dart``)
exposes ``TASKS``, a dict of task name → ``Task``, and joins the registry by being listed in
``_BENCHMARKS``. Task names are unique across benchmarks.
"""

from __future__ import annotations

from types import ModuleType

from peftbench.errors import UserError
from peftbench.tasks import (
    adapterfusion_suite, classification, commonsense, dart, e2e, glue, houlsby_suite, mrqa, raft, samsum, superglue,
    transfer, webnlg, wikisql,
)
from peftbench.tasks.base import Task, TaskData

_BENCHMARKS: tuple[ModuleType, ...] = (
    glue, superglue, e2e, raft, classification, samsum, wikisql, mrqa, transfer, commonsense, adapterfusion_suite,
    houlsby_suite, webnlg, dart,
)


def _collect(benchmarks: tuple[ModuleType, ...]) -> dict[str, Task]:
    registry: dict[str, Task] = {}
    for benchmark in benchmarks:
        for name, task in benchmark.TASKS.items():
            if name in registry:
                raise ValueError(f"task {name!r} is defined by {registry[name].benchmark} and {task.benchmark}")
            registry[name] = task
    return registry


_REGISTRY = _collect(_BENCHMARKS)


def task_names() -> list[str]:
    """Every known task, benchmark by benchmark, in the benchmark's own order."""
    return list(_REGISTRY)


def get_task(name: str) -> Task:
    """The task called ``name``; an unknown name is a ``UserError`` listing the known ones."""
    if name not in _REGISTRY:
        raise UserError(f"unknown task {name!r}; choose one of: {', '.join(task_names())}")
    return _REGISTRY[name]


__all__ = ["Task", "TaskData", "get_task", "task_names"]
