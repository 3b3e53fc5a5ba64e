"""Fastfood and intrinsic-dimension fine-tuning (DID / SAID, Aghajanyan et al. 2021).

The fast transform is checked against the dense product H·G·Π·H·B built here from
``scipy.linalg.hadamard``; the method against its contract: d trainable numbers in all, the model
starting exactly at θ0, θ0 never written, the projection fixed by the seed, merge / unmerge.
"""

import json

import numpy as np
import pytest
import torch
from scipy.linalg import hadamard

from peftbench.config import model_config
from peftbench.counting import parameter_counts
from peftbench.errors import UserError
from peftbench.methods import build_method
from peftbench.methods.base import attach
from peftbench.methods.fastfood import Fastfood, fwht, walsh_hadamard
from peftbench.methods.said import SubspaceDelta
from peftbench.methods.delta import backbone_tensors, deltas
from peftbench.models.anatomy import anatomy_of, head_parameter_names
from peftbench.models.load import skeleton_for_classification
from peftbench.train.weights import load_weights
from tests.helpers import adamw_step, apply_method, assert_save_load_round_trip, assert_step_touches_only, batch
from tests.helpers import fresh_adapted, tiny_classifier


pytestmark = pytest.mark.usefixtures("one_thread")

SAID = {"name": "said", "dim": 200, "structured": True, "seed": 0}
DID = {"name": "said", "dim": 60, "structured": False, "seed": 0}
MODELS = ["tiny-bert", "tiny-gpt2"]


# --- the fast Walsh–Hadamard transform and Fastfood -------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 4, 8, 32, 128, 2048])  # 2048 = 16·16·8: a partial last factor
def test_fwht_equals_the_hadamard_matrix(n):
    x = torch.randn(3, n, dtype=torch.float64)
    expected = x @ torch.from_numpy(hadamard(n).astype(np.float64)).T
    assert torch.allclose(fwht(x), expected)


@pytest.mark.parametrize("n", [2, 16, 256])
def test_walsh_hadamard_is_an_involution_up_to_n(n):
    x = torch.randn(n, dtype=torch.float64)
    assert torch.allclose(fwht(fwht(x)), n * x)
    normalised = fwht(x) / n**0.5
    assert torch.allclose(fwht(normalised) / n**0.5, x)  # H/√n is its own inverse
    assert torch.allclose(normalised.norm(), x.norm())  # and orthogonal


def test_fwht_refuses_lengths_that_are_not_powers_of_two():
    with pytest.raises(ValueError, match="power-of-two"):
        fwht(torch.zeros(12))


def test_walsh_hadamard_gradient_is_the_transposed_matrix():
    x = torch.randn(16, dtype=torch.float64, requires_grad=True)
    g = torch.randn(16, dtype=torch.float64)
    walsh_hadamard(x).backward(g)
    H = torch.from_numpy(hadamard(16).astype(np.float64))
    assert torch.allclose(x.grad, H.T @ g)


def _dense_fastfood(f: Fastfood) -> torch.Tensor:
    """(1/σ)·(H G Π H B)[:D, :d] built explicitly from the module's random factors."""
    L = f.L
    H = torch.from_numpy(hadamard(L).astype(np.float64))
    B = torch.diag(f.sign.double())
    Pi = torch.zeros(L, L, dtype=torch.float64)
    Pi[torch.arange(L), f.permutation] = 1.0  # (Π v)_i = v_π(i)
    G = torch.diag(f.gaussian.double())
    sigma = torch.sqrt(f.D * (f.gaussian.double() ** 2).sum())
    return (H @ G @ Pi @ H @ B)[: f.D, : f.d] / sigma


@pytest.mark.parametrize("d, D", [(5, 12), (16, 16), (3, 100), (20, 7)], ids=["d<D", "square", "tall", "d>D"])
def test_fastfood_equals_the_dense_product(d, D):
    f = Fastfood(d, D, torch.Generator().manual_seed(1))
    assert f.L == 1 << int(np.ceil(np.log2(max(d, D))))
    P = _dense_fastfood(f)
    x = torch.randn(d, dtype=torch.float64)
    assert torch.allclose(f(x).double(), P @ x, atol=1e-5)
    # the whole matrix, column by column, and the backward pass P^T g
    columns = torch.stack([f(e).double() for e in torch.eye(d)], dim=1)
    assert torch.allclose(columns, P, atol=1e-5)
    theta = torch.zeros(d, requires_grad=True)
    g = torch.randn(D)
    f(theta).backward(g)
    assert torch.allclose(theta.grad.double(), P.T @ g.double(), atol=1e-4)


