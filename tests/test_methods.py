"""Every method on every tiny architecture it is defined for: what trains, what stays frozen, what saves.

For each (method, model): (a) one AdamW step moves only the method's and the head's parameters;
(b) the trainable weights saved with peftbench.train.weights and loaded into a freshly built,
equally adapted model give the same logits; (c) the trainable set is exactly method ∪ head.
Where a method is undefined (BitFit on bias-free Llama and T5) it must refuse the model.
"""

import pytest

from peftbench.config import model_config
from peftbench.errors import UserError
from peftbench.methods import build_method
from peftbench.models.anatomy import anatomy_of, head_parameter_names
from peftbench.models.load import architecture_config
from tests.helpers import adamw_step, apply_method, assert_save_load_round_trip, assert_step_touches_only, changed, tiny_classifier

FULL = {"name": "full"}
HEAD = {"name": "head"}
BITFIT = {"name": "bitfit", "roles": None}
# A roles subset: the query and FFN-output biases. (The paper's b_q + b_m2 subset is the query and
# middle-of-MLP biases, [attn.q, ffn.in]: see test_parameter_counts.py.)
BITFIT_ROLES = {"name": "bitfit", "roles": ["attn.q", "ffn.out"]}
LORA = {"name": "lora", "r": 4, "alpha": 8.0, "dropout": 0.0, "targets": ["attn.q", "attn.v"]}

ALL_MODELS = ["tiny-bert", "tiny-roberta", "tiny-gpt2", "tiny-llama", "tiny-t5"]

# Every defined (method id, config, model). BitFit needs biases (not Llama, T5); a roles subset
# with attn.q also needs an unfused query bias (GPT-2's q bias is a slice of c_attn's bias).
CASES = (
    [("full", FULL, m) for m in ALL_MODELS]
    + [("head", HEAD, m) for m in ALL_MODELS]
    + [("bitfit", BITFIT, m) for m in ["tiny-bert", "tiny-roberta", "tiny-gpt2"]]
    + [("bitfit_roles", BITFIT_ROLES, m) for m in ["tiny-bert", "tiny-roberta"]]
    + [("lora", LORA, m) for m in ALL_MODELS]
)
IDS = [f"{method_id}-{model}" for method_id, _, model in CASES]


pytestmark = pytest.mark.usefixtures("one_thread")

# The method's own parameter count on each tiny model, by hand from conf/model/tiny-*.yaml
# (hidden d=32, 2 layers, FFN 64; GPT-2's n_inner defaults to 4·32 = 128; Llama has 2 KV heads of
# head_dim 8, so its v projection is 32 → 16; T5 d_kv·heads = 32, 2 encoder + 2 decoder blocks).
EXPECTED_METHOD_COUNT = {
    # BERT/RoBERTa per layer: q,k,v,o 4·32 + FFN in 64 + FFN out 32 + 2 LayerNorms 2·32 = 288;
    # BERT: 2·288 + embedding LN 32 + pooler 32 = 640; RoBERTa (no pooler): 2·288 + 32 = 608.
    ("bitfit", "tiny-bert"): 640,
    ("bitfit", "tiny-roberta"): 608,
    # GPT-2 per layer: c_attn 96 + attn c_proj 32 + c_fc 128 + mlp c_proj 32 + ln_1 32 + ln_2 32
    # = 352; 2·352 + ln_f 32 = 736.
    ("bitfit", "tiny-gpt2"): 736,
    # attn.q + ffn.out biases: 2 layers · (32 + 32) = 128.
    ("bitfit_roles", "tiny-bert"): 128,
    ("bitfit_roles", "tiny-roberta"): 128,
    # LoRA r=4 on q and v: per projection r·in + out·r = 4·32 + 32·4 = 256; 2 layers · 2 = 1024.
    ("lora", "tiny-bert"): 1024,
    ("lora", "tiny-roberta"): 1024,
    ("lora", "tiny-gpt2"): 1024,
    # Llama: q 256 + v (4·32 + 16·4 = 192) = 448 per layer, 2 layers = 896.
    ("lora", "tiny-llama"): 896,
    # T5: self-attention q, v in 4 blocks (cross-attention not targeted): 4 · 2 · 256 = 2048.
    ("lora", "tiny-t5"): 2048,
    ("head", "tiny-bert"): 0,
    ("head", "tiny-roberta"): 0,
    ("head", "tiny-gpt2"): 0,
    ("head", "tiny-llama"): 0,
    ("head", "tiny-t5"): 0,
}


def _adapted(method_node, model_name):
    model, tokenizer = tiny_classifier(model_name)
    method = apply_method(model, method_node, model_name)
    return model, tokenizer, method


