"""Head pruning (Michel, Levy & Neubig 2019): heads ranked by I_h = E_x |∂L(x)/∂ξ_h|, the least
important removed whole, in steps, then the rest fine-tuned, in one run.

What is checked: a pruned head contributes nothing (the output projection sees exact zeros in its
slice; its q, k, v weights change nothing and get no gradient) while the kept heads' slices are
the unpruned model's, on BERT, GPT-2 (fused c_attn) and T5 (with cross-attention); the importance
equals |∂L(x)/∂ξ_h| averaged over examples, computed here one example at a time through a gate of
the test's own, and its per-layer ℓ2 normalisation; the search fine-tunes densely, then prunes
the least important kept heads step by step (ranked once, or re-estimated with ``exact``,
keeping one per layer when asked), evaluating after each step; counting removes the pruned
heads' parameters and reports the gates as bits, from the weights and from configs alike; a
tiny-bert RTE run trains end to end, writes head_importance.json, saves and reloads to the same
outputs; impossible head counts are refused before any model loads.
"""

import json

import pytest
import torch

from peftbench.cli import main
from peftbench.counting import parameter_counts
from peftbench.launch import compose
from peftbench.methods import build_method
from peftbench.methods.head_pruning import HeadGate, attention_sites
from peftbench.models.anatomy import anatomy_of, head_parameter_names
from peftbench.plan import plan
from peftbench.run import finish, setup, train
from peftbench.train.weights import load_weights
from tests.helpers import apply_method, batch, refused_before_a_model_loads, tiny_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

NODE = {"name": "head_pruning", "fraction": 0.4, "heads": None}
TYPES = {"tiny-bert": "bert", "tiny-gpt2": "gpt2", "tiny-t5": "t5"}
LABELS = torch.tensor([0, 1])


def pruned_model(model_name, pruned: dict[int, list[int]]):
    """A tiny model with head pruning applied and the heads ``pruned`` ({site: [heads]}) gated off,
    and its unpruned twin (same weights)."""
    reference, tokenizer = tiny_classifier(model_name)
    model, _ = tiny_classifier(model_name)
    method = apply_method(model, NODE, model_name)
    with torch.no_grad():
        for site, heads in pruned.items():
            model.get_submodule(method.sites[site].output).head_gate.keep[heads] = False
    return reference, model, tokenizer, method


def output_inputs(model, sites) -> dict[str, torch.Tensor]:
    """Each site's output projection's input, as that projection receives it (after any gate)."""
    seen = {}

    def keep(path):
        def hook(module, args):
            seen.setdefault(path, args[0].detach().clone())  # the first call's; the input passes on unchanged

        return hook

    for site in sites:
        model.get_submodule(site.output).register_forward_pre_hook(keep(site.output))
    return seen


def value_rows(model, site, head: int, heads: int):
    """The flat positions of ``head``'s rows in the site's value projection weight (and its module)."""
    path, part = site.inputs[2]
    module = model.get_submodule(path)
    linear = isinstance(module, torch.nn.Linear)
    width = (module.out_features if linear else module.weight.shape[1]) // (part.count if part else 1) // heads
    start = (part.index * heads * width if part else 0) + head * width
    return module, (slice(start, start + width), slice(None)) if linear else (slice(None), slice(start, start + width))


@pytest.mark.parametrize("model_name", list(TYPES))
def test_a_pruned_head_contributes_nothing_and_the_kept_heads_are_intact(model_name):
    reference, model, tokenizer, method = pruned_model(model_name, {0: [1, 3]})
    heads = model.config.num_attention_heads
    inputs = batch(tokenizer)
    theirs, ours = output_inputs(reference, method.sites), output_inputs(model, method.sites)
    with torch.no_grad():
        reference(**inputs)
        logits = model(**inputs).logits
    first = method.sites[0].output
    split = ours[first].reshape(*ours[first].shape[:-1], heads, -1)
    assert torch.equal(split[..., [1, 3], :], torch.zeros_like(split[..., [1, 3], :]))  # pruned: exact zeros
    intact = theirs[first].reshape(split.shape)
    assert torch.equal(split[..., [0, 2], :], intact[..., [0, 2], :])  # kept: the unpruned model's

    module, rows = value_rows(model, method.sites[0], 1, heads)
    with torch.no_grad():
        module.weight[rows] = torch.randn(module.weight[rows].shape)  # the pruned head's value projection
        assert torch.equal(model(**inputs).logits, logits)
    model.train()
    model(**inputs, labels=LABELS).loss.backward()
    assert torch.equal(module.weight.grad[rows], torch.zeros_like(module.weight.grad[rows]))
    kept_module, kept_rows = value_rows(model, method.sites[0], 0, heads)
    assert kept_module.weight.grad[kept_rows].abs().sum() > 0


