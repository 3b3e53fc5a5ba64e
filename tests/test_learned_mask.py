"""Learned binary masks (methods/learned_mask.py): scores s, b(s), the straight-through estimator.

What is checked: a training forward computes exactly where(b, W, 0) (removed entries +0.0, the
stored weight never written) while ∂L/∂s is ∂L/∂W' ⊙ W times g'(s); bits loaded into a mask fix
it, whatever the scores; the scores are training-only: never counted among the parameters, never
saved in a run's weights; the trainer trains parameters at the rate a method gives them and tells
the method the step it resumes at. Shared by the supermask, mask tuning and movement pruning tests:
a run's backbone rebuilt as the run builds it, its saved file reloaded into it from bits alone.
"""

import math

import pytest
import torch
from safetensors import safe_open

from peftbench.config import TrainerConfig
from peftbench.counting import parameter_counts
from peftbench.formats.classification import ClassificationFormat
from peftbench.methods.base import attach
from peftbench.methods.binary_mask import eligible_tensors, mask_of, pack_bits
from peftbench.methods.learned_mask import ScoredMask, top_k
from peftbench.models.anatomy import head_parameter_names
from peftbench.plan import method_from_config
from peftbench.tasks import get_task
from peftbench.train.batching import train_loader
from peftbench.train.checkpoint import Checkpoints
from peftbench.train.loop import fit
from peftbench.train.weights import load_weights
from tests.helpers import apply_method, batch, refused_before_a_model_loads, tiny_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_BERT_MATRICES = 16_384  # the eligible entries of tiny-bert: tests/test_binary_mask.py


class _Above(ScoredMask):
    """The simplest rule: b = 1[s > 0], g(s) = s."""

    def delivered(self):
        return self.scores.detach() > 0


def masked_layer(mask_class, scores, **kwargs):
    """A Linear with random frozen weights (seed 3), masked by ``mask_class(scores, **kwargs)``;
    returns (layer, mask)."""
    from peftbench.methods.delta import add_delta

    layer = torch.nn.Linear(scores.shape[1], scores.shape[0])
    with torch.no_grad():
        layer.weight.copy_(torch.randn(scores.shape, generator=torch.Generator().manual_seed(3)))
    layer.weight.requires_grad_(False)
    add_delta([(layer, "weight")], mask_class(scores, **kwargs))
    return layer, layer.parametrizations.weight[0]


def gradients(layer, mask):
    """(∂L/∂s, ∂L/∂W', the W' used) of one training forward and backward of a squared output,
    ∂L/∂W' read off the effective weight itself (apart from the estimator)."""
    mask.train()
    effective = layer.weight
    effective.retain_grad()
    x = torch.randn(5, layer.in_features, generator=torch.Generator().manual_seed(4))
    torch.nn.functional.linear(x, effective, layer.bias).pow(2).sum().backward()
    return mask.scores.grad, effective.grad, effective.detach()


def _scores():
    return torch.randn(4, 6, generator=torch.Generator().manual_seed(0))


def test_a_training_forward_is_exactly_the_masked_weight_and_the_estimator_reaches_the_scores():
    layer, mask = masked_layer(_Above, _scores())
    stored = layer.parametrizations.weight.original
    before = stored.detach().clone()
    keep = mask.scores.detach() > 0
    grad, grad_effective, effective = gradients(layer, mask)
    assert torch.equal(effective, torch.where(keep, before, torch.zeros(())))
    assert not effective[~keep].signbit().any()  # +0.0, negative weights included
    # ∂L/∂W' again from a plain layer holding W' = W ⊙ b as a leaf, no mask involved
    reference = torch.nn.Linear(6, 4)
    with torch.no_grad():
        reference.weight.copy_(torch.where(keep, before, torch.zeros(())))
        reference.bias.copy_(layer.bias)
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(4))
    reference(x).pow(2).sum().backward()
    torch.testing.assert_close(grad_effective, reference.weight.grad)
    torch.testing.assert_close(grad, reference.weight.grad * before, rtol=1e-6, atol=1e-7)
    assert torch.equal(stored, before)


