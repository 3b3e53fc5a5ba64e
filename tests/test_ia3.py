"""(IA)³ against HF peft 0.21 (same count, same outputs), merging, training and saving, refusals."""

import copy

import pytest
import torch

from peftbench.config import model_config
from peftbench.errors import UserError
from peftbench.methods import build_method
from peftbench.models.anatomy import anatomy_of, locate
from peftbench.models.load import architecture_config
from tests.helpers import (
    adamw_step,
    apply_method,
    assert_merge_equals_unmerged_and_unmerge_restores,
    assert_same_logits_as_peft,
    assert_save_load_round_trip,
    assert_step_touches_only,
    batch,
    copy_into_peft,
    fresh_adapted,
    method_and_head,
    tiny_classifier,
)

IA3 = {"name": "ia3"}
ALL_MODELS = ["tiny-bert", "tiny-roberta", "tiny-gpt2", "tiny-llama", "tiny-t5"]

pytestmark = pytest.mark.usefixtures("one_thread")

# By hand from conf/model/tiny-*.yaml (d = 32, 2 layers, FFN 64; GPT-2 FFN 4·32 = 128; Llama's k
# and v are 2 KV heads · 8 = 16 wide; T5: 2 encoder blocks of d_k + d_v + d_ff = 128 and 2 decoder
# blocks of 2d_k + 2d_v + d_ff = 192, the paper's L(d_k + d_v + d_ff) and L(2d_k + 2d_v + d_ff)).
EXPECTED = {"tiny-bert": 256, "tiny-roberta": 256, "tiny-gpt2": 384, "tiny-llama": 192, "tiny-t5": 640}


def _own(model, method) -> int:
    names = set(method.parameter_names(model))
    return sum(p.numel() for n, p in model.named_parameters() if n in names)


def _sites(model, name, roles):
    anatomy = anatomy_of(model_config(name).architecture["model_type"])
    return sorted({path for role in roles for path, _ in locate(model, anatomy, role)})


def _peft_twin(model, name):
    from peft import IA3Config, get_peft_model

    ff = _sites(model, name, ["ffn.out"])
    targets = _sites(model, name, ["attn.k", "attn.v", "xattn.k", "xattn.v"]) + ff
    config = IA3Config(task_type="SEQ_CLS", target_modules=targets, feedforward_modules=ff)
    return get_peft_model(copy.deepcopy(model), config)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_same_count_and_logits_as_peft(name):
    model, tokenizer = tiny_classifier(name)
    theirs = _peft_twin(model, name).eval()
    ours = copy.deepcopy(model)
    method = apply_method(ours, IA3, name)
    assert _own(ours, method) == EXPECTED[name]
    their_count = sum(p.numel() for n, p in theirs.named_parameters() if ".ia3_l." in n)
    d = model.config.n_embd if name == "tiny-gpt2" else None
    if name == "tiny-gpt2":  # peft scales all of the fused c_attn, q slice included
        assert their_count == _own(ours, method) + model.config.n_layer * d
    else:
        assert their_count == _own(ours, method)

    def widen(value, target):  # GPT-2 c_attn: [q; k; v] with q left at 1
        return torch.cat([torch.ones(d), value]) if target.numel() != value.numel() else value

    copy_into_peft(
        ours,
        theirs,
        select=lambda param_name: param_name.endswith(".ia3_l"),
        peft_name=lambda param_name: "base_model.model." + param_name + ".default",
        draw=lambda shape, generator: 3 * torch.rand(shape, generator=generator),
        widen=widen,
    )
    assert_same_logits_as_peft(
        ours,
        theirs,
        model,
        tokenizer,
        differs=lambda got, plain: (got - plain).abs().max() > 1e-4,
        message="the (IA)³ vectors must change the outputs",
    )
    if name not in ("tiny-t5",):  # peft's SEQ_CLS head wrapper finds `classifier`/`score`, not T5's head
        trainable = sum(p.numel() for p in ours.parameters() if p.requires_grad)
        assert trainable == sum(p.numel() for p in theirs.parameters() if p.requires_grad) - (
            model.config.n_layer * d if d else 0
        )


