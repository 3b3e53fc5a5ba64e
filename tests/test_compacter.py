"""Compacter and Compacter++ (Karimi Mahabadi et al. 2021): the PHM equation, the shared A_i, what
trains and saves on tiny models, refusals, and the paper's Table 1 parameter percentages for T5-base
from the configs alone."""

import copy
import math
import types

import pytest
import torch

from peftbench.config import model_config
from peftbench.counting import counts_from_config, parameter_counts
from peftbench.errors import UserError
from peftbench.launch import compose
from peftbench.methods import build_method
from peftbench.methods.adapters import ADAPTER, SequentialAdapter
from peftbench.methods.base import attach
from peftbench.methods.compacter import SHARED, PHMBottleneck, PHMLinear
from peftbench.models.anatomy import anatomy_of, locate
from peftbench.models.load import architecture_config, skeleton_for_classification
from tests.helpers import adamw_step, apply_method, assert_save_load_round_trip, assert_step_touches_only, batch
from tests.helpers import fresh_adapted, method_and_head, tiny_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

# Tiny models: d = 32, 2 layers (T5: 2 encoder + 2 decoder blocks). m = 8, n = 4 (divides 32 and 8).
COMPACTER = {"name": "compacter", "bottleneck": 8, "reduction_factor": None}
COMPACTER_PP = {"name": "compacter_pp", "bottleneck": 8, "reduction_factor": None}
VARIANTS = {"compacter": COMPACTER, "compacter_pp": COMPACTER_PP}
MODELS = ["tiny-bert", "tiny-roberta", "tiny-gpt2", "tiny-llama", "tiny-t5"]
CASES = [(v, m) for v in VARIANTS for m in MODELS]
IDS = [f"{v}-{m}" for v, m in CASES]

# Per adapter 2r(d + m) + m + d = 2·(32 + 8) + 8 + 32 = 120 (down: s 4·8·1 + t 4·1·2 + b 8 = 48;
# up: s 4·2·1 + t 4·1·8 + b 32 = 72); the shared A: n³ = 64, once. Layer norms, all of the backbone:
# BERT / RoBERTa: embeddings + 2 per block = 5 LayerNorms of 2·32 = 320; GPT-2: ln_1, ln_2 per block
# + ln_f = 5 · 64 = 320; Llama (RMSNorm, weight only): 2 per block + final = 5 · 32 = 160;
# T5 (RMS, weight only): encoder 2·2 + final, decoder 2·3 + final = 12 · 32 = 384.
EXPECTED = {
    "compacter": {"default": 4 * 120 + 64 + 320, "tiny-llama": 4 * 120 + 64 + 160, "tiny-t5": 8 * 120 + 64 + 384},
    "compacter_pp": {"default": 2 * 120 + 64 + 320, "tiny-llama": 2 * 120 + 64 + 160, "tiny-t5": 4 * 120 + 64 + 384},
}


def _anatomy(model_name):
    return anatomy_of(model_config(model_name).architecture["model_type"])


def _own_count(model, method) -> int:
    sizes = {name: param.numel() for name, param in model.named_parameters()}
    return sum(sizes[name] for name in method.parameter_names(model))


def _phm_layers(model) -> list[PHMLinear]:
    return [m for m in model.modules() if isinstance(m, PHMLinear)]


def _shared_A(model) -> torch.nn.Parameter:
    return getattr(model.base_model, SHARED).A


def _loss(model, tokenizer):
    inputs = batch(tokenizer)
    inputs["labels"] = torch.tensor([0, 1])
    return model(**inputs).loss


