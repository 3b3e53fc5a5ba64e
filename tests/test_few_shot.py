"""Few-shot training sets (``data.train_samples``): k training rows drawn with the run's seed as
Hyperformer draws them (``hyperformer/data/tasks.py``, ``get_shuffled_sampled_split``: a
``torch.randperm`` of the split from a generator seeded with the seed, its first k indices)."""

from __future__ import annotations

import pytest

from peftbench.errors import UserError
from peftbench.launch import compose
from peftbench.plan import few_shot, plan

ROWS = [{"text": str(i), "label": i % 2} for i in range(50)]


def test_k_distinct_rows_of_train_in_the_permutations_order():
    import torch

    drawn = few_shot(ROWS, 16, seed=3)
    # Hyperformer's draw for the same seed, written out from its code
    generator = torch.Generator()
    generator.manual_seed(3)
    indices = torch.randperm(len(ROWS), generator=generator).tolist()[:16]
    assert drawn == [ROWS[i] for i in indices]
    assert len({row["text"] for row in drawn}) == 16


def test_the_draw_depends_on_the_seed_only():
    assert few_shot(ROWS, 8, seed=0) == few_shot(list(ROWS), 8, seed=0)
    assert few_shot(ROWS, 8, seed=0) != few_shot(ROWS, 8, seed=1)
    assert few_shot(ROWS, 4, seed=0) == few_shot(ROWS, 8, seed=0)[:4]  # smaller k: a prefix of the same draw


def test_k_at_least_the_split_keeps_every_row():
    assert sorted(few_shot(ROWS, 250, seed=0), key=lambda r: int(r["text"])) == ROWS  # CB's 250 of 250


def _plan(tmp_path, *overrides):
    return plan(compose(["model=tiny-bert", "task=rte", "data.source=embedded", f"results_dir={tmp_path}", *overrides]))


def test_a_run_trains_on_k_rows_and_its_id_and_record_say_so(tmp_path):
    full = _plan(tmp_path)
    few = _plan(tmp_path, "data.train_samples=16", "seed=2")
    rows = few.parts[0].data.splits["train"]
    assert len(rows) == 16 and rows == few_shot(full.parts[0].data.splits["train"], 16, seed=2)
    assert "16 training rows drawn with seed 2" in few.parts[0].data.location
    assert few.parts[0].data.sample == full.parts[0].data.sample  # the paper's setting: not marked as a sample
    assert few.run_id != _plan(tmp_path, "data.train_samples=32", "seed=2").run_id
    assert full.run_id == _plan(tmp_path, "data.train_samples=null").run_id  # unset: the id it always had


def test_a_k_below_one_is_refused_before_anything_loads(tmp_path):
    with pytest.raises(UserError, match="data.train_samples must be ≥ 1"):
        _plan(tmp_path, "data.train_samples=0")