def test_fastfood_columns_have_unit_length_when_nothing_is_truncated():
    f = Fastfood(8, 256, torch.Generator().manual_seed(0))  # L = D = 256
    P = _dense_fastfood(f)
    assert torch.allclose(P.norm(dim=0), torch.ones(8, dtype=torch.float64))


def test_fastfood_is_fixed_by_the_seed():
    a, b = (Fastfood(10, 50, torch.Generator().manual_seed(7)) for _ in range(2))
    c = Fastfood(10, 50, torch.Generator().manual_seed(8))
    x = torch.randn(10)
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), c(x))
    assert sorted(a.permutation.tolist()) == list(range(a.L))
    assert set(a.sign.tolist()) <= {-1, 1}


# --- the method ------------------------------------------------------------------------------


def _pretrained_and_adapted(node, model_name):
    reference, tokenizer = tiny_classifier(model_name)
    model, _ = tiny_classifier(model_name)  # same seed: same weights
    method = apply_method(model, node, model_name)
    return reference, model, tokenizer, method


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("node", [SAID, DID], ids=["said", "did"])
def test_trains_exactly_d_numbers(node, model_name):
    reference, model, _, method = _pretrained_and_adapted(node, model_name)
    m = len([n for n, _ in reference.named_parameters() if n not in set(head_parameter_names(reference))])
    sizes = {name: p.numel() for name, p in model.named_parameters()}
    own = method.parameter_names(model)
    assert sum(sizes[name] for name in own) == node["dim"]
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(own) | set(head_parameter_names(model))
    said = model.base_model.said
    if node["structured"]:
        assert said.lam.numel() == m and said.theta.numel() == node["dim"] - m  # Eq. 3: θ^{d−m} and m λ's
        assert torch.equal(said.lam, torch.ones(m))
    else:
        assert said.lam is None and said.theta.numel() == node["dim"]
    # every backbone tensor is in the subspace (one parametrisation per tensor)
    assert len(deltas(model, SubspaceDelta)) == m


@pytest.mark.parametrize("model_name", MODELS + ["tiny-t5"])
def test_starts_exactly_at_the_pretrained_model(model_name):
    reference, model, tokenizer, _ = _pretrained_and_adapted(SAID, model_name)
    inputs = batch(tokenizer)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, reference(**inputs).logits)


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("node", [SAID, DID], ids=["said", "did"])
def test_one_step_moves_only_theta_and_head_and_keeps_theta0_bit_identical(node, model_name):
    reference, model, tokenizer, method = _pretrained_and_adapted(node, model_name)
    own = set(method.parameter_names(model))
    head = set(head_parameter_names(model))
    before, after = assert_step_touches_only(model, own | head, tokenizer)
    assert [name for name in before if name not in own | head]  # something is frozen
    theta = next(n for n in own if n.endswith("theta"))
    assert not torch.equal(after[theta], before[theta])
    # the frozen θ0 are the pretrained tensors, bit for bit
    pretrained = {name: p for name, p, _ in backbone_tensors(reference)}
    originals = {name: p for name, p, _ in backbone_tensors(model)}
    for name, p in pretrained.items():
        module, _, attribute = name.rpartition(".")
        assert torch.equal(originals[f"{module}.parametrizations.{attribute}.original"], p)
    # and the effective weights did move (the whole backbone lives in the subspace)
    query = "bert.encoder.layer.0.attention.self.query" if model_name == "tiny-bert" else "transformer.h.0.attn.c_attn"
    assert not torch.equal(model.get_submodule(query).weight, reference.get_submodule(query).weight)


@pytest.mark.parametrize("model_name", MODELS)
def test_save_load_round_trip_gives_same_logits(model_name, tmp_path):
    _, model, tokenizer, method = _pretrained_and_adapted(SAID, model_name)
    adamw_step(model, tokenizer)
    adamw_step(model, tokenizer)  # λ moves from the second step on (its gradient is 0 while θ = 0)
    path, inputs, trained, _ = assert_save_load_round_trip(
        model, tokenizer, lambda: fresh_adapted(model_name, SAID), tmp_path, method
    )
    other = fresh_adapted(model_name, {**SAID, "seed": 1})
    with torch.no_grad():
        load_weights(other, path)  # another seed is another subspace
        assert not torch.allclose(other(**inputs).logits, trained)