def test_the_delivered_mask_follows_the_scores_after_a_fused_optimiser_step():
    """The trainer's fused AdamW updates the scores without a version count: nothing may cache b."""
    layer, mask = masked_layer(_Above, _scores())
    first = mask.current().clone()
    mask.scores.grad = mask.scores.detach().sign()  # every score steps towards 0 and past it
    torch.optim.AdamW([mask.scores], lr=5.0, fused=True).step()
    assert torch.equal(mask.current(), mask.scores.detach() > 0) and torch.equal(mask.current(), ~first)


def test_bits_loaded_into_a_mask_fix_it_whatever_the_scores():
    layer, mask = masked_layer(_Above, _scores())
    wanted = torch.rand(4, 6, generator=torch.Generator().manual_seed(2)) > 0.5
    assert not torch.equal(mask.current(), wanted)
    mask.packed_mask.copy_(pack_bits(wanted))  # as load_state_dict writes a saved mask
    assert torch.equal(mask.current(), wanted) and mask.fixed
    with torch.no_grad():
        mask.scores.copy_(torch.randn(4, 6))
    mask.train()
    assert torch.equal(mask.current(), wanted) and torch.equal(layer.weight != 0, wanted & (layer.parametrizations.weight.original != 0))


def test_top_k_keeps_the_largest_and_breaks_ties_by_position():
    scores = torch.tensor([[0.5, 2.0, 0.5], [-1.0, 0.5, 3.0]])
    assert top_k(scores, 2).tolist() == [[False, True, False], [False, False, True]]
    assert top_k(scores, 4).tolist() == [[True, True, True], [False, False, True]]  # the earlier 0.5 of three
    assert top_k(scores, 0).sum() == 0 and top_k(scores, 6).all()


@pytest.mark.parametrize("node", [{"name": "supermask"}, {"name": "mask_tuning"}, {"name": "movement_pruning"}])
def test_scores_are_training_only_counted_nowhere(node):
    model, _ = tiny_classifier("tiny-bert")
    method = apply_method(model, node, "tiny-bert")
    scores = method.training_only(model)
    assert len(scores) == 12 and all(model.get_parameter(n).requires_grad for n in scores)
    counts = parameter_counts(model, method, head_parameter_names(model))
    architecture = sum(p.numel() for n, p in model.named_parameters() if n not in set(scores))
    assert counts["total"] == architecture and counts["mask_bits"] == TINY_BERT_MATRICES
    assert not set(scores) & set(method.parameter_names(model))


# --- what the trainer does for learned masks ---------------------------------------------------


def _movement_fit(tmp_path, on_resume=None, epochs=1, scores_lr=1e-2):
    """tiny-bert with hard movement pruning fitted on 8 rows, batch 4 (2 steps an epoch), at lr 1e-5."""
    import types
    from dataclasses import asdict

    model, tokenizer = tiny_classifier("tiny-bert")
    method = apply_method(model, {"name": "movement_pruning", "sparsity": 0.5, "scores_lr": scores_lr}, "tiny-bert")
    rows = [{"text": f"a short example sentence number {i}", "text_pair": None, "label": i % 2} for i in range(8)]
    fmt = ClassificationFormat(get_task("sst2"), tokenizer, {"max_length": 32})
    values = {**asdict(TrainerConfig()), "progress": False, "device": "cpu", "lr": 1e-5, "epochs": epochs, "batch_size": 4,
              "warmup_ratio": 0.0, "log_every": 1}  # fmt: skip
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    fit(model, train_loader(fmt.encode(rows), fmt, 4, 0), lambda m: {"validation": {"accuracy": 0.5}}, ("validation", "accuracy"),
        types.SimpleNamespace(**values), checkpoints=Checkpoints(tmp_path / "checkpoints"), on_resume=on_resume,
        learning_rates=method.learning_rates(model))  # fmt: skip
    return model, method, before


def test_the_trainer_trains_scores_at_their_own_rate(tmp_path):
    """Adam's first steps move each parameter by about its rate: the scores by ~1e-2, W by ~1e-5."""
    model, method, before = _movement_fit(tmp_path)
    scores = set(method.training_only(model))
    weights = [n for n, _ in model.named_parameters() if n.endswith("parametrizations.weight.original")]
    moved_scores = max(float((model.get_parameter(n).detach() - before[n]).abs().max()) for n in scores)
    moved_weights = max(float((model.get_parameter(n).detach() - before[n]).abs().max()) for n in weights)
    assert 1e-2 <= moved_scores <= 2.1e-2  # two steps of ≤ 1e-2 (Adam: |m̂/√v̂| ≤ 1 at the first steps)
    assert 1e-5 <= moved_weights <= 2.1e-5


