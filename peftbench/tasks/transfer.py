"""Zero-shot transfer between two tasks of one label space: train on a source task, choose the
weights on its validation split, and score the target task's validation rows once with them.

Lester, Al-Rfou & Constant (2021), §5 and Table 2, between the two GLUE paraphrase tasks in both
directions: "we train on the 'in-domain' task, select checkpoints using in-domain validation, and
evaluate zero-shot on the 'out-of-domain' task". ``qqp_to_mrpc`` trains on QQP (363,846 pairs),
selects on QQP's dev set and scores MRPC's 408 dev pairs once; ``mrpc_to_qqp`` the reverse, scoring
QQP's 40,430 dev pairs.

A transfer task is its source task (label space, prompt and label words, metrics, main metric; its
benchmark ``glue_transfer``), with one more held-out split (``Task.test_splits``, scored once with the best weights), named
``<target>_validation``: the target's validation rows, read in the source's format, as a model
trained on the source reads its inputs; the labels line up by index (QQP's not_duplicate /
duplicate, MRPC's not_equivalent / equivalent). Rows come from each task's own source (its data
folder, ``nyu-mll/glue`` on the hub, or its shipped slice: QQP ships none, so the hub or a folder
holding ``glue/QQP`` and ``glue/MRPC`` serves both directions); the source's unlabelled test split
is not read, so a transfer run writes no GLUE submission.
"""

from __future__ import annotations

import dataclasses

from peftbench.tasks import glue
from peftbench.tasks.base import Task, TaskData


def zero_shot(name: str, source: Task, target: Task) -> Task:
    """``source``, trained and selected as it is, with ``target``'s validation rows as a held-out split."""
    if source.label_names and len(source.label_names) != len(target.label_names) or source.metric_names != target.metric_names:
        raise ValueError(f"{source.name} and {target.name} do not share a label space and metrics")
    held_out = f"{target.name}_{target.main_split}"
    own = (source.train_split, *source.eval_splits)

    def load(kind: str, directory=None, splits=None) -> TaskData:
        data = source.load(kind, directory, own if splits is None else [s for s in splits if s in own])
        rows = {split: data.splits[split] for split in own if split in data.splits}
        if splits is not None and held_out not in splits:
            return dataclasses.replace(data, splits=rows)
        other = target.load(kind, directory, (target.main_split,))
        rows[held_out] = other.splits[target.main_split]
        return TaskData(rows, data.source, f"{data.location}; {held_out}: {other.location}",
                        sample=data.sample or other.sample, subset=data.subset)  # fmt: skip

    return dataclasses.replace(
        source, name=name, benchmark=f"{source.benchmark}_transfer", load=load,
        has_embedded=source.has_embedded and target.has_embedded,
        test_splits=(*source.test_splits, held_out), submit=None, submission_splits=(),
    )  # fmt: skip


TASKS = {
    "qqp_to_mrpc": zero_shot("qqp_to_mrpc", glue.TASKS["qqp"], glue.TASKS["mrpc"]),
    "mrpc_to_qqp": zero_shot("mrpc_to_qqp", glue.TASKS["mrpc"], glue.TASKS["qqp"]),
}
