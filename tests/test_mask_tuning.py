"""Mask tuning (Zhao et al. 2020; Mallya et al. 2018): m = 1[m^real ≥ τ], straight-through estimator.

What is checked: the binary mask is exactly m^real ≥ τ (a score at τ kept); the straight-through
gradient reaches the real-valued mask and equals the gradient w.r.t. the masked weight times W;
the real-valued masks start in U(−α, (α + τ)/p − α), a fraction p of them below τ, or with
controlled_init=magnitude at 0 for exactly the round(p · n) smallest |W| of each matrix and at 2τ
elsewhere (the first mask is magnitude pruning's), the uniform start keeping the run ids recorded
before the option; only the blocks' linear matrices are masked (not the embeddings) and what trains is the real-valued masks
and the head; a tiny-bert RTE run leaves every backbone tensor bit-identical, saves only bits and
the head, reloads from them to the same outputs and records mask bits and measured sparsity; a
bad config is refused in one line (exit 2) before any model loads.
"""

import pytest
import torch

from peftbench.config import identity
from peftbench.launch import compose
from peftbench.methods.binary_mask import eligible_tensors, mask_of
from peftbench.methods.mask_tuning import ThresholdMask
from peftbench.models.anatomy import head_parameter_names
from peftbench.plan import plan
from tests.helpers import apply_method, tiny_classifier
from tests.test_learned_mask import assert_backbone_bit_identical, assert_record_has_mask_bits_and_measured_sparsity
from tests.test_learned_mask import assert_refused_before_a_model_loads, assert_saved_as_bits_and_reloaded_from_them, gradients
from tests.test_learned_mask import masked_layer
from tests.test_magnitude_pruning import run_in_process

pytestmark = pytest.mark.usefixtures("one_thread")

TAU = 1e-2


def test_the_mask_is_the_real_valued_mask_at_or_above_the_threshold():
    scores = torch.tensor([[0.0, TAU, 0.5], [-0.02, 0.00999, 0.0101]])
    _, mask = masked_layer(ThresholdMask, scores, threshold=TAU, zeros=0)
    assert mask.current().tolist() == [[False, True, True], [False, False, True]]


def test_the_straight_through_gradient_reaches_the_real_valued_mask():
    """∂L/∂M^real := ∂L/∂M = ∂L/∂(W ⊙ M) ⊙ W, and W itself gets none (it is frozen)."""
    scores = torch.rand(4, 6, generator=torch.Generator().manual_seed(0)) * 0.04 - 0.01  # about half below τ
    layer, mask = masked_layer(ThresholdMask, scores.clone(), threshold=TAU, zeros=0)
    grad, grad_effective, effective = gradients(layer, mask)
    stored = layer.parametrizations.weight.original
    kept = scores >= TAU
    assert 0 < int(kept.sum()) < kept.numel() and torch.equal(effective, torch.where(kept, stored, torch.zeros(())))
    assert grad.abs().min() > 0  # removed entries get their gradient too: they can come back
    torch.testing.assert_close(grad, grad_effective * stored, rtol=1e-6, atol=1e-8)
    assert stored.grad is None


def test_masks_start_uniform_with_the_asked_fraction_below_the_threshold():
    model, _ = tiny_classifier("tiny-bert")
    method = apply_method(model, {"name": "mask_tuning", "init_sparsity": 0.2}, "tiny-bert")
    scores = torch.cat([model.get_parameter(n).detach().reshape(-1) for n in method.training_only(model)])
    high = (2e-2 + TAU) / 0.2 - 2e-2  # (α + τ)/p − α = 0.13
    assert scores.min() >= -2e-2 and scores.max() < high and scores.max() > high - 0.01
    assert abs(float((scores < TAU).float().mean()) - 0.2) < 0.01  # 16,384 draws: σ ≈ 0.003


def test_magnitude_init_starts_from_the_magnitude_mask():
    """Zhao et al.'s code's controlled_init="magnitude": m^real = 0 for the p smallest |W| of each
    matrix, 2τ for the rest, so the first binary mask removes exactly those weights."""
    model, _ = tiny_classifier("tiny-bert")
    apply_method(model, {"name": "mask_tuning", "controlled_init": "magnitude", "init_sparsity": 0.3}, "tiny-bert")
    tensors = eligible_tensors(model)
    assert len(tensors) == 12
    for _, weight, owners in tensors:
        mask = mask_of(*owners[0])
        removed = round(0.3 * weight.numel())
        smallest = weight.detach().abs().reshape(-1).argsort()[:removed]
        expected = torch.ones(weight.numel(), dtype=torch.bool)
        expected[smallest] = False
        assert torch.equal(mask.current().reshape(-1), expected) and mask.zeros == removed
        assert torch.equal(mask.scores.detach().unique(), torch.tensor([0.0, 2 * TAU]))  # float32 2τ


def test_the_uniform_start_keeps_the_run_ids_recorded_before_controlled_init_existed():
    runs = {init: plan(compose(["model=tiny-bert", "task=rte", "data.source=embedded", "method=mask_tuning",
                                f"method.controlled_init={init}"])) for init in ("null", "magnitude")}  # fmt: skip
    assert "controlled_init" not in identity(runs["null"].config)["method"]
    assert identity(runs["magnitude"].config)["method"]["controlled_init"] == "magnitude"
    assert runs["null"].run_id != runs["magnitude"].run_id


def test_only_the_blocks_matrices_are_masked_and_only_masks_and_head_train():
    model, _ = tiny_classifier("tiny-bert")
    method = apply_method(model, {"name": "mask_tuning"}, "tiny-bert")
    masked = [name for name, _, owners in eligible_tensors(model, embeddings=True) if mask_of(*owners[0]) is not None]
    assert len(masked) == 12 and all(".encoder.layer." in name for name in masked)  # no embedding table
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(method.training_only(model)) | set(head_parameter_names(model))
    assert method.parameter_names(model) == []


def test_mask_tuning_trains_tiny_bert_on_rte_keeping_the_backbone_bit_identical(tmp_path):
    node = {"name": "mask_tuning"}
    session, record = run_in_process(tmp_path, "method=mask_tuning")
    assert record["status"] == "complete" and record["params"]["trainable_method"] == 0
    assert_backbone_bit_identical(session, node)
    reloaded = assert_saved_as_bits_and_reloaded_from_them(session, node, tmp_path / record["run_id"])
    assert_record_has_mask_bits_and_measured_sparsity(record, reloaded)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["method=mask_tuning", "method.init_sparsity=0"], "method.init_sparsity must be in (0, 1)"),
        (["method=mask_tuning", "method.init_scale=-1"], "method.init_scale must be positive"),
        (["method=mask_tuning", "method.threshold=-0.5"], "method.threshold must lie above"),
        (["method=mask_tuning", "+method.embeddings=true"], "method.embeddings"),
        (["method=mask_tuning", "method.controlled_init=random"], "method.controlled_init must be null"),
        (["method=mask_tuning", "method.controlled_init=magnitude", "method.threshold=0"], "method.threshold must be positive"),
    ],
)
def test_bad_config_is_refused_in_one_line_before_a_model_loads(tmp_path, capsys, monkeypatch, overrides, message):
    assert_refused_before_a_model_loads(tmp_path, capsys, monkeypatch, overrides, message)