def test_the_trainer_tells_the_method_the_step_it_resumes_at(tmp_path):
    _movement_fit(tmp_path)  # one epoch: a checkpoint after step 2
    resumed = []
    _, method, _ = _movement_fit(tmp_path, on_resume=resumed.append, epochs=2)
    assert resumed == [2]


# --- shared by the learned-mask methods' end-to-end tests ---------------------------------------


def rebuilt(session, node):
    """The run's backbone built again as the run builds it (its seed), a fresh method on it."""
    from peftbench.pipeline import build_model

    p = session.plan
    part = p.parts[0]
    model, tokenizer, _ = build_model(p.model_cfg, part.task, p.config["seed"], part.format, p.config["task"])
    method = method_from_config(node)
    attach(method, model, p.anatomy, tokenizer)
    return model.eval(), method, tokenizer


def assert_saved_as_bits_and_reloaded_from_them(session, node, folder):
    """The run's file holds bit-packed masks and no scores; loaded into the rebuilt backbone (whose
    fresh scores give other masks), it gives the run's logits exactly. Returns the reloaded model."""
    path = folder / "method.safetensors"
    with safe_open(str(path), "pt") as handle:
        keys = list(handle.keys())
        packed = [handle.get_tensor(k) for k in keys if k.endswith(".packed_mask")]
    assert not [k for k in keys if k.endswith(".scores")]
    assert len(packed) == 12 and all(t.dtype == torch.uint8 for t in packed)
    assert sum(t.numel() for t in packed) == TINY_BERT_MATRICES // 8
    model, method, tokenizer = rebuilt(session, node)
    inputs = batch(tokenizer)
    session.model.eval()
    with torch.no_grad():
        trained = session.model(**inputs).logits
        assert not torch.equal(model(**inputs).logits, trained)
        load_weights(model, path)
        assert torch.equal(model(**inputs).logits, trained)
    trained_masks = [mask_of(*owners[0]).current() for _, _, owners in eligible_tensors(session.model)]
    assert all(torch.equal(mask_of(*owners[0]).current(), m) for (_, _, owners), m in zip(eligible_tensors(model), trained_masks))
    return model


def assert_backbone_bit_identical(session, node, names=None):
    """Every backbone tensor of the trained run (or those in ``names``) equals the rebuilt one's, bit for bit."""
    fresh, _, _ = rebuilt(session, node)
    head = set(head_parameter_names(fresh))
    trained = {n: p for n, p in session.model.named_parameters()}
    checked = [n for n, _ in fresh.named_parameters() if n not in head and not n.endswith(".scores") and (names is None or n in names)]
    assert checked and all(torch.equal(trained[n].cpu(), dict(fresh.named_parameters())[n]) for n in checked)
    return checked


def assert_record_has_mask_bits_and_measured_sparsity(record, reloaded):
    assert record["params"]["mask_bits"] == TINY_BERT_MATRICES
    zeros = sum(int((getattr(*owners[0]) == 0).sum()) for _, _, owners in eligible_tensors(reloaded))
    assert record["sparsity"] == {"measured": zeros / TINY_BERT_MATRICES, "zeros": zeros, "entries": TINY_BERT_MATRICES}
    assert 0 < zeros < TINY_BERT_MATRICES and math.isfinite(record["metrics"]["main"]["value"])


def assert_refused_before_a_model_loads(tmp_path, capsys, monkeypatch, overrides, message):
    """``peftbench run`` with ``overrides`` exits 2 with one line holding ``message``, before any
    model loads and before anything is written."""
    from tests.test_magnitude_pruning import RUN

    err = refused_before_a_model_loads(capsys, monkeypatch, ["run", *RUN, f"results_dir={tmp_path / 'results'}", *overrides])
    assert message in err
    assert not (tmp_path / "results").exists()
