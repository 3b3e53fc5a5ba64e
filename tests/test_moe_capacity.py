"""Switch's expert capacity for moe_adapters (method.capacity_factor; Fedus et al. 2021, §2.2):
each module takes at most ⌈units / K × factor⌉ routed units per batch and site, in batch order;
the overflow adds nothing (weight 0), padding is neither counted nor routed; off by default."""

import math

import pytest
import torch

from peftbench.errors import UserError
from peftbench.methods.moe_adapters import MoERouted, capacity_limited, route

pytestmark = pytest.mark.usefixtures("one_thread")


def test_each_module_keeps_its_first_assignments_up_to_its_capacity():
    weights = torch.tensor([[1.0, 0], [1, 0], [0, 1], [1, 0], [1, 0], [0, 1]])  # top-1: module 0 takes 4 of 6
    limited = capacity_limited(weights, torch.ones(6), 1.0)  # capacity ⌈6 / 2 × 1.0⌉ = 3
    assert limited.tolist() == [[1, 0], [1, 0], [0, 1], [1, 0], [0, 0], [0, 1]]  # the 4th to module 0 overflows
    assert torch.equal(capacity_limited(weights, torch.ones(6), 2.0), weights)  # capacity 6: nothing overflows
    padded = capacity_limited(weights, torch.tensor([1, 0, 1, 1, 1, 1]), 1.0)  # 5 real units: capacity 3
    assert padded.tolist() == [[1, 0], [0, 0], [0, 1], [1, 0], [1, 0], [0, 1]]


@pytest.mark.parametrize("router, k", [("top_k", 2), ("top_1", 1)])
def test_a_site_never_sends_a_module_more_than_its_capacity(router, k):
    from peftbench.methods.base import attach
    from peftbench.models.anatomy import anatomy_of
    from peftbench.plan import method_from_config
    from tests.helpers import tiny_classifier

    model, _ = tiny_classifier("tiny-bert")
    method = method_from_config({"name": "moe_adapters", "module": "pfeiffer", "settings": {}, "router": router, "k": k,
                                 "capacity_factor": 0.5})  # fmt: skip
    method.tasks = ["rte"]
    attach(method, model, anatomy_of("bert"))
    site = next(m for m in model.modules() if isinstance(m, MoERouted)).eval()
    seen = []
    site.output_mixture = lambda weights, x: seen.append(weights) or x
    torch.manual_seed(0)
    x = torch.randn(3, 8, 32)
    method.state.mask = torch.ones(3, 8, dtype=torch.long)
    site(x)
    (w,) = seen
    full = route(torch.softmax(site.router(x), -1), router, k).reshape(-1, 4)
    capacity = math.ceil(24 / 4 * 0.5)
    kept = w.reshape(-1, 4)
    assert bool((kept.ne(0).sum(0) <= capacity).all()) and bool((kept.ne(0).sum(-1) <= k).all())
    for j in range(4):  # module j keeps exactly its first `capacity` assignments in batch order
        order = full[:, j].ne(0).nonzero().flatten()
        assert kept[:, j].ne(0).nonzero().flatten().tolist() == order[:capacity].tolist()
        assert torch.equal(kept[order[:capacity], j], full[order[:capacity], j])  # kept weights unchanged


@pytest.mark.parametrize("settings, message", [
    ({"router": "soft", "capacity_factor": 1.0}, "method.router=soft sends every token to every module"),
    ({"capacity_factor": 0.0}, "method.capacity_factor must be > 0"),
])
def test_bad_capacities_are_refused(settings, message):
    from peftbench.plan import method_from_config

    with pytest.raises(UserError, match=message):
        method_from_config({"name": "moe_adapters", "module": "pfeiffer", "settings": {}, **settings})
