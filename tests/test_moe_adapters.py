"""Soft learned routing (method=moe_adapters): the deck's soft, top-k (renormalised over the k
chosen) and top-1 combinations, Switch's load-balancing loss, token and example level, the usage
the record keeps, the routing plot and token table, and a run that reloads to the same outputs."""

import json

import pytest
import torch

from peftbench.methods.moe_adapters import TOKENS_FILE, MoERouted, balance_loss, route
from tests.cli import peftbench
from tests.helpers import finished_run, reloaded, task_losses

pytestmark = pytest.mark.usefixtures("one_thread")

SHORT = ["method=moe_adapters", "task=multi", "task.tasks=[rte,mrpc]", "trainer.max_steps=4", "trainer.batch_size=4"]


def _probabilities(*shape):
    torch.manual_seed(0)
    return torch.softmax(torch.randn(*shape) * 2, dim=-1)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_uses_exactly_k_modules_per_token_with_renormalised_weights(k):
    p = _probabilities(3, 7, 5)
    w = route(p, "top_k", k)
    assert bool((w.ne(0).sum(-1) == k).all())
    assert torch.allclose(w.sum(-1), torch.ones(3, 7))
    chosen = p.topk(k, dim=-1).indices
    expected = p.gather(-1, chosen) / p.gather(-1, chosen).sum(-1, keepdim=True)  # r(φ_j) / Σ_top-k r(φ)
    assert torch.allclose(w.gather(-1, chosen), expected)


def test_top_1_keeps_the_gate_value_and_soft_every_probability():
    p = _probabilities(4, 5)
    w = route(p, "top_1", 1)
    assert bool((w.ne(0).sum(-1) == 1).all())
    assert torch.equal(w.max(-1).values, p.max(-1).values) and torch.equal(w.argmax(-1), p.argmax(-1))
    assert torch.equal(route(p, "soft", 1), p)


def test_the_balancing_loss_is_least_for_uniform_routing():
    n = 4
    assert float(balance_loss(torch.full((12, n), 1 / n))) == pytest.approx(1.0)  # f_i = P_i = 1/N
    collapsed = torch.zeros(12, n)
    collapsed[:, 2] = 1.0
    assert float(balance_loss(collapsed)) == pytest.approx(n)  # every token to one module
    torch.manual_seed(0)
    for _ in range(50):  # hard routings (f = P): N Σ f_i² ≥ 1, with equality for an even split only
        hard = torch.nn.functional.one_hot(torch.randint(0, n, (12,)), n).float()
        even = bool((hard.sum(0) == 3).all())
        assert float(balance_loss(hard)) == pytest.approx(1.0) if even else float(balance_loss(hard)) > 1.0
    # its gradient moves probability away from the overloaded module
    logits = torch.zeros(12, n, requires_grad=True)
    with torch.no_grad():
        logits[:, 0] += 0.5
    balance_loss(torch.softmax(logits, -1)).backward()
    assert bool((logits.grad[:, 0] > 0).all()) and bool((logits.grad[:, 1:] < 0).all())


def _adapted(model_name="tiny-bert", **settings):
    from peftbench.methods.base import attach
    from peftbench.models.anatomy import anatomy_of
    from peftbench.plan import method_from_config
    from tests.helpers import tiny_classifier

    model, tokenizer = tiny_classifier(model_name)
    method = method_from_config({"name": "moe_adapters", "module": "pfeiffer", "settings": {}, **settings})
    method.tasks = ["rte"]
    attach(method, model, anatomy_of(model.config.model_type))
    return model, tokenizer, method


