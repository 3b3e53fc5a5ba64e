"""Movement pruning (Sanh, Wolf & Rush 2020): scores learned by −W·∂L/∂W, hard top-v and soft σ(S) > τ.

What is checked: on a toy layer, hard movement keeps exactly the round(v · n) highest scores; the
score gradient is W ⊙ ∂L/∂W' (∂L/∂W' the gradient of the masked weight), so a gradient step adds
−α W ⊙ ∂L/∂W' to S (the paper's S = −α_S Σ ∂L/∂W · W), while W's gradient is ∂L/∂W' ⊙ M; the cubic
schedule's values at chosen steps are the formula's, worked by hand; training forwards follow the
schedule and evaluations the final value; soft keeps σ(S) > τ (at least 0.5% + 1 entries) and its
regulariser is λ(t) · mean Σσ(S)/n; the embeddings stay frozen, the scores train at their own rate;
tiny-bert RTE runs (hard and soft) keep the embeddings bit-identical, save bits (no scores), reload
to the same outputs and record mask bits and measured sparsity; bad configs are refused in one
line (exit 2) before any model loads.
"""

import pytest
import torch

from peftbench.errors import UserError
from peftbench.methods import build_method
from peftbench.methods.binary_mask import eligible_tensors
from peftbench.methods.movement_pruning import Clock, MovementMask, above_threshold, cubic
from peftbench.models.anatomy import head_parameter_names
from tests.helpers import apply_method, tiny_classifier
from tests.test_learned_mask import assert_backbone_bit_identical, assert_record_has_mask_bits_and_measured_sparsity
from tests.test_learned_mask import assert_refused_before_a_model_loads, assert_saved_as_bits_and_reloaded_from_them, gradients
from tests.test_learned_mask import masked_layer
from tests.test_magnitude_pruning import run_in_process

pytestmark = pytest.mark.usefixtures("one_thread")


def _clock(initial, final, total=None, step=0):
    clock = Clock(initial, final, warmup=0.1, cooldown=0.2)
    clock.total, clock.step = total, step
    return clock


