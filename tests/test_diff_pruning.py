"""Diff pruning (Guo, Rush & Kim 2021): θ0 + z ⊙ w with a hard-concrete L0 penalty, projected onto a
budget by magnitude, then fine-tuned with the mask fixed, in one run.

What is checked: the expected L0 a gate reports equals Σ σ(α − β log(−l/r)) computed here from the
formula, and a Monte-Carlo estimate of P(z ≠ 0) from the gate's own draws; the penalty a run adds
in phase 1 is λ times it, and nothing after; phase 1 trains exactly w, α (at the release's own α
rate) and the head; the
projection keeps exactly k entries, the k largest |ẑ ⊙ w| (ẑ the test-time gate written here), and
phase 3 starts from those values with θ0 stored bit-identical; a tiny-bert RTE run trains end to
end, counts k parameters and the mask as bits, and its saved δ rebuilds (as method=sparse with
the run as reference) to the same outputs; bad configs are refused.
"""

import json
import math

import pytest
import torch

from peftbench.errors import UserError
from peftbench.launch import compose
from peftbench.methods import build_method
from peftbench.methods.base import attach
from peftbench.methods.delta import backbone_tensors, deltas
from peftbench.methods.diff_pruning import DiffPruningConfig, HardConcreteDelta
from peftbench.models.anatomy import anatomy_of, head_parameter_names
from peftbench.plan import plan
from peftbench.run import finish, setup, train
from peftbench.train.weights import load_weights
from tests.helpers import apply_method, batch, tiny_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def gate_with(alphas: torch.Tensor, **options) -> HardConcreteDelta:
    """A gate whose locations α are ``alphas``."""
    gate = HardConcreteDelta(torch.zeros_like(alphas), DiffPruningConfig(density=0.1, **options))
    with torch.no_grad():
        gate.alpha.copy_(alphas)
    return gate


STRETCHES = [{}, {"lower": -0.1, "upper": 1.1, "temperature": 2 / 3}]  # the paper's, and Louizos et al.'s


@pytest.mark.parametrize("options", STRETCHES, ids=["diff-pruning", "louizos"])
def test_expected_l0_is_the_hard_concrete_formula_and_the_chance_a_gate_opens(options):
    alphas = torch.linspace(-4.0, 4.0, 17, dtype=torch.float64)
    lower, upper, beta = options.get("lower", -1.5), options.get("upper", 1.5), options.get("temperature", 1.0)
    per_entry = [sigmoid(a - beta * math.log(-lower / upper)) for a in alphas.tolist()]
    assert float(gate_with(alphas, **options).expected_l0().detach()) == pytest.approx(sum(per_entry), rel=1e-12)

    draws = 20_000
    gate = gate_with(alphas.repeat(draws, 1), **options)  # one independent z per row
    torch.manual_seed(0)
    gate.train()
    with torch.no_grad():
        opened = (gate.gate() != 0).double().mean(0)
    for p, estimate in zip(per_entry, opened.tolist()):
        assert abs(estimate - p) < 5 * math.sqrt(p * (1 - p) / draws)


def test_a_gate_is_a_stretched_clamped_sigmoid_and_deterministic_when_evaluating():
    gate = gate_with(torch.tensor([-3.0, 0.0, 0.2, 5.0], dtype=torch.float64))
    gate.eval()
    expected = [min(1.0, max(0.0, sigmoid(a) * 3.0 - 1.5)) for a in (-3.0, 0.0, 0.2, 5.0)]
    assert gate.gate().tolist() == pytest.approx(expected)
    gate.train()
    draws = torch.stack([gate.gate() for _ in range(200)])
    assert draws.min() >= 0 and draws.max() <= 1 and (draws == 0).any() and (draws == 1).any()


def _fake_phase_one(model, method, generator, seen):
    """Stands in for the run's trainer: records what trains and the penalty, then moves w and a."""

    def fake_train(lr=None, on_step=None):
        seen["lr"] = lr
        seen["trainable"] = {n for n, p in model.named_parameters() if p.requires_grad}
        seen["rates"] = method.learning_rates(model)
        gates = [m for m in model.modules() if isinstance(m, HardConcreteDelta)]
        seen["penalty"] = float(method.penalty(model).detach())
        seen["expected"] = method.config.l0 * sum(float(torch.sigmoid(g.alpha).sum().detach()) for g in gates)  # log(−l/r) = 0
        with torch.no_grad():
            for g in gates:
                g.w.copy_(torch.randn(g.w.shape, generator=generator) * 0.01)
                g.alpha.add_(torch.randn(g.alpha.shape, generator=generator) * 5)  # α = 5 ± 5: some gates close

    return fake_train


