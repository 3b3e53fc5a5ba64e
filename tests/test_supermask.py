"""Supermasks (Zhou et al. 2019; edge-popup, Ramanujan et al. 2020; per task, Wortsman et al. 2020).

What is checked: Bernoulli sampling draws b_i = 1 with probability σ(s_i) while training and
evaluates with 1[s_i > 0], its gradient reaching s as ∂L/∂W' ⊙ W ⊙ σ'(s); edge-popup keeps exactly
the top (1 − sparsity) of |s| per tensor, its gradient ∂L/∂W' ⊙ W ⊙ sign(s), and with
init=magnitude (s = |W|) its first mask removes exactly the smallest |W| of each matrix; a
tiny-bert RTE run (either sampling) leaves every backbone tensor bit-identical, saves only bits and
the head, reloads from them to the same outputs and records its mask bits and measured sparsity; two tasks' runs are
two masks over one backbone, switched by loading either file; a multi-task run and a bad config
are refused in one line (exit 2) before any model loads.
"""

import pytest
import torch

from peftbench.methods.binary_mask import eligible_tensors, mask_of
from peftbench.methods.supermask import BernoulliMask, EdgePopupMask
from peftbench.train.weights import load_weights
from tests.helpers import apply_method, batch, tiny_classifier
from tests.test_learned_mask import assert_backbone_bit_identical, assert_record_has_mask_bits_and_measured_sparsity
from tests.test_learned_mask import assert_refused_before_a_model_loads, assert_saved_as_bits_and_reloaded_from_them, gradients
from tests.test_learned_mask import masked_layer, rebuilt
from tests.test_magnitude_pruning import run_in_process

pytestmark = pytest.mark.usefixtures("one_thread")


def test_bernoulli_samples_with_probability_sigmoid_and_evaluates_its_mode():
    probabilities = torch.tensor([0.05, 0.3, 0.5, 0.8, 0.97])
    scores = torch.logit(probabilities).repeat(4, 1)
    layer, mask = masked_layer(BernoulliMask, scores.clone())
    mask.train()
    torch.manual_seed(0)
    draws = 4000
    kept = sum(mask.training_mask().float() for _ in range(draws)) / draws
    # 4000 draws: a frequency's standard deviation is ≤ 0.008, so 0.03 is > 3.5σ
    assert torch.allclose(kept, probabilities.repeat(4, 1), atol=0.03)
    mask.eval()
    assert mask.current().tolist() == [[False, False, False, True, True]] * 4  # 1[s > 0]; σ(0) = ½ is not kept


def test_bernoulli_gradient_goes_straight_through_the_sample_to_sigmoid():
    scores = torch.randn(4, 6, generator=torch.Generator().manual_seed(5))
    layer, mask = masked_layer(BernoulliMask, scores.clone())
    stored = layer.parametrizations.weight.original.detach().clone()
    torch.manual_seed(1)
    grad, grad_effective, effective = gradients(layer, mask)
    sampled = effective != 0
    assert 0 < int(sampled.sum()) < sampled.numel()
    assert torch.equal(effective, torch.where(sampled, stored, torch.zeros(())))
    sigma = torch.sigmoid(scores)
    torch.testing.assert_close(grad, grad_effective * stored * sigma * (1 - sigma), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.8])
def test_edge_popup_keeps_exactly_the_top_of_absolute_scores(sparsity):
    scores = torch.randn(8, 10, generator=torch.Generator().manual_seed(6))
    removed = round(sparsity * 80)
    layer, mask = masked_layer(EdgePopupMask, scores.clone(), zeros=removed)
    kept = mask.current()
    assert int((~kept).sum()) == removed == mask.zeros
    assert scores.abs()[kept].min() > scores.abs()[~kept].max()
    grad, grad_effective, _ = gradients(layer, mask)
    torch.testing.assert_close(grad, grad_effective * layer.parametrizations.weight.original * scores.sign(), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_edge_popup_magnitude_init_starts_from_the_magnitude_mask(sparsity):
    """s = |W|: before any training the top-k of |s| is the large-final (magnitude) mask."""
    model, _ = tiny_classifier("tiny-bert")
    apply_method(model, {"name": "supermask", "sampling": "topk", "sparsity": sparsity, "init": "magnitude"}, "tiny-bert")
    for _, weight, owners in eligible_tensors(model):
        removed = round(sparsity * weight.numel())
        smallest = weight.detach().abs().reshape(-1).argsort()[:removed]
        expected = torch.ones(weight.numel(), dtype=torch.bool)
        expected[smallest] = False
        assert torch.equal(mask_of(*owners[0]).current().reshape(-1), expected)


@pytest.fixture(scope="module")
def rte_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("supermask")
    session, record = run_in_process(folder, "method=supermask")
    return session, record, folder / record["run_id"]


@pytest.mark.parametrize("sampling", ["bernoulli", "topk"])
def test_supermask_trains_tiny_bert_on_rte_keeping_the_backbone_bit_identical(rte_run, tmp_path, sampling):
    node = {"name": "supermask", "sampling": sampling}
    if sampling == "bernoulli":
        session, record, folder = rte_run
    else:
        session, record = run_in_process(tmp_path, "method=supermask", "method.sampling=topk")
        folder = tmp_path / record["run_id"]
    assert record["status"] == "complete"
    assert_backbone_bit_identical(session, node)  # every backbone tensor
    assert record["params"]["trainable_method"] == 0 and record["params"]["trainable"] == record["params"]["head"]
    reloaded = assert_saved_as_bits_and_reloaded_from_them(session, node, folder)
    assert_record_has_mask_bits_and_measured_sparsity(record, reloaded)
    if sampling == "topk":
        assert all(int((~mask_of(*o[0]).current()).sum()) == p.numel() // 2 for _, p, o in eligible_tensors(reloaded))


def test_two_tasks_are_two_masks_over_one_backbone(rte_run, tmp_path):
    """Wortsman et al.: the backbone is shared, each task's run is its mask (and head): loading a
    run's file into one model switches it to that task, and back."""
    session_a, _, folder_a = rte_run
    session_b, record_b = run_in_process(tmp_path, "method=supermask", "task=mrpc")
    folder_b = tmp_path / record_b["run_id"]
    assert_backbone_bit_identical(session_b, {"name": "supermask"})
    model, _, tokenizer = rebuilt(session_a, {"name": "supermask"})
    inputs = batch(tokenizer)
    with torch.no_grad():
        expected = {folder: session.model.eval()(**inputs).logits for session, folder in ((session_a, folder_a), (session_b, folder_b))}
        assert not torch.equal(expected[folder_a], expected[folder_b])
        for folder in (folder_a, folder_b, folder_a):
            load_weights(model, folder / "method.safetensors")
            assert torch.equal(model(**inputs).logits, expected[folder])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["method=supermask", "method.sampling=gumbel"], "method.sampling must be one of bernoulli, topk"),
        (["method=supermask", "method.sampling=topk", "method.sparsity=1.0"], "method.sparsity must be in [0, 1)"),
        (["method=supermask", "method.sampling=topk", "method.init=uniform"], "method.init must be one of kaiming, magnitude"),
        (["method=supermask", "model=tiny-t5", "task=[rte,mrpc]"], "trains for one task at a time"),
    ],
)
def test_bad_config_is_refused_in_one_line_before_a_model_loads(tmp_path, capsys, monkeypatch, overrides, message):
    assert_refused_before_a_model_loads(tmp_path, capsys, monkeypatch, overrides, message)
