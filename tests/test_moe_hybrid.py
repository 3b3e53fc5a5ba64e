"""Hybrid routing for moe_adapters (method.hybrid=true; seed 004 "Routing - Hybrids": fixed and
learned routing combined): each site adds the current task's own module (fixed, by task id) to
the learned mixture of the shared modules; only the task's own module of the fixed ones runs and
trains; a short two-task run (with noisy gating too) records the learned modules' usage and
reloads to the same outputs."""

import pytest
import torch

from peftbench.errors import UserError
from peftbench.methods.moe_adapters import MoERouted, route
from tests.helpers import finished_run, planned, reloaded, task_losses

pytestmark = pytest.mark.usefixtures("one_thread")

TASKS = ["rte", "mrpc"]


def _adapted(**settings):
    from peftbench.methods.base import attach
    from peftbench.models.anatomy import anatomy_of
    from peftbench.plan import method_from_config
    from tests.helpers import tiny_classifier

    model, tokenizer = tiny_classifier("tiny-bert")
    method = method_from_config({"name": "moe_adapters", "module": "pfeiffer", "settings": {}, "hybrid": True,
                                 "experts": 3, **settings})  # fmt: skip
    method.tasks = list(TASKS)
    attach(method, model, anatomy_of("bert"))
    return model, tokenizer, method


@pytest.mark.parametrize("level", ["token", "example"])
def test_a_site_adds_its_tasks_own_module_to_the_learned_mixture(level):
    model, _, method = _adapted(level=level, router="top_k", k=2)
    site = next(m for m in model.modules() if isinstance(m, MoERouted))
    assert len(site.experts) == 3 + 2 and site.router.out_features == 3  # K learned, then one per task
    x = torch.randn(2, 5, 32)
    method.state.mask = None
    site.eval()
    for t, task in enumerate(TASKS):
        method.select_task(task)
        with torch.no_grad():
            reads = x if level == "token" else x.mean(1, keepdim=True)
            w = route(torch.softmax(site.router(reads), -1), "top_k", 2)
            learned = sum(w[..., j : j + 1] * site.experts[j](x) for j in range(3))
            torch.testing.assert_close(site(x), learned + site.experts[3 + t](x))


def test_only_the_current_tasks_fixed_module_runs_and_trains_the_shared_ones_serve_both():
    model, tokenizer, method = _adapted(router="soft")
    sites = [m for m in model.modules() if isinstance(m, MoERouted)]
    inputs = tokenizer(["a tiny test sentence", "another one"], padding=True, return_tensors="pt")
    method.select_task("rte")
    with torch.no_grad():
        before = model(**inputs).logits
        for site in sites:  # mrpc's own modules change: rte's outputs do not
            for p in site.experts[4].parameters():
                p.add_(torch.randn_like(p))
        assert torch.equal(model(**inputs).logits, before)
        for site in sites:  # a shared module changes: they do
            for p in site.experts[0].parameters():
                p.add_(torch.randn_like(p))
        assert not torch.allclose(model(**inputs).logits, before)
    model.train()
    model(**inputs, labels=torch.tensor([0, 1])).loss.backward()
    for site in sites:
        assert all(p.grad is None for p in site.experts[4].parameters())  # mrpc's fixed module
        assert all(p.grad is not None for j in (0, 1, 2, 3) for p in site.experts[j].parameters())
        assert site.router.weight.grad is not None


def test_hybrid_routing_needs_two_tasks(tmp_path):
    with pytest.raises(UserError, match="method.hybrid=true adds a module per task"):
        planned(tmp_path, "tiny-bert", "method=moe_adapters", "method.hybrid=true", "task=rte")
    assert not any(tmp_path.iterdir())


def test_a_hybrid_noisy_run_records_the_learned_usage_and_reloads(tmp_path):
    run = finished_run(tmp_path, "tiny-bert", "method=moe_adapters", "method.hybrid=true", "method.noisy_gating=true",
                       "task=multi", "task.tasks=[rte,mrpc]", "trainer.max_steps=3", "trainer.batch_size=4")  # fmt: skip
    routing = run.record["routing"]
    assert routing["modules"] == ["0", "1", "2", "3"]
    assert all(len(row) == 4 and sum(row) == pytest.approx(1.0) for task in TASKS for row in routing["usage"][task])
    names = run.plan.method.parameter_names(run.model)
    assert any(".noise.weight" in n for n in names) and any(".experts.5." in n for n in names)
    trained = task_losses(run, run.model, run.plan.method)
    model, method = reloaded(run)
    assert task_losses(run, model, method) == pytest.approx(trained, abs=1e-6)