@pytest.mark.parametrize("name", ALL_MODELS + ["tiny-mpnet", "tiny-deberta-v2"])
def test_merge_equals_unmerged_and_unmerge_restores(name):
    model, tokenizer = tiny_classifier(name)
    method = apply_method(model, IA3, name)
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if param_name.endswith(".ia3_l"):
                param.uniform_(0.5, 1.5)
    assert_merge_equals_unmerged_and_unmerge_restores(model, method, tokenizer, frozen_rtol=1e-6)


def test_merge_scales_rows_for_keys_and_columns_for_ffn_out():
    """l ⊙ (W x + b) = diag(l) W x + l ⊙ b for k, v; W (l ⊙ x) = (W diag(l)) x for the FFN output."""
    model, _ = tiny_classifier("tiny-bert")
    layer_before = copy.deepcopy(model.bert.encoder.layer[0])
    method = apply_method(model, IA3, "tiny-bert")
    block = model.bert.encoder.layer[0]
    with torch.no_grad():
        block.attention.self.key.ia3_l.fill_(2.0)
        block.output.dense.ia3_l.copy_(torch.arange(64.0))
    method.merge(model)
    key, before_key = block.attention.self.key.base, layer_before.attention.self.key
    torch.testing.assert_close(key.weight, 2 * before_key.weight)
    torch.testing.assert_close(key.bias, 2 * before_key.bias)
    out, before_out = block.output.dense.base, layer_before.output.dense
    torch.testing.assert_close(out.weight, before_out.weight * torch.arange(64.0)[None, :])
    torch.testing.assert_close(out.bias, before_out.bias)


def test_gpt2_fused_projection_scales_only_k_and_v():
    model, tokenizer = tiny_classifier("tiny-gpt2")
    apply_method(model, IA3, "tiny-gpt2")
    layer = model.transformer.h[0].attn.c_attn
    d = model.config.n_embd
    assert layer.ia3_l.numel() == 2 * d
    with torch.no_grad():
        layer.ia3_l.fill_(3.0)
        scale = layer.scale()
    assert torch.equal(scale[:d], torch.ones(d)) and torch.equal(scale[d:], torch.full((2 * d,), 3.0))


@pytest.mark.parametrize("name", ALL_MODELS)
def test_starts_as_the_pretrained_model(name):
    """Vectors initialised to ones (paper §3.3): the adapted model computes what the backbone did."""
    model, tokenizer = tiny_classifier(name)
    reference = copy.deepcopy(model)
    apply_method(model, IA3, name)
    inputs = batch(tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, reference(**inputs).logits, atol=0, rtol=0)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_one_step_moves_only_method_and_head(name):
    model, tokenizer = tiny_classifier(name)
    method = apply_method(model, IA3, name)
    own, head = method_and_head(model, method)
    before, after = assert_step_touches_only(model, own | head, tokenizer)
    assert any(not torch.equal(after[n], before[n]) for n in own)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_save_load_round_trip(name, tmp_path):
    model, tokenizer = tiny_classifier(name)
    method = apply_method(model, IA3, name)
    adamw_step(model, tokenizer)
    assert_save_load_round_trip(model, tokenizer, lambda: fresh_adapted(name, IA3), tmp_path, method)


@pytest.mark.parametrize(
    "node, fragment",
    [
        ({"targets": [], "feedforward": []}, "both empty"),
        ({"targets": ["attn.key"]}, "unknown roles"),
        ({"feedforward": ["ffn.outt"]}, "unknown roles"),
        ({"targets": ["attn.k", "ffn.out"], "feedforward": ["ffn.out"]}, "in both"),
    ],
)
def test_config_refusals(node, fragment):
    with pytest.raises(UserError, match=fragment):
        build_method({"name": "ia3", **node})


@pytest.mark.parametrize(
    "name, node, fragment",
    [
        ("tiny-bert", {"feedforward": ["ffn.gate"]}, "do not exist"),
        ("tiny-gpt2", {"targets": ["attn.v"], "feedforward": ["attn.k"]}, "fused"),
    ],
)
def test_model_refusals(name, node, fragment):
    model_cfg = model_config(name)
    method = build_method({"name": "ia3", **node})
    with pytest.raises(UserError, match=fragment):
        method.check_model(anatomy_of(model_cfg.architecture["model_type"]), architecture_config(model_cfg))


def test_encoder_without_cross_attention_skips_xattn_roles():
    model_cfg = model_config("tiny-bert")
    method = build_method(IA3)
    method.check_model(anatomy_of("bert"), architecture_config(model_cfg))  # xattn.* default: no refusal
