"""Zero-shot cross-lingual transfer: train on English, score another language once.

The protocol of XTREME (Hu et al. 2020, "XTREME: A Massively Multilingual Multi-task Benchmark
for Evaluating Cross-lingual Generalization"): fine-tune on the English training data, select the
model on English development data, evaluate on each target language's test set; and of MAD-X
(Pfeiffer et al. 2020), whose task adapter is trained on English and evaluated with the target
language's adapter stacked under it. A cross-lingual task bound to ``task.language=<code>`` trains
on the English ``train`` split, chooses its weights on the English ``validation`` split, and scores
the target language's ``test`` split once with them (``Task.test_splits``). ``task.language=en`` is the
monolingual task (English train, validation and test). Each row names its language (``language``).

A task declares one ``DataSource`` per language (its data folder, hub config and shipped slice);
``transfer_load`` joins the English one and the target one into the task's ``load``.
"""

from __future__ import annotations

from typing import Callable, Sequence

from peftbench.errors import UserError
from peftbench.tasks.base import TaskData
from peftbench.tasks.sources import DataSource, wanted

SOURCE_LANGUAGE = "en"
ENGLISH_SPLITS = ("train", "validation")
TARGET_SPLIT = "test"


def checked_language(language: str, languages: Sequence[str], what: str) -> str:
    """``language`` if ``what`` has data in it, else one line naming the languages it has."""
    if language not in languages:
        raise UserError(f"{what} has no language {language!r}; set task.language to one of: {', '.join(languages)}")
    return language


def transfer_load(english: DataSource, target: DataSource) -> Callable[..., TaskData]:
    """The ``load(source, directory, splits)`` of a task trained on ``english`` and tested on
    ``target``: ``train`` and ``validation`` from the first, ``test`` from the second (one source
    read once when the target language is English)."""

    def load(kind: str, directory=None, splits=None) -> TaskData:
        if target is english:
            return english.load(kind, directory, splits)
        own = [split for split in ENGLISH_SPLITS if wanted(split, splits)]
        parts = []
        if own:
            data = english.load(kind, directory, own)
            parts.append((data, {split: data.splits[split] for split in own if split in data.splits}, ", ".join(own)))
        if wanted(TARGET_SPLIT, splits):
            data = target.load(kind, directory, (TARGET_SPLIT,))
            parts.append((data, {TARGET_SPLIT: data.splits[TARGET_SPLIT]} if TARGET_SPLIT in data.splits else {},
                          TARGET_SPLIT))  # fmt: skip
        rows = {split: split_rows for _, found, _ in parts for split, split_rows in found.items()}
        location = "; ".join(f"{named}: {data.location}" for data, _, named in parts)
        return TaskData(rows, parts[0][0].source, location, sample=any(data.sample for data, _, _ in parts))

    return load