def test_search_trains_w_alpha_and_head_with_the_l0_penalty_then_projects_exactly_k_largest():
    model, tokenizer = tiny_classifier("tiny-bert")
    theta0 = {n: t.clone() for n, t in model.state_dict().items()}
    node = {"name": "diff_pruning", "k": 500, "density": None, "l0": 1e-3}
    method = build_method(node)
    head = head_parameter_names(model)
    seen = {}
    method.search(model, head, _fake_phase_one(model, method, torch.Generator().manual_seed(0), seen))
    eligible = [name for name, _, _ in backbone_tensors(model)]
    assert seen["lr"] == 1e-5
    gate = {n: f"{n.rpartition('.')[0]}.parametrizations.{n.rpartition('.')[2]}.0" for n in eligible}
    assert seen["trainable"] == {f"{gate[n]}.{p}" for n in eligible for p in ("w", "alpha")} | set(head)
    assert seen["rates"] == {f"{gate[n]}.alpha": 0.1 for n in eligible}  # α at its own rate, the release's 0.1
    assert method.learning_rates(model) == {}
    assert seen["penalty"] == pytest.approx(seen["expected"], rel=1e-6)
    assert method.penalty(model) is None  # phase 1 over: no L0 term
    assert all(torch.equal(t, theta0[n]) for n, t in model.state_dict().items())  # gates gone, θ0 bit-identical

    # ẑ ⊙ w as the test writes it, from the projection the method kept
    scores = torch.cat([method._projected[n].abs() for n in eligible])
    attach(method, model, anatomy_of("bert"))
    masks = method.masks(model)
    assert sum(m.numel() for m in masks.values()) == 500
    offsets = dict(zip(eligible, torch.tensor([0, *[theta0[n].numel() for n in eligible]]).cumsum(0).tolist()))
    chosen = torch.cat([offsets[n] + i for n, i in masks.items()])
    assert chosen.unique().numel() == 500 and scores[chosen].min() >= scores.topk(500).values.min()
    values = {n: p for n, p in model.named_parameters() if n.endswith(".sparse_values")}
    for name, indices in masks.items():
        path, _, attribute = name.rpartition(".")
        start = values[f"{path}.parametrizations.{attribute}.0.sparse_values"]
        assert torch.equal(start, method._projected[name][indices])
        stored = dict(model.named_parameters())[f"{path}.parametrizations.{attribute}.original"]
        assert torch.equal(stored, theta0[name])


def test_projected_values_are_the_test_time_gate_times_w():
    """δ̂ = min(1, max(0, σ(α)(r − l) + l)) ⊙ w, written here from α and w."""
    model, _ = tiny_classifier("tiny-bert")
    method = build_method({"name": "diff_pruning", "k": 50, "density": None})
    kept = {}

    def fake_train(lr=None, on_step=None):
        with torch.no_grad():
            for name, _, _, gate in deltas(model, HardConcreteDelta):
                gate.w.uniform_(-1, 1)
                gate.alpha.uniform_(-3, 13)
                kept[name] = ((torch.sigmoid(gate.alpha) * 3.0 - 1.5).clamp(0, 1) * gate.w).reshape(-1).clone()

    method.search(model, head_parameter_names(model), fake_train)
    assert kept and all(torch.equal(method._projected[name], value) for name, value in kept.items())
    assert any((value == 0).any() for value in kept.values())  # some gates closed


def test_applied_outside_a_run_it_points_to_the_sparse_reference():
    model, _ = tiny_classifier("tiny-bert")
    with pytest.raises(UserError, match="method=sparse with method.reference"):
        apply_method(model, {"name": "diff_pruning", "density": 0.005}, "tiny-bert")


@pytest.mark.parametrize(
    "node, message",
    [
        ({"density": 0.1, "k": 5}, "exactly one"),
        ({"density": None, "k": None}, "exactly one"),
        ({"lower": 0.0}, "method.lower < 0"),
        ({"upper": 1.0}, "method.upper > 1"),
        ({"temperature": 0}, "temperature"),
        ({"l0": -1.0}, "method.l0"),
        ({"alpha_lr": 0}, "alpha_lr"),
    ],
)
def test_config_is_checked(node, message):
    with pytest.raises(UserError, match=message):
        build_method({"name": "diff_pruning", "density": 0.005, **node})


RUN = ["model=tiny-bert", "task=rte", "data.source=embedded", "data.max_train_samples=32", "data.max_eval_samples=16",
       "trainer.max_steps=4", "trainer.batch_size=8", "trainer.progress=false", "task.max_length=32", "seed=0"]  # fmt: skip


def test_diff_pruning_trains_tiny_bert_on_rte_saves_in_lt_sft_format_and_reloads(tmp_path):
    p = plan(compose([*RUN, f"results_dir={tmp_path}", "method=diff_pruning", "method.k=300", "method.density=null"]))
    session = setup(p)
    finish(session, train(session))
    record, folder = session.record, tmp_path / session.record["run_id"]
    assert record["status"] == "complete" and record["cost"]["search_s"] > 0
    phases = [json.loads(line)["phase"] for line in (folder / "history.jsonl").read_text().splitlines()]
    assert phases == ["search", "train"]
    eligible = sum(p.numel() for _, p, _ in backbone_tensors(tiny_classifier("tiny-bert")[0]))
    assert record["params"]["trainable_method"] == 300 and record["params"]["mask_bits"] == eligible
    assert 0 < record["diff_pruning"]["expected_l0"] < 1 and 0 < record["diff_pruning"]["open_gates"] <= 1

    reference, tokenizer = tiny_classifier("tiny-bert")  # θ0: the same seed's tiny-bert
    pretrained = dict(reference.named_parameters())
    for name, param in session.model.named_parameters():
        if name.endswith(".original"):
            assert torch.equal(param.detach().cpu(), pretrained[name.replace("parametrizations.", "").replace(".original", "")])

    rebuilt, _ = tiny_classifier("tiny-bert")  # the same θ0 (the file holds δ and the head only)
    apply_method(rebuilt, {"name": "sparse", "k": 300, "density": None, "reference": str(folder)}, "tiny-bert")
    session.model.eval()
    inputs = batch(tokenizer)
    with torch.no_grad():
        trained = session.model.cpu()(**inputs).logits
        assert not torch.equal(rebuilt(**inputs).logits, trained)
        load_weights(rebuilt, folder / "method.safetensors")
        assert torch.equal(rebuilt(**inputs).logits, trained)