def _kron_weight(A: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Σ_i A_i ⊗ (s_i t_i), with torch.kron, independently of PHMLinear.weight."""
    return sum(torch.kron(A[i], s[i] @ t[i]) for i in range(A.shape[0]))


# --- the equation --------------------------------------------------------------------------------


@pytest.mark.parametrize("rank", [1, 3])
def test_phm_weight_is_the_sum_of_kronecker_products(rank):
    model, _ = tiny_classifier("tiny-bert")
    apply_method(model, {**COMPACTER, "phm_rank": rank}, "tiny-bert")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        _shared_A(model).copy_(torch.randn(4, 4, 4, generator=generator))
    layers = _phm_layers(model)
    assert len(layers) == 2 * 2 * 2  # 2 blocks · 2 sites · (down, up)
    for layer in layers:
        n = 4
        assert layer.s.shape == (n, layer.in_features // n, rank) and layer.t.shape == (n, rank, layer.out_features // n)
        expected = _kron_weight(_shared_A(model).detach(), layer.s.detach(), layer.t.detach())
        assert expected.shape == (layer.in_features, layer.out_features)
        with torch.no_grad():
            torch.testing.assert_close(layer.weight(), expected)
            x = torch.randn(3, layer.in_features, generator=generator)
            layer.bias.copy_(torch.randn(layer.out_features, generator=generator))
            torch.testing.assert_close(layer(x), x @ expected + layer.bias)  # y = x W + b


def test_ffn_adapter_in_t5_computes_h_plus_up_gelu_down_h():
    """In the model: the T5 FFN output becomes h + PHM_up(gelu_new(PHM_down(h))), h = wo(·)."""
    model, tokenizer = tiny_classifier("tiny-t5")
    apply_method(model, COMPACTER, "tiny-t5")
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        _shared_A(model).copy_(torch.randn(4, 4, 4, generator=generator))
    anatomy = _anatomy("tiny-t5")
    wrapper = model.get_submodule(locate(model, anatomy, "ffn.out")[-1][0])  # the last decoder block
    assert isinstance(wrapper, SequentialAdapter) and isinstance(getattr(wrapper, ADAPTER), PHMBottleneck)
    seen = {}

    def record(module, args, out):  # returns None: observes, never replaces the output
        seen.setdefault("io", (args[0], out))

    hook = wrapper.register_forward_hook(record)
    with torch.no_grad():
        model(**batch(tokenizer))
    hook.remove()
    x, out = seen["io"]
    adapter, A = getattr(wrapper, ADAPTER), _shared_A(model).detach()
    h = wrapper.base(x)
    w_down = _kron_weight(A, adapter.down.s.detach(), adapter.down.t.detach())
    w_up = _kron_weight(A, adapter.up.s.detach(), adapter.up.t.detach())
    z = torch.nn.functional.gelu(h @ w_down + adapter.down.bias, approximate="tanh")
    expected = h + z @ w_up + adapter.up.bias
    assert (expected - h).abs().max() > 1e-3
    torch.testing.assert_close(out, expected)


def test_init_follows_the_authors_code():
    """s_i, t_i Xavier-uniform (gain √2) per i, biases 0, A ~ N(0, 1e-4²): near, not exactly, identity."""
    model, tokenizer = tiny_classifier("tiny-bert")
    plain = copy.deepcopy(model)
    apply_method(model, COMPACTER, "tiny-bert")
    A = _shared_A(model).detach()
    assert A.abs().max() < 1e-3 and A.abs().max() > 0
    for layer in _phm_layers(model):
        for factor in (layer.s, layer.t):
            fan_sum = factor.shape[1] + factor.shape[2]
            bound = math.sqrt(2) * math.sqrt(6 / fan_sum)
            assert factor.abs().max() <= bound and factor.abs().max() > bound / 4
        assert not layer.bias.any()
    # Near, not exactly, identity: each bottleneck's own output is non-zero but tiny (|A| ~ 1e-4 twice,
    # about 1e-8 of h: too small to survive in the logits on every CPU's kernels, so it is read here).
    bottleneck = next(m for m in model.modules() if isinstance(m, PHMBottleneck))
    with torch.no_grad():
        delta = bottleneck(torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(0)))
    assert 0 < delta.abs().max() < 1e-4
    inputs = batch(tokenizer)
    with torch.no_grad():
        got, expected = model(**inputs).logits, plain(**inputs).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


# --- the shared A --------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_shared_A_is_one_parameter_for_the_whole_model(variant):
    model, _ = tiny_classifier("tiny-t5")
    method = apply_method(model, VARIANTS[variant], "tiny-t5")
    layers = _phm_layers(model)
    assert len(layers) == (16 if variant == "compacter" else 8)  # encoder and decoder, down and up
    A = _shared_A(model)
    assert all(layer.rule.A is A for layer in layers)
    shared = [name for name, _ in model.named_parameters() if name.endswith(f"{SHARED}.A")]
    assert shared == [f"transformer.{SHARED}.A"]
    assert [name for name, p in model.named_parameters() if p is A] == shared
    assert [name for name in method.parameter_names(model) if name in shared] == shared
    assert sum(1 for name in model.state_dict() if name.endswith(".A")) == 1  # saved once too


@pytest.mark.parametrize("model_name", ["tiny-gpt2", "tiny-t5"])
def test_shared_A_gets_gradient_from_every_layer(model_name):
    """d loss/dA = Σ_layers (the part through that layer): each part is nonzero and they add up."""
    model, tokenizer = tiny_classifier(model_name)
    apply_method(model, COMPACTER, model_name)
    A = _shared_A(model)
    layers = _phm_layers(model)
    A.grad = None
    _loss(model, tokenizer).backward()
    total = A.grad.clone()
    parts = []
    for only in layers:
        stop = types.SimpleNamespace(A=A.detach())  # the other layers see A as a constant
        for layer in layers:
            if layer is not only:
                layer.__dict__["rule"] = stop
        A.grad = None
        _loss(model, tokenizer).backward()
        parts.append(torch.zeros_like(A) if A.grad is None else A.grad.clone())
        for layer in layers:
            layer.__dict__["rule"] = getattr(model.base_model, SHARED)
    assert all(part.abs().sum() > 0 for part in parts), [float(p.abs().sum()) for p in parts]
    torch.testing.assert_close(sum(parts), total, rtol=1e-4, atol=1e-12)


# --- what trains, what saves ---------------------------------------------------------------------


@pytest.mark.parametrize("variant, model_name", CASES, ids=IDS)
def test_one_step_moves_only_compacter_norms_and_head(variant, model_name):
    model, tokenizer = tiny_classifier(model_name)
    method = apply_method(model, VARIANTS[variant], model_name)
    own, head = method_and_head(model, method)
    assert len(own) == len(method.parameter_names(model))
    assert _own_count(model, method) == EXPECTED[variant].get(model_name, EXPECTED[variant]["default"])

    before, after = assert_step_touches_only(model, own | head, tokenizer)
    for kind in (f"{SHARED}.A", ".s", ".t", ".bias"):
        names = [n for n in own if n.endswith(kind) and (f".{ADAPTER}." in n or SHARED in n)]
        assert names and any(not torch.equal(after[n], before[n]) for n in names), kind
    norms = [n for n in own if f".{ADAPTER}." not in n and SHARED not in n]
    assert norms and all(not torch.equal(after[n], before[n]) for n in norms)


@pytest.mark.parametrize("variant, model_name", CASES, ids=IDS)
def test_save_load_round_trip_gives_same_logits(variant, model_name, tmp_path):
    model, tokenizer = tiny_classifier(model_name)
    method = apply_method(model, VARIANTS[variant], model_name)
    adamw_step(model, tokenizer)
    *_, fresh = assert_save_load_round_trip(model, tokenizer, lambda: fresh_adapted(model_name, VARIANTS[variant]), tmp_path, method)
    assert all(layer.rule.A is _shared_A(fresh) for layer in _phm_layers(fresh))


# --- placement -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model_name", ["tiny-bert", "tiny-t5"])
def test_placement_houlsby_for_compacter_ffn_only_for_compacter_pp(model_name):
    anatomy = _anatomy(model_name)
    for variant, sites in [("compacter", {"attn.o", "ffn.out"}), ("compacter_pp", {"ffn.out"})]:
        model, _ = tiny_classifier(model_name)
        apply_method(model, VARIANTS[variant], model_name)
        for role in ("attn.o", "ffn.out", "xattn.o", "attn.q", "ffn.in"):
            for path, _ in locate(model, anatomy, role):
                assert isinstance(model.get_submodule(path), SequentialAdapter) == (role in sites), (variant, path)


def test_every_backbone_layer_norm_trains_as_in_the_authors_code():
    """T5: both stacks' self-attention, cross-attention, FFN and final norms (unfreeze_layer_norms)."""
    model, _ = tiny_classifier("tiny-t5")
    method = apply_method(model, COMPACTER, "tiny-t5")
    norms = sorted(n for n in method.parameter_names(model) if "layer_norm" in n)
    assert len(norms) == 12
    assert "transformer.decoder.block.1.layer.1.layer_norm.weight" in norms  # cross-attention's
    assert {"transformer.encoder.final_layer_norm.weight", "transformer.decoder.final_layer_norm.weight"} < set(norms)
    # AdapterDrop: no adapters and no trained norms in the dropped blocks; the final norms still train.
    model, _ = tiny_classifier("tiny-t5")
    method = apply_method(model, {**COMPACTER, "drop_layers": 1}, "tiny-t5")
    names = method.parameter_names(model)
    assert not [n for n in names if ".block.0." in n]
    assert sum("layer_norm" in n for n in names) == 2 + 3 + 2 and len(_phm_layers(model)) == 8


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "node, match",
    [
        ({"name": "compacter", "phm_dim": 0}, "phm_dim"),
        ({"name": "compacter", "phm_rank": 0}, "phm_rank"),
        ({"name": "compacter", "phm_init_range": 0}, "phm_init_range"),
        ({"name": "compacter_pp", "bottleneck": 6, "reduction_factor": None}, "must divide method.bottleneck=6"),
        ({"name": "compacter", "init": "bert"}, "init"),
        ({"name": "compacter", "bottleneck": 8}, "exactly one"),  # reduction_factor 32 is still set
    ],
)
def test_config_check_refuses(node, match):
    with pytest.raises(UserError, match=match) as error:
        build_method(node)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "node, match",
    [
        ({**COMPACTER, "bottleneck": 32}, "hidden size"),  # m must be < d = 32
        ({**COMPACTER_PP, "bottleneck": 40}, "hidden size"),
        ({**COMPACTER, "bottleneck": 6, "phm_dim": 3}, "phm_dim=3 must divide the hidden size 32"),  # 3 ∤ 32
        ({"name": "compacter", "reduction_factor": 8, "phm_dim": 8}, "bottleneck 4"),  # m = 4: 8 ∤ 4
        ({"name": "compacter"}, "bottleneck 1"),  # the paper's m = d/32 on a 32-wide model: 4 ∤ 1
    ],
)
@pytest.mark.parametrize("model_name", ["tiny-bert", "tiny-t5"])
def test_check_model_refuses_from_configs_before_weights_load(node, match, model_name):
    with pytest.raises(UserError, match=match) as error:
        build_method(node).check_model(_anatomy(model_name), architecture_config(model_config(model_name)))
    assert "\n" not in str(error.value)


