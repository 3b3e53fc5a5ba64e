"""Sparse fine-tuning with a fixed-size mask (LT-SFT / diff pruning's δ): θ = θ0 + δ, |δ|₀ ≤ k.

What is checked: the method trains exactly k numbers; the mask has k distinct entries, chosen as
``mask_from`` says (random by seed, top-k |θ0|, or LT-SFT's top-k |θ1 − θ0| from a full run's
saved weights); the model starts at θ0 and θ0 is never written; after merging, exactly the masked
weights differ from the pretrained ones; unmerge restores them bit for bit.
"""

import pytest
import torch
from safetensors.torch import save_file

from peftbench.config import model_config
from peftbench.counting import parameter_counts
from peftbench.errors import UserError
from peftbench.launch import compose
from peftbench.methods import build_method
from peftbench.methods.base import attach
from peftbench.methods.delta import backbone_tensors
from peftbench.models.anatomy import anatomy_of, head_parameter_names
from peftbench.models.load import skeleton_for_classification
from peftbench.plan import plan
from peftbench.run import execute
from peftbench.train.weights import load_weights
from tests.helpers import adamw_step, apply_method, assert_save_load_round_trip, assert_step_touches_only, batch
from tests.helpers import fresh_adapted, tiny_classifier


pytestmark = pytest.mark.usefixtures("one_thread")

K = 300
RANDOM = {"name": "sparse", "k": K, "mask_from": "random", "seed": 0}
MAGNITUDE = {"name": "sparse", "k": K, "mask_from": "magnitude"}
MODELS = ["tiny-bert", "tiny-gpt2", "tiny-t5"]


def _adapted(node, model_name):
    reference, tokenizer = tiny_classifier(model_name)
    model, _ = tiny_classifier(model_name)  # same seed: same pretrained weights
    return reference, model, tokenizer, apply_method(model, node, model_name)


def _flat_pretrained(reference) -> dict[str, torch.Tensor]:
    return {name: p.detach().reshape(-1) for name, p, _ in backbone_tensors(reference)}


def _effective(model, reference) -> dict[str, torch.Tensor]:
    """The weights the adapted model computes with, under the pretrained names."""
    return {name: getattr(model.get_submodule(name.rpartition(".")[0]), name.rpartition(".")[2]).detach().reshape(-1)
            for name, _, _ in backbone_tensors(reference)}  # fmt: skip


def _originals(model, reference) -> dict[str, torch.Tensor]:
    """The stored θ0 of the adapted model (``parametrizations.<attr>.original`` where masked)."""
    params = dict(model.named_parameters())
    out = {}
    for name, _, _ in backbone_tensors(reference):
        head, _, attribute = name.rpartition(".")
        out[name] = params.get(name, params.get(f"{head}.parametrizations.{attribute}.original"))
    return out


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("node", [RANDOM, MAGNITUDE], ids=["random", "magnitude"])
def test_trains_exactly_k_numbers_on_a_k_entry_mask(node, model_name):
    reference, model, _, method = _adapted(node, model_name)
    sizes = {name: p.numel() for name, p in model.named_parameters()}
    own = method.parameter_names(model)
    assert sum(sizes[name] for name in own) == K
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(own) | set(head_parameter_names(model))
    masks = method.masks(model)
    pretrained = _flat_pretrained(reference)
    assert sum(m.numel() for m in masks.values()) == K
    for name, indices in masks.items():
        assert indices.unique().numel() == indices.numel()  # distinct
        assert 0 <= int(indices.min()) and int(indices.max()) < pretrained[name].numel()


def test_density_is_a_fraction_of_the_backbone():
    reference, model, _, method = _adapted({**RANDOM, "k": None, "density": 0.01}, "tiny-bert")
    backbone = sum(p.numel() for _, p, _ in backbone_tensors(reference))
    counts = sum(m.numel() for m in method.masks(model).values())
    assert counts == round(0.01 * backbone)


