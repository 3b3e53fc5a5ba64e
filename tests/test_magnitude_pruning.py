"""Magnitude pruning (Han et al. 2015): the lowest-|θ| weights removed, the rest retrained, one run.

What is checked: the mask removes exactly the round(s · n) lowest |θ| (one ranking over every
eligible tensor, or one per tensor), ties broken in flattened order, weights pruned in an earlier
round staying pruned; the schedule of iterative pruning; the search trains every weight and the
head densely, then prunes and retrains round by round, each round pruning the weights the last
one trained; a pruned weight computes as exactly 0 through training; a tiny-bert RTE run trains
end to end in rounds, records its mask bits and measured sparsity, saves, and reloads to the same
outputs; a bad config is refused in one line (exit 2) before any model loads.
"""

import json

import pytest
import torch

from peftbench.launch import compose
from peftbench.methods import build_method
from peftbench.methods.base import attach
from peftbench.methods.binary_mask import eligible_tensors, mask_of, put_masks
from peftbench.methods.magnitude_pruning import magnitude_masks, schedule
from peftbench.models.anatomy import anatomy_of, head_parameter_names
from peftbench.plan import plan
from peftbench.run import finish, setup, train
from peftbench.train.weights import load_weights
from tests.helpers import adamw_step, apply_method, batch, refused_before_a_model_loads, tiny_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_BERT_MATRICES = 16_384  # the eligible entries of tiny-bert: tests/test_binary_mask.py