@pytest.mark.parametrize("model_name", MODELS + ["tiny-t5"])
def test_merge_gives_the_same_outputs_and_unmerge_restores(model_name):
    reference, model, tokenizer, method = _pretrained_and_adapted(SAID, model_name)
    said = model.base_model.said
    with torch.no_grad():
        said.theta.normal_(0, 0.05)
        said.lam.uniform_(0.5, 1.5)
    inputs = batch(tokenizer)
    with torch.no_grad():
        adapted = model(**inputs).logits
        assert not torch.allclose(adapted, reference(**inputs).logits)
        method.merge(model)
        assert torch.allclose(model(**inputs).logits, adapted, atol=1e-5)
        method.merge(model)  # idempotent
        assert torch.allclose(model(**inputs).logits, adapted, atol=1e-5)
        method.unmerge(model)
        assert torch.allclose(model(**inputs).logits, adapted, atol=1e-5)
    originals = {name: p for name, p, _ in backbone_tensors(model)}
    for name, p, _ in backbone_tensors(reference):
        head, _, attribute = name.rpartition(".")
        assert torch.allclose(originals[f"{head}.parametrizations.{attribute}.original"], p, atol=1e-6)


def test_tied_embeddings_share_one_update():
    """T5's ``shared`` and ``encoder.embed_tokens`` hold one tensor: both see the same update."""
    _, model, _, method = _pretrained_and_adapted(SAID, "tiny-t5")
    with torch.no_grad():
        model.base_model.said.theta.normal_()
        t5 = model.transformer
        assert torch.equal(t5.shared.weight, t5.encoder.embed_tokens.weight)
        assert torch.equal(t5.shared.weight, t5.decoder.embed_tokens.weight)


def test_dim_must_be_positive_and_said_needs_more_than_one_per_tensor():
    with pytest.raises(UserError, match="dim"):
        build_method({"name": "said", "dim": 0})
    model, _ = tiny_classifier("tiny-bert")
    with pytest.raises(UserError, match="structured=false"):
        apply_method(model, {"name": "said", "dim": 10}, "tiny-bert")


@pytest.mark.parametrize("node", [SAID, DID], ids=["said", "did"])
def test_counts_from_the_config_alone(node):
    """``peftbench params`` builds the architecture on the meta device: the count is still d."""
    model_cfg = model_config("tiny-bert")
    model = skeleton_for_classification(model_cfg)
    method = build_method(node)
    counts = parameter_counts(model, method, attach(method, model, anatomy_of("bert")))
    assert counts["trainable_method"] == node["dim"]


def test_a_runs_evaluation_projects_each_tensor_once_not_once_per_batch(tmp_path, monkeypatch):
    """Through the run command in-process: every W0 + λ P θ of an evaluation comes from one Fastfood
    transform (``Method.evaluating``), however many batches the split has; the metric is unchanged."""
    from peftbench.cli import main
    from peftbench.methods.said import SubspaceDelta

    calls = {"evaluating": 0}
    delta = SubspaceDelta.delta

    def counted(self):
        calls["evaluating"] += torch.is_inference_mode_enabled()
        return delta(self)

    monkeypatch.setattr(SubspaceDelta, "delta", counted)
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    main(["run", "model=tiny-bert", "method=said", "task=rte", "data.source=embedded", "trainer.max_steps=1",
          "trainer.eval_batch_size=4", "trainer.progress=false", f"results_dir={results}"])  # fmt: skip
    (run_dir,) = [p for p in results.iterdir() if not p.name.startswith(".")]
    record = json.loads((run_dir / "record.json").read_text())
    evaluations = len((run_dir / "history.jsonl").read_text().splitlines())
    model, _ = tiny_classifier("tiny-bert")
    tensors = len(backbone_tensors(model))
    assert record["data"]["rows"]["validation"] > 4 * 2  # several batches per evaluation
    assert calls["evaluating"] == tensors * evaluations