def test_random_mask_is_fixed_by_the_seed():
    masks = []
    for seed in (0, 0, 1):
        _, model, _, method = _adapted({**RANDOM, "seed": seed}, "tiny-bert")
        masks.append({name: m.tolist() for name, m in method.masks(model).items()})
    assert masks[0] == masks[1]
    assert masks[0] != masks[2]


def test_magnitude_mask_is_the_top_k_pretrained_weights():
    reference, model, _, method = _adapted(MAGNITUDE, "tiny-bert")
    pretrained = _flat_pretrained(reference)
    chosen = torch.cat([pretrained[n][i].abs() for n, i in method.masks(model).items()])
    everything = torch.cat(list(pretrained.values())).abs()
    assert chosen.min() >= everything.topk(K).values.min()


def test_change_mask_is_lt_sft_top_k_of_a_full_run(tmp_path):
    """LT-SFT phase 2: the k largest |θ1 − θ0| of a full fine-tuning run's saved weights."""
    reference, _ = tiny_classifier("tiny-bert")
    pretrained = {name: p.detach().clone() for name, p, _ in backbone_tensors(reference)}
    generator = torch.Generator().manual_seed(3)
    theta1 = {name: p + 1e-4 * torch.randn(p.shape, generator=generator) for name, p in pretrained.items()}
    moved = {
        "bert.encoder.layer.1.attention.self.query.weight": [0, 5, 77],
        "bert.embeddings.word_embeddings.weight": [12, 30000],
        "bert.pooler.dense.bias": [3],
    }
    for name, positions in moved.items():
        theta1[name].view(-1)[positions] += 1.0
    head = {name: p.detach().clone() for name, p in reference.named_parameters() if name.startswith("classifier")}
    run_dir = tmp_path / "full-run"
    run_dir.mkdir()
    save_file({**theta1, **head}, str(run_dir / "method.safetensors"))

    model, _ = tiny_classifier("tiny-bert")
    method = apply_method(model, {"name": "sparse", "k": 6, "mask_from": "change", "reference": str(run_dir)}, "tiny-bert")
    assert {n: m.tolist() for n, m in method.masks(model).items()} == moved

    partial = tmp_path / "partial.safetensors"
    save_file({"bert.pooler.dense.bias": theta1["bert.pooler.dense.bias"]}, str(partial))
    model, _ = tiny_classifier("tiny-bert")
    with pytest.raises(UserError, match="full run|method=full"):
        apply_method(model, {"name": "sparse", "k": 6, "mask_from": "change", "reference": str(partial)}, "tiny-bert")


@pytest.mark.parametrize("model_name", MODELS)
def test_starts_at_the_pretrained_model(model_name):
    reference, model, tokenizer, _ = _adapted(RANDOM, model_name)
    with torch.no_grad():
        assert torch.equal(model(**batch(tokenizer)).logits, reference(**batch(tokenizer)).logits)


@pytest.mark.parametrize("model_name", MODELS)
def test_one_step_moves_only_values_and_head_and_theta0_stays(model_name):
    # magnitude on tiny-bert picks big weights anywhere; take a dense-enough random mask to get gradients
    reference, model, tokenizer, method = _adapted({**RANDOM, "k": 5000}, model_name)
    own = set(method.parameter_names(model))
    head = set(head_parameter_names(model))
    before, after = assert_step_touches_only(model, own | head, tokenizer)
    assert any(not torch.equal(after[n], before[n]) for n in own)
    for name, stored in _originals(model, reference).items():
        assert torch.equal(stored, _flat_pretrained(reference)[name].view_as(stored))
    # the effective weights differ from θ0 only on the mask
    masks = method.masks(model)
    pretrained = _flat_pretrained(reference)
    for name, weight in _effective(model, reference).items():
        changed = (weight != pretrained[name]).nonzero().flatten()
        assert set(changed.tolist()) <= set(masks.get(name, torch.empty(0)).tolist())