def test_every_attention_sublayer_is_a_site_t5_cross_attention_included():
    model, _ = tiny_classifier("tiny-t5")
    labels = [site.label for site in attention_sites(model, anatomy_of("t5"))]
    assert labels == ["encoder.block.0", "encoder.block.1", "decoder.block.0", "decoder.block.0 cross",
                      "decoder.block.1", "decoder.block.1 cross"]  # fmt: skip


class ToyTrainer:
    """Stands in for the run's search trainer: ``gradients`` passes over ``batches`` (the loss the
    run uses for classification), ``evaluate`` counts its calls; training moves nothing."""

    def __init__(self, model, batches):
        self.model, self.batches, self.evaluations, self.rounds = model, batches, 0, 0

    def __call__(self, lr=None, on_step=None):
        self.rounds += 1
        self.trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}

    def gradients(self, on_batch):
        self.model.eval()
        for inputs in self.batches:
            self.model(**inputs).loss.backward()
            on_batch(inputs)

    def evaluate(self):
        self.evaluations += 1
        return {"validation": {"accuracy": 0.5}}


def toy_batches(tokenizer):
    first = dict(batch(tokenizer, ("a tiny test sentence", "another, somewhat longer test sentence here", "three")))
    second = dict(batch(tokenizer, ("the last one", "and this")))
    return [{**first, "labels": torch.tensor([0, 1, 1])}, {**second, "labels": torch.tensor([1, 0])}]


def direct_importance(model, method, batches) -> torch.Tensor:
    """|∂L(x)/∂ξ_h| averaged over the examples x, each alone (no padding), through a gate ξ of
    ones written here as a pre-hook on each output projection."""
    heads = model.config.num_attention_heads
    xi = torch.ones(len(method.sites), heads, requires_grad=True)

    def gate(i):
        def hook(module, args):
            x = args[0]
            return (x.reshape(*x.shape[:-1], heads, -1) * xi[i].view(heads, 1)).reshape(x.shape),

        return hook

    handles = [model.get_submodule(site.output).register_forward_pre_hook(gate(i)) for i, site in enumerate(method.sites)]
    total, count = torch.zeros(len(method.sites), heads), 0
    for inputs in batches:
        for row in range(inputs["input_ids"].shape[0]):
            length = int(inputs["attention_mask"][row].sum())
            alone = {key: value[row : row + 1, :length] if value.dim() == 2 else value[row : row + 1] for key, value in inputs.items()}
            xi.grad = None
            model(**alone).loss.backward()
            total += xi.grad.abs()
            count += 1
    for handle in handles:
        handle.remove()
    return total / count