def with_ties(model, seed=0):
    """Eligible weights drawn from 11 values (many equal magnitudes, zeros among them)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param, _ in eligible_tensors(model):
            param.copy_(torch.randint(-5, 6, param.shape, generator=generator).float() / 8)


def lowest_positions(tensors, k, already=frozenset()):
    """The k positions (tensor, flat index) of smallest |θ|, ties in flattened order, positions in
    ``already`` first: written with Python's sort, apart from the method's."""
    keyed = sorted(((t, i) not in already, abs(v), t, i)
                   for t, (_, param, _) in enumerate(tensors) for i, v in enumerate(param.reshape(-1).tolist()))  # fmt: skip
    return {(t, i) for _, _, t, i in keyed[:k]}


def removed_positions(masks):
    return {(t, i) for t, mask in enumerate(masks) for i in (~mask.reshape(-1)).nonzero().flatten().tolist()}


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
def test_global_scope_removes_exactly_the_lowest_magnitudes(sparsity):
    model, _ = tiny_classifier("tiny-bert")
    with_ties(model)
    tensors = eligible_tensors(model)
    masks, zeros = magnitude_masks(tensors, sparsity, "global")
    k = round(sparsity * TINY_BERT_MATRICES)
    assert sum(zeros) == k
    assert removed_positions(masks) == lowest_positions(tensors, k)


def test_layer_scope_removes_the_lowest_magnitudes_of_each_tensor():
    model, _ = tiny_classifier("tiny-bert")
    with_ties(model)
    tensors = eligible_tensors(model)
    masks, zeros = magnitude_masks(tensors, 0.35, "layer")
    for t, ((_, param, _), mask) in enumerate(zip(tensors, masks)):
        k = round(0.35 * param.numel())
        assert zeros[t] == k == int((~mask).sum())
        assert {i for _, i in removed_positions([mask])} == {i for _, i in lowest_positions([tensors[t]], k)}


def test_pruned_weights_stay_pruned_in_the_next_round_whatever_their_stored_value():
    model, _ = tiny_classifier("tiny-bert")
    with_ties(model)
    apply_method(model, {"name": "magnitude_pruning", "sparsity": 0.3, "scope": "global"}, "tiny-bert")
    tensors = eligible_tensors(model)
    first = removed_positions([mask_of(*owners[0]).current() for _, _, owners in tensors])
    with torch.no_grad():
        for _, param, owners in tensors:
            param[~mask_of(*owners[0]).current()] = 100.0  # the largest magnitudes now, yet pruned
    put_masks(tensors, *magnitude_masks(tensors, 0.5, "global"))
    second = removed_positions([mask_of(*owners[0]).current() for _, _, owners in tensors])
    assert first < second and second == lowest_positions(tensors, round(0.5 * TINY_BERT_MATRICES), already=first)


def test_schedules_end_at_the_asked_sparsity():
    assert schedule(0.5, 1, "geometric") == [0.5]
    geometric = schedule(0.7, 3, "geometric")
    assert geometric[:2] == pytest.approx([1 - 0.3 ** (1 / 3), 1 - 0.3 ** (2 / 3)]) and geometric[-1] == 0.7
    kept = [1 - s for s in geometric]
    assert kept[1] / kept[0] == pytest.approx(kept[0]) and kept[2] / kept[1] == pytest.approx(kept[0])  # same share each round
    assert schedule(0.5, 5, "linear") == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


def test_search_trains_densely_then_prunes_and_retrains_each_round():
    """iterations=3: round 0 dense, rounds 1–2 pruned to s_1, s_2 and retrained; ``apply`` prunes to
    s_3 = s. Each mask is the lowest |θ| of the weights the previous training left."""
    model, _ = tiny_classifier("tiny-bert")
    method = build_method({"name": "magnitude_pruning", "sparsity": 0.6, "iterations": 3, "scope": "global"})
    head = head_parameter_names(model)
    generator = torch.Generator().manual_seed(1)
    rounds = []

    def fake_train(lr=None, on_step=None):
        tensors = eligible_tensors(model)
        masks = [mask_of(*owners[0]) for _, _, owners in tensors]
        rounds.append({
            "lr": lr, "all": {n for n, _ in model.named_parameters()},
            "trainable": {n for n, p in model.named_parameters() if p.requires_grad},
            "removed": set() if masks[0] is None else removed_positions([m.current() for m in masks]),
        })  # fmt: skip
        with torch.no_grad():  # training moves the weights: new magnitudes, ties included
            for _, param, _ in tensors:
                param.copy_(torch.randint(-5, 6, param.shape, generator=generator).float() / 8)

    method.search(model, head, fake_train)
    assert len(rounds) == 3 and all(r["lr"] is None for r in rounds)  # the run's trainer.lr
    assert all(r["trainable"] == r["all"] for r in rounds)  # every weight and the head
    assert not any(p.requires_grad for p in model.parameters())
    sparsities = schedule(0.6, 3, "geometric")
    assert rounds[0]["removed"] == set()
    for i in (1, 2):
        assert len(rounds[i]["removed"]) == round(sparsities[i - 1] * TINY_BERT_MATRICES)
        assert rounds[i - 1]["removed"] <= rounds[i]["removed"]
    tensors = eligible_tensors(model)
    expected = lowest_positions(tensors, round(0.6 * TINY_BERT_MATRICES), already=rounds[2]["removed"])
    attach(method, model, anatomy_of("bert"))
    assert removed_positions([mask_of(*owners[0]).current() for _, _, owners in tensors]) == expected


def test_a_pruned_weight_computes_as_zero_through_a_training_step():
    model, tokenizer = tiny_classifier("tiny-bert")
    method = apply_method(model, {"name": "magnitude_pruning", "sparsity": 0.5}, "tiny-bert")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(method.parameter_names(model)) | set(head_parameter_names(model))
    before = {n: getattr(model.get_submodule(n.rpartition(".")[0]), "weight").detach().clone() for n, _, _ in eligible_tensors(model)}
    adamw_step(model, tokenizer)  # AdamW's decay touches every stored entry, pruned ones too
    for name, _, owners in eligible_tensors(model):
        keep = mask_of(*owners[0]).current()
        after = getattr(*owners[0])
        assert torch.equal(after[~keep], torch.zeros(int((~keep).sum()))) and not after[~keep].signbit().any()
        assert not torch.equal(after[keep], before[name][keep])


RUN = ["model=tiny-bert", "task=rte", "data.source=embedded", "data.max_train_samples=32", "data.max_eval_samples=16",
       "trainer.max_steps=4", "trainer.batch_size=8", "trainer.progress=false", "task.max_length=32", "seed=0"]  # fmt: skip


def run_in_process(results, *overrides):
    """A whole run (setup, train, finish) that leaves its model in hand: (session, record)."""
    p = plan(compose([*RUN, f"results_dir={results}", *overrides]))
    session = setup(p)
    finish(session, train(session))
    return session, session.record


def effective_weights(model) -> dict:
    return {name: getattr(*owners[0]).detach() for name, _, owners in eligible_tensors(model)}


def assert_reloads_to_the_same_outputs(session, node, folder):
    """A fresh tiny-bert (other weights, other mask) with the method applied and the run's
    method.safetensors loaded gives the run's logits exactly; returns the reloaded model."""
    model, tokenizer = tiny_classifier("tiny-bert", seed=7)
    apply_method(model, node, "tiny-bert")
    inputs = batch(tokenizer)
    session.model.eval()
    with torch.no_grad():
        trained = session.model(**inputs).logits
        assert not torch.equal(model(**inputs).logits, trained)
        load_weights(model, folder / "method.safetensors")
        assert torch.equal(model(**inputs).logits, trained)
    return model