@pytest.mark.parametrize("model_name", MODELS)
def test_merge_changes_exactly_the_k_masked_weights_and_unmerge_restores_bit_exact(model_name):
    reference, model, tokenizer, method = _adapted(RANDOM, model_name)
    with torch.no_grad():
        for name in method.parameter_names(model):
            dict(model.named_parameters())[name].uniform_(0.5, 1.0)  # every masked value moves
        inputs = batch(tokenizer)
        adapted = model(**inputs).logits
        method.merge(model)
        assert torch.allclose(model(**inputs).logits, adapted, atol=1e-5)
        pretrained = _flat_pretrained(reference)
        masks = method.masks(model)
        differing = 0
        for name, stored in _originals(model, reference).items():
            changed = (stored.reshape(-1) != pretrained[name]).nonzero().flatten()
            assert changed.tolist() == sorted(masks.get(name, torch.empty(0, dtype=torch.long)).tolist())
            differing += changed.numel()
        assert differing == K
        method.merge(model)  # idempotent
        assert torch.allclose(model(**inputs).logits, adapted, atol=1e-5)
        method.unmerge(model)
        for name, stored in _originals(model, reference).items():
            assert torch.equal(stored.reshape(-1), pretrained[name])
        assert torch.allclose(model(**inputs).logits, adapted, atol=1e-5)


@pytest.mark.parametrize("model_name", MODELS)
def test_save_load_round_trip_gives_same_logits(model_name, tmp_path):
    _, model, tokenizer, method = _adapted({**RANDOM, "k": 5000}, model_name)
    adamw_step(model, tokenizer)
    rebuild = lambda: fresh_adapted(model_name, {**RANDOM, "k": 5000})  # the mask is rebuilt from the config
    assert_save_load_round_trip(model, tokenizer, rebuild, tmp_path, method)


def test_embeddings_and_layer_norms_can_be_left_out():
    node = {**RANDOM, "k": None, "density": 0.2, "embeddings": False, "layer_norms": False}
    _, model, _, method = _adapted(node, "tiny-bert")
    names = set(method.masks(model))
    assert names and not any("embeddings" in n or "LayerNorm" in n for n in names)


@pytest.mark.parametrize(
    "node, message",
    [
        ({"name": "sparse", "density": 0.1, "k": 5}, "exactly one"),
        ({"name": "sparse", "density": None, "k": None}, "exactly one"),
        ({"name": "sparse", "density": 1.5, "k": None}, "density"),
        ({"name": "sparse", "density": None, "k": 0}, "method.k"),
        ({"name": "sparse", "k": 5, "mask_from": "movement"}, "mask_from"),
        ({"name": "sparse", "k": 5, "mask_from": "random", "reference": "/tmp"}, "only with method.mask_from=change"),
        ({"name": "sparse", "k": 5, "search_lr": 0}, "search_lr"),
        ({"name": "sparse", "k": 5, "mask_from": "change", "reference": "/nonexistent/run"}, "does not exist"),
    ],
)
def test_config_is_checked(node, message):
    node = {"density": None, **node}
    with pytest.raises(UserError, match=message):
        build_method(node)


def test_k_larger_than_the_backbone_is_refused():
    model, _ = tiny_classifier("tiny-bert")
    with pytest.raises(UserError, match="exceeds"):
        apply_method(model, {"name": "sparse", "density": None, "k": 10**9}, "tiny-bert")


@pytest.mark.parametrize("node", [{**RANDOM, "density": None}, {"name": "sparse", "density": 0.005}], ids=["k", "density"])
def test_counts_from_the_config_alone(node):
    model = skeleton_for_classification(model_config("tiny-bert"))
    method = build_method(node)
    backbone = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("classifier"))
    counts = parameter_counts(model, method, attach(method, model, anatomy_of("bert")))
    assert counts["trainable_method"] == (K if node.get("k") else round(0.005 * backbone))


# --- LT-SFT in one run: search (phase 1–2), reset, sparse training (phase 3) ----------------------