def test_importance_is_the_mean_over_examples_of_the_gate_gradients_magnitude():
    reference, tokenizer = tiny_classifier("tiny-bert")
    reference.eval()
    model, _ = tiny_classifier("tiny-bert")
    method = apply_method(model, {**NODE, "normalize": False}, "tiny-bert")
    model.requires_grad_(False)
    batches = toy_batches(tokenizer)
    raw = method.importance(model, ToyTrainer(model, batches))
    expected = direct_importance(reference, method, batches)
    assert expected.min() > 0 and expected.std() > 0
    torch.testing.assert_close(raw, expected, rtol=1e-4, atol=1e-9)
    assert all(gate.probe is None and not gate.measuring for gate in method._gates(model))

    normalised = apply_method(tiny_classifier("tiny-bert")[0], NODE, "tiny-bert")
    normalised.sites = method.sites
    scores = normalised.importance(model, ToyTrainer(model, batches))
    torch.testing.assert_close(scores, expected / expected.norm(dim=1, keepdim=True), rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("exact", [False, True])
def test_search_fine_tunes_densely_then_prunes_the_least_important_step_by_step(exact):
    model, tokenizer = tiny_classifier("tiny-bert")
    method = build_method({**NODE, "fraction": 0.5, "step": 0.25, "exact": exact})
    toy = ToyTrainer(model, toy_batches(tokenizer))
    method.search(model, head_parameter_names(model), toy)
    assert toy.rounds == 1 and toy.trainable == {n for n, _ in model.named_parameters()}  # everything, head included
    report = method.report
    assert [step["pruned"] for step in report["steps"]] == [0, 2, 4] and toy.evaluations == 3  # 8 heads: 25% a step
    first = torch.tensor(report["importance"])
    ranked = sorted((float(first[s, h]), s, h) for s in range(2) for h in range(4))
    assert report["steps"][1]["removed"] == [[s, h] for _, s, h in ranked[:2]]
    if exact:  # re-estimated with those two heads gated off
        second = torch.tensor(report["steps"][2]["importance"])
        left = sorted((float(second[s, h]), s, h) for s in range(2) for h in range(4) if [s, h] not in report["steps"][1]["removed"])
        assert report["steps"][2]["removed"] == [[s, h] for _, s, h in left[:2]]
    else:
        assert report["steps"][2]["removed"] == [[s, h] for _, s, h in ranked[2:4]]
    removed = [pair for step in report["steps"][1:] for pair in step["removed"]]
    assert report["kept"] == [[[s, h] not in removed for h in range(4)] for s in range(2)]
    assert not any(p.requires_grad for p in model.parameters())


def test_keep_one_per_layer_never_empties_a_layer():
    model, tokenizer = tiny_classifier("tiny-bert")
    method = apply_method(model, {**NODE, "keep_one_per_layer": True}, "tiny-bert")
    importance = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.9, 0.9, 0.9, 0.9]])
    removed = method.prune(model, importance, 5)
    assert removed == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]]  # layer 0's last head is skipped
    assert method.kept(model).tolist() == [[False, False, False, True], [False, False, True, True]]


def removed_per_head(model_name) -> int:
    """q, k, v rows (weights and biases) and output-projection columns of one head."""
    model, _ = tiny_classifier(model_name)
    d, heads = model.config.hidden_size, model.config.num_attention_heads
    width = d // heads
    bias = 0 if model_name == "tiny-t5" else 3 * width
    return 3 * width * d + bias + d * width


@pytest.mark.parametrize("model_name", ["tiny-bert", "tiny-gpt2"])
def test_counts_remove_the_pruned_heads_parameters_and_report_the_gates_as_bits(model_name, capsys):
    _, model, _, method = pruned_model(model_name, {0: [1, 3], 1: [0]})
    counts = parameter_counts(model, method, head_parameter_names(model))
    head = set(head_parameter_names(model))
    backbone = sum(p.numel() for n, p in model.named_parameters() if n not in head)
    assert counts["mask_bits"] == 8
    assert counts["trainable_method"] == backbone - 3 * removed_per_head(model_name)
    measured = method.measured(model)
    assert measured["heads"] == {"pruned": 3, "total": 8} and measured["sparsity"]["zeros"] == 3 * removed_per_head(model_name)

    main(["params", f"model={model_name}", "method=head_pruning", "task=rte", "--json"])  # from configs: 40% of 8 = 3
    from_config = json.loads(capsys.readouterr().out)
    assert from_config["mask_bits"] == 8 and from_config["trainable_method"] == counts["trainable_method"]


RUN = ["model=tiny-bert", "task=rte", "data.source=embedded", "data.max_train_samples=32", "data.max_eval_samples=16",
       "trainer.max_steps=4", "trainer.batch_size=8", "trainer.progress=false", "task.max_length=32", "seed=0"]  # fmt: skip