def test_a_site_is_the_weighted_sum_of_its_modules_and_the_penalty_follows_the_forward_pass():
    model, tokenizer, method = _adapted(router="top_k", k=2)
    site = next(m for m in model.modules() if isinstance(m, MoERouted))
    h = torch.randn(2, 5, 32)
    with torch.no_grad():
        w = route(torch.softmax(site.router(h), -1), "top_k", 2)
        expected = sum(w[..., j : j + 1] * site.experts[j](h) for j in range(4))
        assert torch.allclose(site(h), expected, atol=1e-6)
    sites = [m for m in model.modules() if isinstance(m, MoERouted)]
    reads = []
    for each in sites:
        each.register_forward_pre_hook(lambda m, args: reads.append((m, args[0].detach())))
    model.train()
    inputs = tokenizer(["a tiny test sentence", "another, longer test sentence"], padding=True, return_tensors="pt")
    model(**inputs, labels=torch.tensor([0, 1]))
    keep = inputs["attention_mask"].bool()
    assert not bool(keep.all()) and len(reads) == len(sites) == 2
    with torch.no_grad():  # α · Σ_sites N Σ f_i P_i over the real tokens, the padding left out
        expected = 0.01 * sum(balance_loss(torch.softmax(m.router(x), -1)[keep]) for m, x in reads)
    penalty = method.penalty(model)
    assert penalty.requires_grad and float(penalty.detach()) == pytest.approx(float(expected))
    assert method.penalty(model) is None  # consumed: the next batch's forward pass gives the next


def test_example_level_routes_all_tokens_of_an_example_alike_from_its_tokens_only():
    model, tokenizer, method = _adapted(level="example", router="top_1")
    site = next(m for m in model.modules() if isinstance(m, MoERouted))
    torch.manual_seed(0)
    x = torch.randn(2, 6, 32)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    seen = []
    site.output_mixture = lambda weights, x: seen.append(weights) or x
    method.state.mask = mask
    site.eval()
    site(x)
    padded = x.clone()
    padded[0, 4:] = 100.0  # what the padding holds does not move the first example's routing
    site(padded)
    first, second = seen
    assert first.shape == (2, 1, 4) and torch.equal(first, second)
    pooled = x[0, :4].mean(0)
    assert torch.allclose(first[0, 0].max(), torch.softmax(site.router(pooled), -1).max())


def test_example_level_routing_is_refused_for_decoding(tmp_path):
    from peftbench.errors import UserError
    from tests.helpers import planned

    with pytest.raises(UserError, match="method.level=token"):
        planned(tmp_path, "tiny-gpt2", "method=moe_adapters", "method.level=example", "task=e2e")


def test_a_token_level_run_records_usage_draws_it_lists_tokens_and_reloads(tmp_path):
    run = finished_run(tmp_path, "tiny-bert", *SHORT)
    routing = run.record["routing"]
    assert routing["modules"] == ["0", "1", "2", "3"] and len(routing["sites"]) == 2
    for task in ("rte", "mrpc"):
        assert all(sum(row) == pytest.approx(1.0) for row in routing["usage"][task])
        assert all(0.0 <= h <= 1.3863 for h in routing["entropy"][task])  # ≤ log 4
    tokens = json.loads((run.folder / TOKENS_FILE).read_text())
    counted = sum(count for module in tokens["tokens"][0] for _, count, _ in module)
    assert tokens["sites"] == routing["sites"] and counted > 0

    table = peftbench("routing-table", str(run.folder), "--top", "2", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.strip().splitlines()
    assert len(lines) == 2 + 2 * 4 and lines[2].startswith("| layer 0 ln.ffn | 0 |")
    figure = peftbench("plot", "routing", run.folder.name, "--results", str(tmp_path), "--out", str(tmp_path / "r.svg"),
                       cwd=tmp_path)  # fmt: skip
    assert figure.returncode == 0, figure.stderr
    assert "task rte" in (tmp_path / "r.svg").read_text() and "layer 1 ln.ffn" in (tmp_path / "r.svg").read_text()

    trained = task_losses(run, run.model, run.plan.method)
    model, method = reloaded(run)
    assert task_losses(run, model, method) == pytest.approx(trained, abs=1e-6)