# --- Table 1 of the paper: % of T5-base's parameters, from the configs alone -----------------------

# T5-base: d = 768, 12 encoder + 12 decoder blocks; backbone (T5Model: shared embedding, both stacks,
# no LM head, as T5ForSequenceClassification's base) 222,903,552 parameters.
# The authors' configs (compacter.json, compacter++.json): reduction factor 32 → m = 24, n = 4, rank 1,
# adapters in the encoder and the decoder, all layer norms trained.
#   per adapter: down s 4·192·1 + t 4·1·6 + b 24 = 792; up s 4·6·1 + t 4·1·192 + b 768 = 1,584 → 2,376
#                (= 2r(d + m) + m + d = 2·792 + 792)
#   shared A: 4·4·4 = 64, once
#   layer norms (T5: weight only, 768): encoder 12·2 + final 1 = 25, decoder 12·3 + final 1 = 37;
#                62 · 768 = 47,616
#   Compacter:   48 adapters · 2,376 = 114,048 + 64 + 47,616 = 161,728 → 161,728 / 222,903,552 = 0.07256%
#   Compacter++: 24 adapters · 2,376 =  57,024 + 64 + 47,616 = 104,704 → 104,704 / 222,903,552 = 0.04697%
# Paper Table 1: 0.073% and 0.047%. The layer norms must count: without them 114,112 (0.051%) and
# 57,088 (0.026%); with the blocks' ln.attn / ln.ffn only (48 · 768) 150,976 (0.068%). The authors'
# code divides by a hard-coded t5_base_params = 222,882,048 (utils.py), 21,504 fewer; the rounding
# is the same (0.07256%, 0.04698%).
PAPER = [("compacter", 161_728, 0.073), ("compacter_pp", 104_704, 0.047)]


