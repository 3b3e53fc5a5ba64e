"""K-fold cross-validation over a small labelled split (RAFT's 50 training rows).

RAFT publishes no validation set and hides its test labels, so dev scores come from K-fold
cross-validation on the training rows. (T-Few's RAFT reader, ``raft_cross_validation``, holds out
one contiguous 10-row slice of the 50; here the folds are seeded and, where possible, stratified,
so that a fold's macro-F1 sees every class.)

``cross_validation_split(rows, folds, fold, seed)`` deals the rows into ``folds`` disjoint
validation folds and returns ``(train_rows, validation_rows)`` for fold number ``fold``:

- **stratified** when every class has at least ``folds`` rows: each class's rows (classes in
  sorted label order) are shuffled with ``random.Random(seed)`` and dealt round-robin into the
  folds, the dealing going on from class to class, so every fold holds ⌊n_c/K⌋ or ⌈n_c/K⌉ rows of
  each class c and fold sizes differ by at most one;
- otherwise (a class rarer than the fold count, e.g. RAFT's Banking77 with 37 classes in 50 rows)
  a **plain seeded shuffle**: all rows shuffled with ``random.Random(seed)``, fold k takes the
  shuffled positions k, k+K, k+2K, ….

Either way every row is in exactly one validation fold, the K validation folds cover the rows,
the result depends on nothing but (row labels and order, folds, seed), and both parts keep the
rows' original order. ``random.Random(seed).shuffle`` gives the same permutation on every Python
3 version, so a fold is the same set of rows on every machine.
"""

from __future__ import annotations

import random
from typing import Sequence

from peftbench.errors import UserError

FOLDS_FIX = "set data.folds to an integer ≥ 2 and data.fold to one of 0 … data.folds − 1"


def is_stratifiable(labels: Sequence, folds: int) -> bool:
    """True when every class has at least ``folds`` rows, so that each fold can hold one."""
    counts: dict = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return bool(counts) and min(counts.values()) >= folds


def fold_assignment(labels: Sequence, folds: int, seed: int) -> list[int]:
    """The validation fold (0 … folds − 1) of each row, given the rows' labels (see the module doc)."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise UserError(f"data.folds={folds!r} is not a fold count; {FOLDS_FIX}")
    if folds > len(labels):
        raise UserError(
            f"data.folds={folds} is more folds than the {len(labels)} labelled rows; "
            f"set data.folds to at most {len(labels)}"
        )
    if any(label is None for label in labels):
        raise UserError("cross-validation needs labelled rows and some rows have no label; "
                        "split the labelled train split, not the test split")  # fmt: skip
    rng = random.Random(seed)
    assignment = [0] * len(labels)
    if is_stratifiable(labels, folds):
        by_class: dict = {}
        for index, label in enumerate(labels):
            by_class.setdefault(label, []).append(index)
        dealt = 0
        for label in sorted(by_class, key=_label_order):
            members = by_class[label]
            rng.shuffle(members)
            for index in members:
                assignment[index] = dealt % folds
                dealt += 1
    else:
        order = list(range(len(labels)))
        rng.shuffle(order)
        for position, index in enumerate(order):
            assignment[index] = position % folds
    return assignment


def cross_validation_split(
    rows: Sequence[dict], folds: int, fold: int, seed: int = 0
) -> tuple[list[dict], list[dict]]:
    """``(train_rows, validation_rows)`` of fold ``fold`` of ``folds`` over labelled ``rows``.

    Rows are dicts with a ``label``; the validation rows are fold ``fold``'s share and the train
    rows are all the others, both in the rows' original order. Bad ``folds``/``fold`` values and
    unlabelled rows are ``UserError``s (they come from the run config, ``data.folds``/``data.fold``).
    """
    assignment = fold_assignment([row["label"] for row in rows], folds, seed)
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < folds:
        raise UserError(f"data.fold={fold!r} is not a fold of data.folds={folds}; {FOLDS_FIX}")
    train_rows = [row for row, k in zip(rows, assignment) if k != fold]
    validation_rows = [row for row, k in zip(rows, assignment) if k == fold]
    return train_rows, validation_rows


def _label_order(label) -> tuple:
    """Sort key for class labels: numbers by value, anything else by its text, numbers first."""
    if isinstance(label, (int, float)) and not isinstance(label, bool):
        return (0, label, "")
    return (1, 0, str(label))