@pytest.mark.parametrize("method_id, node, model_name", CASES, ids=IDS)
def test_one_step_moves_only_method_and_head(method_id, node, model_name):
    model, tokenizer, method = _adapted(node, model_name)
    own = set(method.parameter_names(model))
    head = set(head_parameter_names(model))
    before, after = assert_step_touches_only(model, own | head, tokenizer, label=method_id)

    outside = [name for name in before if name not in own | head]
    if method_id == "full":
        assert not outside  # full fine-tuning leaves nothing frozen
    changed_own = changed(before, after, own)
    changed_head = changed(before, after, head)
    if method_id == "head":
        assert changed_head, "the head did not train"
    else:
        assert changed_own, f"no parameter of {method_id} changed after an optimiser step"


@pytest.mark.parametrize("method_id, node, model_name", CASES, ids=IDS)
def test_save_load_round_trip_gives_same_logits(method_id, node, model_name, tmp_path):
    model, tokenizer, method = _adapted(node, model_name)
    adamw_step(model, tokenizer)  # so the trained weights differ from a fresh build
    # same seed: same frozen backbone, untrained method/head
    assert_save_load_round_trip(model, tokenizer, lambda: _adapted(node, model_name)[0], tmp_path, method)


@pytest.mark.parametrize("method_id, node, model_name", CASES, ids=IDS)
def test_trainable_set_is_method_and_head(method_id, node, model_name):
    model, _, method = _adapted(node, model_name)
    own = method.parameter_names(model)
    head = head_parameter_names(model)
    names = {name for name, _ in model.named_parameters()}
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}

    assert head, "every classification model has a head"
    assert len(own) == len(set(own)), "a method parameter is listed twice"
    assert set(own) <= names
    assert not set(own) & set(head), "the head is counted apart from the method"
    assert trainable == set(own) | set(head)
    if method_id == "full":
        assert set(own) == names - set(head)
    else:
        sizes = {name: param.numel() for name, param in model.named_parameters()}
        assert sum(sizes[name] for name in own) == EXPECTED_METHOD_COUNT[(method_id, model_name)]


def test_bitfit_selects_exactly_the_backbone_biases():
    model, _, method = _adapted(BITFIT, "tiny-bert")
    own = method.parameter_names(model)
    # 2 layers · 8 biases (q, k, v, o, attn LN, FFN in, FFN out, FFN LN) + embedding LN + pooler = 18
    assert len(own) == 18
    assert all(name.endswith(".bias") for name in own)
    assert "bert.pooler.dense.bias" in own and "bert.embeddings.LayerNorm.bias" in own
    assert "classifier.bias" not in own


def test_bitfit_roles_select_exactly_their_biases():
    model, _, method = _adapted(BITFIT_ROLES, "tiny-bert")
    assert sorted(method.parameter_names(model)) == sorted(
        f"bert.encoder.layer.{i}.{module}.bias" for i in (0, 1) for module in ("attention.self.query", "output.dense")
    )


@pytest.mark.parametrize("node", [BITFIT, BITFIT_ROLES], ids=["bitfit", "bitfit_roles"])
@pytest.mark.parametrize("model_name", ["tiny-llama", "tiny-t5"])
def test_bitfit_refuses_models_without_biases(node, model_name):
    model_cfg = model_config(model_name)
    anatomy = anatomy_of(model_cfg.architecture["model_type"])
    method = build_method(node)
    with pytest.raises(UserError, match="bias"):
        method.check_model(anatomy, architecture_config(model_cfg))


@pytest.mark.parametrize("model_name", ["tiny-bert", "tiny-roberta", "tiny-gpt2"])
def test_bitfit_accepts_models_with_biases(model_name):
    model_cfg = model_config(model_name)
    build_method(BITFIT).check_model(anatomy_of(model_cfg.architecture["model_type"]), architecture_config(model_cfg))


@pytest.mark.parametrize(
    "model_name, roles, reason",
    [("tiny-gpt2", ["attn.q", "ffn.out"], "fused"), ("tiny-bert", ["xattn.q"], "does not exist")],
    ids=["fused", "absent"],
)
def test_bitfit_roles_refused_before_weights_load(model_name, roles, reason):
    """GPT-2's query bias is a slice of c_attn's bias; BERT has no cross-attention: refused from configs."""
    model_cfg = model_config(model_name)
    method = build_method({"name": "bitfit", "roles": roles})
    with pytest.raises(UserError, match=reason):
        method.check_model(anatomy_of(model_cfg.architecture["model_type"]), architecture_config(model_cfg))


def test_top_k_trains_exactly_the_last_k_blocks_and_refuses_too_many():
    model, tokenizer = tiny_classifier("tiny-bert")
    method = apply_method(model, {"name": "top_k", "k": 1}, "tiny-bert")
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any(name.startswith("bert.encoder.layer.1.") for name in trainable)
    assert not any(name.startswith(("bert.encoder.layer.0.", "bert.embeddings.")) for name in trainable)
    assert set(method.parameter_names(model)) == {n for n in trainable if n.startswith("bert.encoder.layer.1.")}
    model_cfg = model_config("tiny-bert")
    with pytest.raises(UserError, match="exceeds the 2 layers"):
        build_method({"name": "top_k", "k": 3}).check_model(anatomy_of("bert"), architecture_config(model_cfg))
