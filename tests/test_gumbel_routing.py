"""Hard learned routing (method=gumbel_routing, Polytropon): the deck's Gumbel-sigmoid, hard 0/1
samples in the forward pass with gradients reaching the logits, the normalised parameter
combination of the active modules, and a multi-task run that reloads to the same outputs."""

import math

import pytest
import torch

from peftbench.methods.gumbel_routing import GumbelRouted, gumbel_sigmoid
from tests.helpers import finished_run, reloaded, task_losses

pytestmark = pytest.mark.usefixtures("one_thread")


def test_samples_are_hard_with_gradients_reaching_the_logits():
    torch.manual_seed(0)
    logits = torch.tensor([-2.0, -0.5, 0.0, 0.7, 3.0], requires_grad=True)
    z = gumbel_sigmoid(logits, temperature=0.5, straight_through=True)
    assert set(z.tolist()) <= {0.0, 1.0}
    (z * torch.arange(1.0, 6.0)).sum().backward()
    assert logits.grad is not None and bool((logits.grad != 0).all())


def test_the_relaxation_is_the_decks_formula_and_its_hard_sample_a_bernoulli_of_sigmoid_alpha():
    # α̂ = sigmoid[log(σ(α)u / ((1−σ(α))(1−u)))]^{1/τ}, the exponent scaling the log-odds: the
    # deck's formula written out with the same u gives the same α̂
    logits, tau = torch.tensor([-1.5, 0.2, 2.0]), 0.7
    torch.manual_seed(3)
    soft = gumbel_sigmoid(logits, tau, straight_through=False)
    torch.manual_seed(3)
    u = torch.rand_like(logits)
    s = torch.sigmoid(logits)
    assert torch.allclose(soft, torch.sigmoid(torch.log(s * u / ((1 - s) * (1 - u))) / tau), atol=1e-6)
    # the hard sample 1[α̂ > ½] is 1 with probability sigmoid(α) (logistic noise), whatever τ
    draws = 20000
    torch.manual_seed(1)
    hard = gumbel_sigmoid(logits.expand(draws, -1), tau, straight_through=True).mean(0)
    p = torch.sigmoid(logits)
    assert torch.all((hard - p).abs() < 4 * torch.sqrt(p * (1 - p) / draws))


def _adapted(module="lora", model_name="tiny-bert", **extra):
    from peftbench.methods.base import attach
    from peftbench.models.anatomy import anatomy_of
    from peftbench.plan import method_from_config
    from tests.helpers import tiny_classifier

    model, tokenizer = tiny_classifier(model_name)
    method = method_from_config({"name": "gumbel_routing", "module": module, "settings": {}, **extra})
    method.tasks = ["rte", "mrpc"]
    attach(method, model, anatomy_of(model.config.model_type))
    return model, tokenizer, method


@pytest.mark.parametrize("module", ["lora", "pfeiffer"])
def test_a_training_forward_uses_a_hard_allocation_and_trains_the_logits(module):
    model, tokenizer, method = _adapted(module)
    sites = [m for m in model.modules() if isinstance(m, GumbelRouted)]
    assert sites and all(m.logits.shape == (2, 4) for m in sites)
    with torch.no_grad():  # as if trained: LoRA's B starts at 0, so that every combination is the same
        for site in sites:
            for name, p in site.experts.named_parameters():
                if name.endswith("lora_B"):
                    p.normal_(std=0.1)
    seen = []
    for site in sites:  # the weights each site combines its modules with, as the forward pass uses them
        original = site.weights
        site.weights = lambda sample, original=original: seen.append(original(sample)) or seen[-1]
    model.train()
    method.select_task("mrpc")
    inputs = tokenizer(["a tiny test sentence", "another one"], padding=True, return_tensors="pt")
    model(**inputs, labels=torch.tensor([0, 1])).loss.backward()
    assert len(seen) == len(sites)
    for weights in seen:  # z / Σz with z ∈ {0, 1}: every weight is 0 or 1/(active modules)
        active = weights[weights > 0]
        assert torch.allclose(active, torch.full_like(active, 1 / max(1, len(active))))
    assert any(bool(site.logits.grad[1].ne(0).any()) for site in sites)  # mrpc's row of logits learns
    assert all(bool(site.logits.grad[0].eq(0).all()) for site in sites)  # rte's did not run


def test_the_task_module_is_the_normalised_sum_of_the_active_modules_parameters():
    model, tokenizer, method = _adapted("pfeiffer")
    site = next(m for m in model.modules() if isinstance(m, GumbelRouted))
    with torch.no_grad():
        site.logits.copy_(torch.tensor([[1.0, -1.0, 2.0, -3.0], [-1.0, -1.0, -1.0, -1.0]]))
    site.eval()
    h = torch.randn(2, 3, 32)
    method.select_task("rte")  # evaluation allocation 1[α > 0]: modules 0 and 2, half each
    mean = {name: (site.experts[0].get_parameter(name) + site.experts[2].get_parameter(name)) / 2
            for name, _ in site.experts[0].named_parameters()}  # fmt: skip
    expected = torch.func.functional_call(site.experts[0], mean, (h,))
    assert torch.allclose(site(h), expected, atol=1e-6)
    method.select_task("mrpc")  # no module active: the site adds nothing
    assert torch.equal(site(h), torch.zeros_like(h))


def test_soft_routing_evaluates_with_sigmoid_as_the_released_code():
    model, _, method = _adapted("lora", straight_through=False)
    site = next(m for m in model.modules() if isinstance(m, GumbelRouted))
    expected = torch.sigmoid(site.logits[0]) / torch.sigmoid(site.logits[0]).sum()
    assert torch.allclose(site.weights(sample=False), expected, atol=1e-6)
    assert math.isclose(float(site.weights(sample=True).detach().sum()), 1.0, rel_tol=1e-5)


def test_a_multitask_run_records_the_allocations_and_reloads(tmp_path):
    run = finished_run(tmp_path, "tiny-gpt2", "method=gumbel_routing", "task=multi", "task.tasks=[rte,mrpc]",
                       "trainer.max_steps=4", "trainer.batch_size=4")  # fmt: skip
    routing = run.record["routing"]
    assert routing["module"] == "lora" and routing["sites"] == ["layer 0 attn.q+attn.v", "layer 1 attn.q+attn.v"]
    for rows in routing["usage"].values():
        assert all(sum(row) == pytest.approx(1.0) or sum(row) == 0 for row in rows)
    trained = task_losses(run, run.model, run.plan.method)
    model, method = reloaded(run)
    assert task_losses(run, model, method) == pytest.approx(trained, abs=1e-6)