def assert_record_counts_and_measures(record, reloaded, sparsity):
    params = record["params"]
    backbone = sum(p.numel() for n, p in reloaded.named_parameters() if n not in set(head_parameter_names(reloaded)))
    assert params["mask_bits"] == TINY_BERT_MATRICES
    assert params["trainable_method"] == backbone - round(sparsity * TINY_BERT_MATRICES)
    zeros = sum(int((w == 0).sum()) for w in effective_weights(reloaded).values())
    assert zeros >= round(sparsity * TINY_BERT_MATRICES)
    assert record["sparsity"] == {"measured": zeros / TINY_BERT_MATRICES, "zeros": zeros, "entries": TINY_BERT_MATRICES}


def test_magnitude_pruning_trains_tiny_bert_on_rte_in_rounds_saves_and_reloads(tmp_path):
    node = {"name": "magnitude_pruning", "sparsity": 0.5, "iterations": 2, "scope": "global"}
    session, record = run_in_process(tmp_path, "method=magnitude_pruning", "method.iterations=2", "method.scope=global")
    folder = tmp_path / record["run_id"]
    assert record["status"] == "complete" and record["cost"]["search_s"] > 0
    phases = [json.loads(line)["phase"] for line in (folder / "history.jsonl").read_text().splitlines()]
    assert phases == ["search", "search-1", "train"]  # round 0, round 1, the run's training: one evaluation each
    assert not list((folder / "checkpoints").glob("search*"))
    for name, weight in effective_weights(session.model).items():  # after training: pruned weights exactly 0
        keep = mask_of(*next(o for n, _, o in eligible_tensors(session.model) if n == name)[0]).current()
        assert torch.equal(weight[~keep], torch.zeros(int((~keep).sum())))
    reloaded = assert_reloads_to_the_same_outputs(session, node, folder)
    assert_record_counts_and_measures(record, reloaded, 0.5)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["method=magnitude_pruning", "method.sparsity=1.0"], "method.sparsity must be in [0, 1)"),
        (["method=magnitude_pruning", "method.sparsity=-0.1"], "method.sparsity must be in [0, 1)"),
        (["method=magnitude_pruning", "method.iterations=0"], "method.iterations must be ≥ 1"),
        (["method=magnitude_pruning", "method.scope=row"], "method.scope must be one of"),
        (["method=magnitude_pruning", "method.schedule=cubic"], "method.schedule must be one of"),
        (["method=lottery_ticket", "method.sparsity=1.5"], "method.sparsity must be in [0, 1)"),
        (["method=lottery_ticket", "method.iterations=0"], "method.iterations must be ≥ 1"),
        (["method=lottery_ticket", "method.rewind_step=-1"], "method.rewind_step must be ≥ 0"),
    ],
)
def test_bad_config_is_refused_in_one_line_before_a_model_loads(tmp_path, capsys, monkeypatch, overrides, message):
    err = refused_before_a_model_loads(capsys, monkeypatch, ["run", *RUN, f"results_dir={tmp_path / 'results'}", *overrides])
    assert message in err
    assert not (tmp_path / "results").exists()
