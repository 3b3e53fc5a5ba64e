"""Evaluation in sorted, large batches (``Format.predict``) gives what one row at a time gives.

``predict`` sorts a split by length, predicts it in batches of ``eval_batch_size`` under inference
mode and puts the predictions back in the rows' order. Against the plainest evaluation there is,
each row alone in its original order (no padding, no sorting), the predictions and the task's
metric must be the same, on a tiny random BERT (SST-2: classes; STS-B: a regression's floats, equal
up to the last bits that padding changes).
"""

from __future__ import annotations

import pytest

from tests.helpers import planned


def _setup(tmp_path, task: str):
    from peftbench.methods.base import attach
    from peftbench.pipeline import build_model

    p = planned(tmp_path, "tiny-bert", "method=lora", f"task={task}", "data.max_eval_samples=48")
    part = p.parts[0]
    model, tokenizer, fmt = build_model(p.model_cfg, part.task, 0, part.format, p.config["task"])
    attach(p.method, model, p.anatomy, tokenizer, train_head=True)
    rows = part.data.splits[part.task.main_split]
    return model.eval(), fmt, part.task, rows, fmt.encode(rows)


def _one_at_a_time(model, fmt, features):
    import torch

    with torch.no_grad():
        return [fmt.predict_batch(model, fmt.collate([f]))[0] for f in features]


def test_sorted_batches_predict_each_row_as_alone_in_order(tmp_path):
    from peftbench.formats.base import sorted_batches

    model, fmt, task, rows, features = _setup(tmp_path, "sst2")
    lengths = [fmt.length(f) for f in features]
    batches = sorted_batches(lengths, 16)
    assert len(batches) == 3 and len(set(lengths)) > 5  # several batches of mixed lengths: padding happens
    assert [lengths[i] for b in batches for i in b] == sorted(lengths, reverse=True)
    alone = _one_at_a_time(model, fmt, features)
    batched = fmt.predict(model, features, 16)
    assert batched == alone
    assert task.score(batched, rows) == task.score(alone, rows)


def test_regression_outputs_match_in_order(tmp_path):
    model, fmt, _, _, features = _setup(tmp_path, "stsb")
    alone = _one_at_a_time(model, fmt, features)
    batched = fmt.predict(model, features, 128)
    assert batched == pytest.approx(alone, abs=1e-5)  # padding changes a float's last bits at most
    assert len(set(batched)) > 1  # not a constant output that any order would match


def test_predictions_are_made_under_inference_mode(tmp_path):
    import torch

    model, fmt, _, _, features = _setup(tmp_path, "sst2")
    seen = []
    model.register_forward_hook(lambda module, args, output: seen.append(torch.is_inference_mode_enabled()))
    fmt.predict(model, features[:4], 2)
    assert seen == [True, True]
