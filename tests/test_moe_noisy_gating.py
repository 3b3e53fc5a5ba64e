"""Noisy top-k gating for moe_adapters (method.noisy_gating=true; Shazeer et al. 2017, Eqs. 3-5):
H(x) = xW_g + StandardNormal()·Softplus(xW_noise) in training only, then Softmax(KeepTopK(H, k)):
exactly k modules per token, renormalised, chosen on the noisy logits; off by default, so the ids of
earlier runs stay."""

import pytest
import torch

from peftbench.methods.moe_adapters import MoERouted

pytestmark = pytest.mark.usefixtures("one_thread")


def _site(**settings):
    from peftbench.methods.base import attach
    from peftbench.models.anatomy import anatomy_of
    from peftbench.plan import method_from_config
    from tests.helpers import tiny_classifier

    model, _ = tiny_classifier("tiny-bert")
    method = method_from_config({"name": "moe_adapters", "module": "pfeiffer", "settings": {}, **settings})
    method.tasks = ["rte"]
    attach(method, model, anatomy_of("bert"))
    site = next(m for m in model.modules() if isinstance(m, MoERouted))
    return method, site


def test_the_noise_is_standard_normal_times_softplus_of_x_w_noise_in_training_only():
    method, site = _site(noisy_gating=True)
    assert torch.equal(site.noise.weight, torch.zeros_like(site.noise.weight))  # tensor2tensor's zero init
    torch.manual_seed(1)
    torch.nn.init.normal_(site.noise.weight)
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        clean = site.router(x)
        site.eval()
        assert torch.equal(site.logits(x), clean) and torch.equal(site.logits(x), clean)  # no noise at evaluation
        site.train()
        torch.manual_seed(7)
        noisy = site.logits(x)
        torch.manual_seed(7)
        eps = torch.randn_like(clean)
        torch.testing.assert_close(noisy, clean + eps * torch.nn.functional.softplus(site.noise(x)))
        assert not torch.equal(site.logits(x), noisy)  # a fresh draw each forward pass


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_stays_exact_on_the_noisy_logits_and_the_noise_scale_learns(k):
    method, site = _site(noisy_gating=True, router="top_k", k=k)
    with torch.no_grad():
        site.noise.weight.fill_(0.5)  # noise large enough to change choices
    seen = []
    site.output_mixture = lambda weights, x: seen.append(weights) or (weights.sum(-1, keepdim=True) * x)
    x = torch.randn(3, 7, 32)
    site.train()
    torch.manual_seed(3)
    out = site(x)
    torch.manual_seed(3)
    h = site.logits(x)
    (w,) = seen
    assert bool((w.ne(0).sum(-1) == k).all()) and torch.allclose(w.sum(-1), torch.ones(3, 7))
    chosen = h.topk(k, dim=-1).indices  # KeepTopK on H, then Softmax over the k kept
    keep = torch.full_like(h, float("-inf")).scatter(-1, chosen, h.gather(-1, chosen))
    torch.testing.assert_close(w, torch.softmax(keep, -1))
    assert not torch.equal(chosen, site.router(x).topk(k, dim=-1).indices)  # the noise moved some choices
    (out.sum() + method.penalty(site)).backward()
    assert site.noise.weight.grad is not None and site.noise.weight.grad.abs().sum() > 0


def test_noisy_gating_is_off_by_default_and_default_runs_keep_their_ids():
    from peftbench.config import identity

    _, site = _site()
    assert site.noise is None and not any("noise" in n for n, _ in site.named_parameters())
    node = {"name": "moe_adapters", "module": "pfeiffer", "noisy_gating": False, "hybrid": False, "k": 2}
    assert identity({"method": node})["method"] == {"name": "moe_adapters", "module": "pfeiffer", "k": 2}


def test_a_bad_noisy_gating_value_is_refused():
    from peftbench.errors import UserError
    from peftbench.plan import method_from_config

    with pytest.raises(UserError, match="noisy_gating"):
        method_from_config({"name": "moe_adapters", "module": "pfeiffer", "settings": {}, "noisy_gating": "sometimes"})
