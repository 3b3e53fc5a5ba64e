"""The task registry: every benchmark module (``glue``, ``superglue``, ``e2e``, ``raft``,
``classification``, ``samsum``, ``wikisql``, ``mrqa``, ``transfer``, ``commonsense``,
``adapterfusion_suite``, ``houlsby_suite``, ``webnlg``, ``dart``, ``xnli``, ``wikiann``, ``mlm``,
``metamath``, ``conll2003``)
exposes ``TASKS``, a dict of task name → ``Task``, and joins the registry by being listed in
``_BENCHMARKS``. Task names are unique across benchmarks.
"""

from __future__ import annotations

from types import ModuleType

from peftbench.errors import UserError
from peftbench.tasks import (
    adapterfusion_suite, classification, commonsense, conll2003, dart, e2e, glue, houlsby_suite, metamath, mlm, mrqa, raft,
    samsum, superglue, transfer, webnlg, wikiann, wikisql, xnli,
)
from peftbench.tasks.base import RUN_OPTIONS, Task, TaskData

_BENCHMARKS: tuple[ModuleType, ...] = (
    glue, superglue, e2e, raft, classification, samsum, wikisql, mrqa, transfer, commonsense, adapterfusion_suite,
    houlsby_suite, webnlg, dart, xnli, wikiann, mlm, metamath, conll2003,
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


def get_task(name: str, options: dict | None = None) -> Task:
    """The task called ``name``; an unknown name is a ``UserError`` listing the known ones.

    ``options`` (the run's task config) binds a task that reads run options (``Task.options``:
    ``task.language``, ``task.text_file``) to the values set there; a value set for a task that
    does not read it is refused in one line."""
    if name not in _REGISTRY:
        raise UserError(f"unknown task {name!r}; choose one of: {', '.join(task_names())}")
    task = _REGISTRY[name]
    own = dict(task.options)
    given = {key: options[key] for key in RUN_OPTIONS if options and options.get(key) is not None}
    for key in given:
        if key not in own:
            readers = ", ".join(other for other, known in _REGISTRY.items() if key in dict(known.options))
            raise UserError(f"task {name} has no option task.{key} (tasks that read it: {readers}); drop it")
    if given.items() <= own.items():
        return task
    return task.configure(**{**own, **given})


__all__ = ["Task", "TaskData", "get_task", "task_names"]