def test_head_pruning_trains_tiny_bert_on_rte_reports_importance_saves_and_reloads(tmp_path):
    session = setup(plan(compose([*RUN, f"results_dir={tmp_path}", "method=head_pruning"])))
    finish(session, train(session))
    record, folder = session.record, tmp_path / session.record["run_id"]
    assert record["status"] == "complete" and record["cost"]["search_s"] > 0
    phases = [json.loads(line)["phase"] for line in (folder / "history.jsonl").read_text().splitlines()]
    assert phases == ["search", "train"]
    report = json.loads((folder / "head_importance.json").read_text())
    assert report["sites"] == ["encoder.layer.0", "encoder.layer.1"] and report["heads"] == 4
    assert [step["pruned"] for step in report["steps"]] == [0, 1, 2, 3]  # 40% of 8 heads, one a step
    assert all(len(row) == 4 for row in report["importance"]) and record["heads"] == {"pruned": 3, "total": 8}
    assert record["params"]["mask_bits"] == 8

    trained = session.model.cpu().eval()
    reloaded, tokenizer = tiny_classifier("tiny-bert", seed=7)
    method = apply_method(reloaded, {**NODE, "fraction": 0.4}, "tiny-bert")
    inputs = batch(tokenizer)
    with torch.no_grad():
        assert not torch.equal(reloaded(**inputs).logits, trained(**inputs).logits)
        load_weights(reloaded, folder / "method.safetensors")
        assert torch.equal(reloaded(**inputs).logits, trained(**inputs).logits)
    assert method.kept(reloaded).tolist() == report["kept"] and int((~method.kept(reloaded)).sum()) == 3

    from peftbench.results.head_plot import head_maps

    maps, title, _ = head_maps(record["run_id"], tmp_path)
    assert [list(row) for row in maps[0].values] == report["importance"]  # normalised per layer: within [0, 1]
    assert [[bool(v) for v in row] for row in maps[1].values] == report["kept"] and "3 of 8 heads pruned" in maps[1].title
    assert "validation accuracy after pruning n heads" in " ".join(title.split())
    main(["plot", "heads", record["run_id"], "--results", str(tmp_path), "--out", str(tmp_path / "heads.png")])
    assert (tmp_path / "heads.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["method=head_pruning", "method.heads=9", "method.fraction=null"], "exceeds the 8 heads"),
        (["method=head_pruning", "method.heads=7", "method.fraction=null", "method.keep_one_per_layer=true"], "exceeds the 6 heads"),
        (["method=head_pruning", "method.fraction=1.5"], "method.fraction must be in [0, 1]"),
        (["method=head_pruning", "method.heads=2"], "exactly one of method.fraction"),
        (["method=head_pruning", "method.step=0"], "method.step"),
    ],
)
def test_an_impossible_pruning_is_refused_in_one_line_before_a_model_loads(tmp_path, capsys, monkeypatch, overrides, message):
    err = refused_before_a_model_loads(capsys, monkeypatch, ["run", *RUN, f"results_dir={tmp_path / 'results'}", *overrides])
    assert message in err
    assert not (tmp_path / "results").exists()


def test_gates_are_head_gates_on_the_output_projections():
    model, _ = tiny_classifier("tiny-bert")
    method = apply_method(model, NODE, "tiny-bert")
    assert [type(model.get_submodule(site.output).head_gate) for site in method.sites] == [HeadGate, HeadGate]
    assert sorted(method.saved_buffers(model)) == [f"bert.encoder.layer.{i}.attention.output.dense.head_gate.keep" for i in range(2)]


def test_the_trainers_gradient_pass_back_propagates_each_batch_in_evaluation_mode_and_updates_nothing():
    from types import SimpleNamespace

    from peftbench.train.loop import gradient_pass

    model, tokenizer = tiny_classifier("tiny-bert")
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    seen = []

    def loss(model, inputs):
        seen.append(model.training)
        return model(**inputs).loss

    def on_batch(inputs):
        seen.append(float(model.classifier.weight.grad.abs().sum()))
        model.zero_grad(set_to_none=True)

    gradient_pass(model, toy_batches(tokenizer), loss, SimpleNamespace(device="cpu", precision="fp32"), on_batch)
    assert seen[0] is False and seen[2] is False and seen[1] > 0 and seen[3] > 0  # no dropout; gradients there
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