RUN = ["model=tiny-bert", "task=sst2", "data.source=embedded", "data.max_train_samples=32", "data.max_eval_samples=16",
       "trainer.max_steps=4", "trainer.batch_size=8", "trainer.progress=false", "task.max_length=32", "seed=0"]  # fmt: skip


def _run(results, *extra):
    return execute(plan(compose([*RUN, f"results_dir={results}", *extra])))


def test_search_trains_densely_then_puts_every_weight_back():
    """Phase 1 trains every eligible weight and the head; afterwards the model is θ0 bit for bit and
    |θ1 − θ0| is what the mask is chosen from."""
    model, _ = tiny_classifier("tiny-bert")
    theta0 = {n: t.clone() for n, t in model.state_dict().items()}
    method = build_method({"name": "sparse", "k": 10, "density": None})
    head = head_parameter_names(model)
    seen = {}

    def train(lr):
        seen["lr"] = lr
        seen["trainable"] = {n for n, p in model.named_parameters() if p.requires_grad}
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.5)
            model.get_submodule("bert.encoder.layer.1.output.dense").weight.view(-1)[[3, 9]] += 2.0

    assert method.searches
    method.search(model, head, train)
    assert seen["lr"] == 2e-5
    assert seen["trainable"] == {n for n, _ in model.named_parameters()}  # backbone and head
    assert all(torch.equal(t, theta0[n]) for n, t in model.state_dict().items())
    assert not any(p.requires_grad for p in model.parameters())
    attach(method, model, anatomy_of("bert"), train_head=True)
    assert method.masks(model)["bert.encoder.layer.1.output.dense.weight"].tolist()[:2] == [3, 9]


def test_change_mask_outside_a_run_needs_a_reference():
    model, _ = tiny_classifier("tiny-bert")
    with pytest.raises(UserError, match="searches its mask in the run"):
        apply_method(model, {"name": "sparse", "k": 10, "density": None}, "tiny-bert")


def test_lt_sft_run_masks_the_top_k_changes_of_the_equivalent_full_run(tmp_path):
    """The search phase is a full fine-tuning run: the sparse run's mask is the top-k |θ1 − θ0| of a
    ``method=full`` run with the same seed, data, steps and rate; the run saves the mask with its
    values, and a later sparse run rebuilds the model from them (reference = the sparse run)."""
    sparse = _run(tmp_path, "method=sparse", "method.k=200", "method.density=null")
    full = _run(tmp_path, "method=full", "trainer.lr=2e-5")
    assert sparse["status"] == full["status"] == "complete"
    assert sparse["params"]["trainable_method"] == 200 and sparse["cost"]["search_s"] > 0
    history = (tmp_path / sparse["run_id"] / "history.jsonl").read_text().splitlines()
    assert '"phase": "search"' in history[0] and '"phase": "train"' in history[-1]

    reference, _ = tiny_classifier("tiny-bert")
    from safetensors.torch import load_file

    theta1 = load_file(str(tmp_path / full["run_id"] / "method.safetensors"))
    pretrained = {name: p.detach() for name, p, _ in backbone_tensors(reference)}
    change = torch.cat([(theta1[n] - p).abs().reshape(-1) for n, p in pretrained.items()])
    bounds = dict(zip(pretrained, torch.tensor([0, *[p.numel() for p in pretrained.values()]]).cumsum(0).tolist()))
    saved = load_file(str(tmp_path / sparse["run_id"] / "method.safetensors"))
    from peftbench.methods.delta import tensor_name

    chosen = sorted(bounds[tensor_name(k)] + i for k, v in saved.items() if k.endswith(".indices") for i in v.tolist())
    assert chosen == sorted(change.topk(200).indices.tolist())

    model, tokenizer = tiny_classifier("tiny-bert")
    node = {"name": "sparse", "k": 200, "density": None, "reference": str(tmp_path / sparse["run_id"])}
    method = apply_method(model, node, "tiny-bert")
    load_weights(model, tmp_path / sparse["run_id"] / "method.safetensors")
    values = {n: p for n, p in model.named_parameters() if n.endswith(".sparse_values")}
    assert values and all(torch.equal(p, saved[n]) for n, p in values.items())
    assert sum(m.numel() for m in method.masks(model).values()) == 200
    with pytest.raises(UserError, match="sparse mask of 200 entries"):
        apply_method(tiny_classifier("tiny-bert")[0], {**node, "k": 100}, "tiny-bert")