def _scores(seed=0, shape=(8, 10)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("remaining", [0.1, 0.25, 0.5, 1.0])
def test_hard_movement_keeps_exactly_the_top_v_scores(remaining):
    scores = _scores()
    _, mask = masked_layer(MovementMask, scores.clone(), clock=_clock(1.0, remaining), soft=False, zeros=0)
    kept = mask.current()
    assert int(kept.sum()) == round(remaining * 80)
    if remaining < 1:
        assert scores[kept].min() > scores[~kept].max()


def test_the_score_gradient_is_minus_the_movement_and_w_learns_through_the_mask():
    scores = _scores(1, (4, 6))
    layer, mask = masked_layer(MovementMask, scores.clone(), clock=_clock(1.0, 0.5), soft=False, zeros=0)
    layer.parametrizations.weight.original.requires_grad_(True)  # W trains alongside, as movement pruning does
    grad, grad_effective, effective = gradients(layer, mask)
    stored = layer.parametrizations.weight.original
    kept = effective != 0
    assert int(kept.sum()) == 12
    torch.testing.assert_close(grad, stored.detach() * grad_effective, rtol=1e-6, atol=1e-8)  # ∂L/∂S = W ⊙ ∂L/∂W'
    torch.testing.assert_close(stored.grad, grad_effective * kept)  # ∂L/∂W = ∂L/∂W' ⊙ M
    alpha = 0.1
    before = mask.scores.detach().clone()
    torch.optim.SGD([mask.scores], lr=alpha).step()
    torch.testing.assert_close(mask.scores.detach() - before, -alpha * stored.detach() * grad_effective, rtol=1e-5, atol=1e-7)


def test_the_cubic_schedule_at_chosen_steps():
    """T = 100, t_i = 10, t_f = 20: 70 steps of pruning from 1.0 to 0.1, worked by hand."""
    expected = {0: 1.0, 10: 1.0, 11: 0.1 + 0.9 * (69 / 70) ** 3, 45: 0.1 + 0.9 * 0.125, 80: 0.1, 81: 0.1, 100: 0.1}
    for step, value in expected.items():
        assert cubic(step, 100, 10, 20, 1.0, 0.1) == pytest.approx(value, abs=1e-12), step
    assert cubic(45, 100, 10, 20, 1.0, 0.1) == pytest.approx(0.2125)
    assert cubic(45, 100, 10, 20, 0.0, 0.1) == pytest.approx(0.0875)  # soft: τ from 0 up to 0.1
    clock = _clock(1.0, 0.1, total=100, step=45)  # warmup 0.1, cooldown 0.2 of 100 steps
    assert clock.steps(100) == (10, 20) and clock.value() == pytest.approx(0.2125)


def test_training_forwards_follow_the_schedule_and_evaluations_the_final_value():
    scores = _scores(2)
    clock = _clock(1.0, 0.2, total=100, step=5)  # in the warm-up: dense while training
    _, mask = masked_layer(MovementMask, scores.clone(), clock=clock, soft=False, zeros=0)
    assert int(mask.training_mask().sum()) == 80 and int(mask.current().sum()) == 16
    clock.step = 45  # v = 0.2 + 0.8 · 0.125 = 0.3
    assert int(mask.training_mask().sum()) == 24 and int(mask.current().sum()) == 16


def test_soft_keeps_scores_above_the_threshold_and_at_least_half_a_percent():
    scores = _scores(3, (20, 30))
    threshold = 0.6
    kept = above_threshold(scores, threshold)
    assert torch.equal(kept, torch.sigmoid(scores) > threshold)
    few = above_threshold(scores - 10, threshold)  # σ(S) < 0.6 everywhere: int(0.005 · 600) + 1 = 4 kept, the highest
    assert int(few.sum()) == 4 and scores[few].min() > scores[~few].max()


def test_soft_regulariser_is_lambda_t_times_the_mean_of_sigmoid_sums():
    model, _ = tiny_classifier("tiny-bert")
    method = apply_method(model, {"name": "movement_pruning", "variant": "soft", "regularization": 400.0}, "tiny-bert")
    method.check_steps(100)
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for name in method.training_only(model):
            model.get_parameter(name).copy_(torch.randn(model.get_parameter(name).shape, generator=generator))
    method.after_step(model, 45)  # τ(45) = 0.1 · (1 − 0.125) = 0.0875, λ(45) = 400 · 0.875 = 350
    means = [float(torch.sigmoid(model.get_parameter(n).detach()).mean()) for n in method.training_only(model)]
    assert float(method.penalty(model).detach()) == pytest.approx(350 * sum(means) / 12, rel=1e-5)
    assert build_method({"name": "movement_pruning"}).penalty(model) is None  # hard: none


def test_embeddings_stay_frozen_and_scores_train_at_their_own_rate():
    model, _ = tiny_classifier("tiny-bert")
    method = apply_method(model, {"name": "movement_pruning", "scores_lr": 0.05}, "tiny-bert")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    scores = set(method.training_only(model))
    assert not [n for n in trainable if ".embeddings." in n]
    assert trainable == set(method.parameter_names(model)) | scores | set(head_parameter_names(model))
    assert {f"{n.rpartition('.')[0]}.parametrizations.weight.original" for n, _, _ in eligible_tensors(model)} <= trainable
    assert "bert.pooler.dense.weight" in trainable and "bert.encoder.layer.0.output.LayerNorm.weight" in trainable
    assert method.learning_rates(model) == {name: 0.05 for name in scores}


def test_a_schedule_without_steps_to_prune_in_is_refused_and_resume_sets_the_step():
    method = build_method({"name": "movement_pruning", "warmup": 0.4, "cooldown": 0.5})
    with pytest.raises(UserError, match="leave none of the run's 2 optimiser steps"):
        method.check_steps(2)
    method.check_steps(100)  # t_i = 40, t_f = 50: pruning from step 40 to 50
    method.resume_at(None, 45)
    assert method.clock.value() == pytest.approx(0.1 + 0.9 * 0.5**3)


@pytest.mark.parametrize("variant", ["hard", "soft"])
def test_movement_pruning_trains_tiny_bert_on_rte_saves_and_reloads(tmp_path, variant):
    # soft: τ = ½ (σ(S) > ½ ⇔ S > 0), so that four steps remove some weights and keep others
    node = {"name": "movement_pruning", "variant": variant, "threshold": 0.5}
    session, record = run_in_process(tmp_path, "method=movement_pruning", f"method.variant={variant}", "method.threshold=0.5")
    assert record["status"] == "complete"
    embeddings = [n for n, _ in session.model.named_parameters() if ".embeddings." in n]
    assert len(assert_backbone_bit_identical(session, node, embeddings)) == len(embeddings) == 5
    reloaded = assert_saved_as_bits_and_reloaded_from_them(session, node, tmp_path / record["run_id"])
    assert_record_has_mask_bits_and_measured_sparsity(record, reloaded)
    if variant == "hard":  # 90% of each matrix removed, the rest (and every other trained tensor) counted
        removed = sum(p.numel() - round(0.1 * p.numel()) for _, p, _ in eligible_tensors(reloaded))
        assert record["sparsity"]["zeros"] >= removed
        sizes = {n: p.numel() for n, p in reloaded.named_parameters()}
        own = build_method(node).parameter_names(reloaded)
        assert record["params"]["trainable_method"] == sum(sizes[n] for n in own) - removed


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["method=movement_pruning", "method.variant=medium"], "method.variant must be one of hard, soft"),
        (["method=movement_pruning", "method.sparsity=1"], "method.sparsity must be in [0, 1)"),
        (["method=movement_pruning", "method.threshold=0"], "method.threshold must be in (0, 1)"),
        (["method=movement_pruning", "method.warmup=0.5", "method.cooldown=0.5"], "warmup + cooldown < 1"),
        (["method=movement_pruning", "method.scores_lr=0"], "method.scores_lr must be positive"),
        (["method=movement_pruning", "method.regularization=-1"], "method.regularization must be ≥ 0"),
        (["method=movement_pruning", "method.warmup=0.45", "method.cooldown=0.45", "trainer.max_steps=2"], "leave none of the run's"),
    ],
)
def test_bad_config_is_refused_in_one_line_before_a_model_loads(tmp_path, capsys, monkeypatch, overrides, message):
    assert_refused_before_a_model_loads(tmp_path, capsys, monkeypatch, overrides, message)