@pytest.mark.parametrize("variant, exact, percent", PAPER, ids=[p[0] for p in PAPER])
def test_paper_table1_percentages_for_t5_base(variant, exact, percent):
    counts = counts_from_config(compose(["model=t5-base", f"method={variant}"]))
    assert counts["backbone"] == 222_903_552
    assert counts["trainable_method"] == exact
    assert round(100 * counts["trainable_method"] / counts["backbone"], 3) == percent
    assert round(100 * counts["trainable_method"] / 222_882_048, 3) == percent  # the authors' denominator
    assert counts["trainable"] == counts["trainable_method"] + counts["head"]


def test_t5_base_count_parts_and_the_alternatives_that_miss_the_paper():
    model_cfg = model_config("t5-base")
    model = skeleton_for_classification(model_cfg)
    method = build_method({"name": "compacter"})
    counts = parameter_counts(model, method, attach(method, model, anatomy_of("t5")))
    names = method.parameter_names(model)
    sizes = dict((n, p.numel()) for n, p in model.named_parameters())
    assert [n for n in names if SHARED in n] == [f"transformer.{SHARED}.A"] and sizes[f"transformer.{SHARED}.A"] == 64
    assert sum(sizes[n] for n in names if f".{ADAPTER}." in n) == 48 * 2_376
    assert sum(sizes[n] for n in names if "layer_norm" in n) == 62 * 768
    assert counts["trainable_method"] == 161_728
    backbone = 222_903_552
    no_norms = build_method({"name": "compacter", "train_layer_norms": False})
    bare = skeleton_for_classification(model_cfg)
    attach(no_norms, bare, anatomy_of("t5"))
    assert _own_count(bare, no_norms) == 114_112 and round(100 * 114_112 / backbone, 3) == 0.051 != 0.073