# --- LT-SFT's L1 penalty on θ − θ0 (full_l1 in phase 1, sparse_l1 in phase 3) ---------------------

L1 = 100.0  # large enough that λ/N stands well above float rounding of the task gradient


def _gradients(model, inputs, penalty=None) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss = model(**inputs, labels=torch.tensor([0, 1])).loss
    (loss if penalty is None else loss + penalty(model)).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_sparse_l1_adds_lambda_sign_of_phi_over_n_to_the_gradient_of_every_trained_parameter():
    """Phase 3: the k values are θ − θ0 themselves, the head is measured from its initialisation;
    each gradient gains λ · sign(θ − θ0) / N (N the model's parameters, as LT-SFT's release)."""
    model, tokenizer = tiny_classifier("tiny-bert")
    n = sum(p.numel() for p in model.parameters())
    head_start = {name: p.detach().clone() for name, p in model.named_parameters() if name.startswith("classifier")}
    method = apply_method(model, {**RANDOM, "k": 5000, "sparse_l1": L1}, "tiny-bert")
    generator = torch.Generator().manual_seed(2)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in method.parameter_names(model):
            values = torch.randn(params[name].shape, generator=generator)
            params[name].copy_(values * (torch.rand(values.shape, generator=generator) > 0.3))  # some stay exactly 0
        params["classifier.weight"].add_(torch.randn(params["classifier.weight"].shape, generator=generator))
    inputs = batch(tokenizer)
    plain, penalised = _gradients(model, inputs), _gradients(model, inputs, method.penalty)
    moved = {name: params[name].detach() for name in method.parameter_names(model)}
    moved.update({name: params[name].detach() - start for name, start in head_start.items()})
    assert set(moved) == set(penalised)
    for name, distance in moved.items():
        torch.testing.assert_close(penalised[name] - plain[name], L1 * torch.sign(distance) / n, atol=1e-3 * L1 / n, rtol=0)
    assert build_method({**RANDOM, "k": 5000}).penalty(model) is None  # 0 by default: no term


def test_full_l1_adds_lambda_sign_of_theta_minus_theta0_over_n_while_searching():
    model, tokenizer = tiny_classifier("tiny-bert")
    n = sum(p.numel() for p in model.parameters())
    theta0 = {name: p.detach().clone() for name, p in model.named_parameters()}
    method = build_method({"name": "sparse", "k": 10, "density": None, "full_l1": L1})
    checked = []

    def fake_train(lr):
        generator = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=generator) * (torch.rand(p.shape, generator=generator) > 0.5))
        inputs = batch(tokenizer)
        plain, penalised = _gradients(model, inputs), _gradients(model, inputs, method.penalty)
        for name, p in model.named_parameters():
            expected = L1 * torch.sign(p.detach() - theta0[name]) / n
            torch.testing.assert_close(penalised.get(name, 0) - plain.get(name, 0), expected, atol=1e-3 * L1 / n, rtol=0)
            checked.append(name)

    method.search(model, head_parameter_names(model), fake_train)
    assert sorted(checked) == sorted(theta0)  # every parameter trains in phase 1, the head too
    assert method.penalty(model) is None  # phase 1 over, sparse_l1 = 0


def test_an_l1_of_zero_leaves_the_run_id_as_it_was():
    from peftbench.config import identity

    node = {"name": "sparse", "density": 0.005, "k": None, "mask_from": "change"}
    assert identity({"method": {**node, "full_l1": 0.0, "sparse_l1": 0.0}}) == identity({"method": node})
    assert identity({"method": {**node, "full_l1": 0.1, "sparse_l1": 0.0}})["method"]["full_l1"] == 0.1
