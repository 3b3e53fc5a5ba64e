"""Prefix tuning against HF peft 0.21 (same count, same logits), folding, training, saving, generation.

peft's ``PrefixTuningConfig(task_type=SEQ_CLS)`` hands the prefixes to the base model as a
``DynamicCache`` in ``past_key_values`` with the attention mask extended by n ones; ours does the
same, so given the same weights the logits agree on BERT, RoBERTa, GPT-2 and Llama (GQA: the
prefix width is num_key_value_heads·head_dim, as peft). peft fails on T5 SEQ_CLS (it extends the
encoder mask but the T5 encoder takes no cache); ours puts prefixes on the encoder, the decoder
and the cross-attention (the paper's three sets), tested on its own below.
"""

import copy

import pytest
import torch

from peftbench.config import model_config
from peftbench.errors import UserError
from peftbench.methods import build_method
from peftbench.models.anatomy import anatomy_of
from peftbench.models.load import architecture_config
from tests.helpers import adamw_step, apply_method, assert_save_load_round_trip, assert_step_touches_only
from tests.helpers import method_and_head, tiny_classifier

ALL_MODELS = ["tiny-bert", "tiny-roberta", "tiny-gpt2", "tiny-llama", "tiny-t5"]
PEFT_MODELS = ["tiny-bert", "tiny-roberta", "tiny-gpt2", "tiny-llama"]
N, H = 3, 12
NODES = {
    "mlp": {"name": "prefix", "length": N, "reparameterize": True, "hidden_size": H},
    "free": {"name": "prefix", "length": N, "reparameterize": False},
}
TEXTS = ["a tiny test sentence", "another, somewhat longer test sentence here"]
PAIRS = ["pair one", "the second pair text"]

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore::FutureWarning")]


def _inputs(tokenizer, rows=None):
    texts, pairs = TEXTS, PAIRS
    if rows is not None:
        texts, pairs = [TEXTS[i] for i in rows], [PAIRS[i] for i in rows]
    return tokenizer(texts, pairs, padding=True, return_tensors="pt")  # right padding


def _trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _own(model, method) -> int:
    names = set(method.parameter_names(model))
    return sum(p.numel() for n, p in model.named_parameters() if n in names)


def _randomise(model, method, generator) -> None:
    """Random prefix weights of a useful size (the default N(0, 1) table saturates nothing here)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in method.parameter_names(model):
            params[name].copy_(torch.randn(params[name].shape, generator=generator) * 0.5)


@pytest.mark.parametrize("kind", ["mlp", "free"])
@pytest.mark.parametrize("name", PEFT_MODELS)
def test_same_count_and_logits_as_peft(name, kind):
    from peft import get_peft_model

    model, tokenizer = tiny_classifier(name)
    ours = copy.deepcopy(model)
    method = apply_method(ours, NODES[kind], name)
    _randomise(ours, method, torch.Generator().manual_seed(1))
    config, state = method.to_peft(ours)
    assert config.prefix_projection == (kind == "mlp")
    assert config.encoder_hidden_size == NODES[kind].get("hidden_size", 512)
    theirs = get_peft_model(copy.deepcopy(model), config).eval()
    their_encoder = {n: p for n, p in theirs.named_parameters() if n.startswith("prompt_encoder.")}
    assert set(state) == set(their_encoder)
    assert _own(ours, method) == sum(p.numel() for p in their_encoder.values())
    assert _trainable(ours) == _trainable(theirs)
    for key, value in state.items():  # the same prefix weights in peft, through their names
        with torch.no_grad():
            their_encoder[key].copy_(value)
    theirs.eval()
    inputs = _inputs(tokenizer)
    with torch.no_grad():
        got = ours(**inputs).logits
        assert (got - model(**inputs).logits).abs().max() > 1e-4, "the prefix must change the outputs"
        torch.testing.assert_close(got, theirs(**inputs).logits, atol=1e-5, rtol=0)


def test_t5_seq_cls_is_beyond_peft():
    """Why T5 has no parity test: peft 0.21 itself fails on T5 SEQ_CLS prefix tuning."""
    from peft import PrefixTuningConfig, get_peft_model

    model, tokenizer = tiny_classifier("tiny-t5")
    theirs = get_peft_model(model, PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=N)).eval()
    with pytest.raises(RuntimeError), torch.no_grad():
        theirs(**_inputs(tokenizer))


def test_parameter_counts_by_hand():
    """tiny-gpt2: L = 2, d = 32; tiny-llama: d = 2 kv heads × 8 = 16; tiny-t5: three sets of 2 layers."""
    n, h = N, H
    for name, d, sets in [("tiny-gpt2", 32, 1), ("tiny-llama", 16, 1), ("tiny-t5", 32, 3)]:
        width = 2 * 2 * d
        model, _ = tiny_classifier(name)
        method = apply_method(model, NODES["mlp"], name)
        assert _own(model, method) == sets * (n * d + (d * h + h) + (h * width + width))
        method.fold(model)
        assert _own(model, method) == sets * n * width
        model, _ = tiny_classifier(name)
        method = apply_method(model, NODES["free"], name)
        assert _own(model, method) == sets * n * width


@pytest.mark.parametrize("name", ALL_MODELS)
def test_fold_gives_the_same_logits_with_fewer_parameters(name):
    model, tokenizer = tiny_classifier(name)
    method = apply_method(model, NODES["mlp"], name)
    _randomise(model, method, torch.Generator().manual_seed(2))
    inputs = _inputs(tokenizer)
    before_count = _own(model, method)
    with torch.no_grad():
        before = model(**inputs).logits
        method.fold(model)
        after = model(**inputs).logits
    assert _own(model, method) < before_count
    assert not any(".transform." in n for n in method.parameter_names(model))
    torch.testing.assert_close(after, before, atol=1e-6, rtol=0)


def test_folded_model_exports_as_peft_without_projection():
    from peft import get_peft_model

    model, tokenizer = tiny_classifier("tiny-gpt2")
    ours = copy.deepcopy(model)
    method = apply_method(ours, NODES["mlp"], "tiny-gpt2")
    _randomise(ours, method, torch.Generator().manual_seed(3))
    method.fold(ours)
    config, state = method.to_peft(ours)
    assert not config.prefix_projection and list(state) == ["prompt_encoder.default.embedding.weight"]
    theirs = get_peft_model(copy.deepcopy(model), config).eval()
    with torch.no_grad():
        dict(theirs.named_parameters())["prompt_encoder.default.embedding.weight"].copy_(state[next(iter(state))])
        inputs = _inputs(tokenizer)
        torch.testing.assert_close(ours(**inputs).logits, theirs(**inputs).logits, atol=1e-5, rtol=0)


def test_t5_has_no_peft_export():
    model, _ = tiny_classifier("tiny-t5")
    method = apply_method(model, NODES["mlp"], "tiny-t5")
    with pytest.raises(UserError, match="encoder-decoder"):
        method.to_peft(model)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_right_padding_gives_each_row_its_unpadded_logits(name):
    model, tokenizer = tiny_classifier(name)
    method = apply_method(model, NODES["mlp"], name)
    _randomise(model, method, torch.Generator().manual_seed(4))
    with torch.no_grad():
        padded = model(**_inputs(tokenizer)).logits
        alone = torch.cat([model(**_inputs(tokenizer, [i])).logits for i in range(len(TEXTS))])
    assert _inputs(tokenizer)["attention_mask"].eq(0).any(), "the batch must have padding"
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=0)


def test_t5_prefixes_reach_encoder_decoder_and_cross_attention():
    """Each of the three sets changes the outputs on its own (zeroing it changes the logits)."""
    model, tokenizer = tiny_classifier("tiny-t5")
    method = apply_method(model, NODES["free"], "tiny-t5")
    _randomise(model, method, torch.Generator().manual_seed(5))
    inputs = _inputs(tokenizer)
    sets = model.transformer.prefix.sets
    assert set(sets) == {"encoder", "decoder", "cross"}
    with torch.no_grad():
        full = model(**inputs).logits
        for key in sets:
            twin = copy.deepcopy(model)
            twin.transformer.prefix.sets[key].embedding.weight.mul_(3)
            assert (twin(**inputs).logits - full).abs().max() > 1e-5, key


# --- generation with a KV cache (decoders) -------------------------------------------------------


def _causal_lm(name):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = architecture_config(model_config(name))
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_generate_with_cache_matches_without(name):
    _, tokenizer = tiny_classifier(name)
    model = _causal_lm(name)
    method = apply_method(model, NODES["mlp"], name)
    _randomise(model, method, torch.Generator().manual_seed(6))
    inputs = tokenizer(["a tiny test sentence"], return_tensors="pt", return_token_type_ids=False)
    options = dict(max_new_tokens=5, do_sample=False, output_logits=True, return_dict_in_generate=True,
                   pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    with torch.no_grad():
        cached = model.generate(**inputs, use_cache=True, **options)
        plain = model.generate(**inputs, use_cache=False, **options)
        # the first step also equals a plain forward over the prompt
        first = model(**inputs).logits[:, -1]
    assert torch.equal(cached.sequences, plain.sequences)
    for a, b in zip(cached.logits, plain.logits):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(cached.logits[0], first, atol=1e-5, rtol=0)


def test_next_token_logits_with_cache_equal_full_recompute():
    _, tokenizer = tiny_classifier("tiny-gpt2")
    model = _causal_lm("tiny-gpt2")
    method = apply_method(model, NODES["mlp"], "tiny-gpt2")
    _randomise(model, method, torch.Generator().manual_seed(7))
    ids = tokenizer(["a tiny test sentence"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model(input_ids=ids[:, :-1], use_cache=True)
        assert out.past_key_values.get_seq_length() == N + ids.shape[1] - 1
        step = model(input_ids=ids[:, -1:], past_key_values=out.past_key_values, use_cache=True).logits[:, -1]
        full = model(input_ids=ids).logits[:, -1]
    torch.testing.assert_close(step, full, atol=1e-5, rtol=0)


# --- training and saving ------------------------------------------------------------------------

CASES = [(k, m) for k in NODES for m in ALL_MODELS]
IDS = [f"{k}-{m}" for k, m in CASES]


@pytest.mark.parametrize("kind, name", CASES, ids=IDS)
def test_one_step_moves_only_prefix_and_head(kind, name):
    model, tokenizer = tiny_classifier(name)
    method = apply_method(model, NODES[kind], name)
    own, head = method_and_head(model, method)
    assert own
    before, after = assert_step_touches_only(model, own | head, tokenizer, inputs=_inputs(tokenizer))
    assert all(not torch.equal(after[n], before[n]) for n in own)


@pytest.mark.parametrize("kind, name", CASES, ids=IDS)
def test_save_load_round_trip(kind, name, tmp_path):
    model, tokenizer = tiny_classifier(name)
    method = apply_method(model, NODES[kind], name)
    adamw_step(model, tokenizer, inputs=_inputs(tokenizer))

    def rebuild():
        torch.manual_seed(123)
        fresh, _ = tiny_classifier(name)
        apply_method(fresh, NODES[kind], name)
        return fresh

    assert_save_load_round_trip(model, tokenizer, rebuild, tmp_path, method, inputs=_inputs(tokenizer))


def test_deep_copy_keeps_its_own_prefix():
    model, tokenizer = tiny_classifier("tiny-gpt2")
    method = apply_method(model, NODES["free"], "tiny-gpt2")
    twin = copy.deepcopy(model)
    inputs = _inputs(tokenizer)
    with torch.no_grad():
        before = twin(**inputs).logits
        dict(model.named_parameters())[method.parameter_names(model)[0]].mul_(3)
        torch.testing.assert_close(twin(**inputs).logits, before, atol=0, rtol=0)
        assert not torch.equal(model(**inputs).logits, before)


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "node, fragment",
    [
        ({"name": "prefix", "length": 0}, "length must be a positive"),
        ({"name": "prefix", "hidden_size": 0}, "hidden_size must be a positive"),
        ({"name": "prefix", "reparameterize": "maybe"}, "reparameterize"),
    ],
)
def test_config_refusals(node, fragment):
    with pytest.raises(UserError, match=fragment) as error:
        build_method(node)
    assert "\n" not in str(error.value)


def test_applying_twice_is_refused():
    model, _ = tiny_classifier("tiny-bert")
    method = apply_method(model, NODES["free"], "tiny-bert")
    with pytest.raises(UserError, match="already has prefixes"):
        method.apply(model, anatomy_of("bert"))


def test_model_without_past_key_values_is_refused():
    model, _ = tiny_classifier("tiny-deberta-v2")
    with pytest.raises(UserError, match="past_key_values"):
        apply_method(model, NODES["free"], "tiny-deberta-v2")


def test_t5_generate_with_cache_matches_without():
    from transformers import AutoModelForSeq2SeqLM

    _, tokenizer = tiny_classifier("tiny-t5")
    torch.manual_seed(0)
    model = AutoModelForSeq2SeqLM.from_config(architecture_config(model_config("tiny-t5"))).eval()
    method = apply_method(model, NODES["mlp"], "tiny-t5")
    _randomise(model, method, torch.Generator().manual_seed(8))
    inputs = tokenizer(TEXTS, padding=True, return_tensors="pt", return_token_type_ids=False)
    options = dict(max_new_tokens=4, do_sample=False, output_logits=True, return_dict_in_generate=True)
    with torch.no_grad():
        cached = model.generate(**inputs, use_cache=True, **options)
        plain = model.generate(**inputs, use_cache=False, **options)
    assert torch.equal(cached.sequences, plain.sequences)
    for a, b in zip(cached.logits, plain.logits):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_counts_from_config_alone_on_meta():
    """GPT-2 medium (L = 24, d = 1024), n = 10, h = 512: training vs folded counts."""
    from peftbench.models.load import skeleton_for_classification

    model = skeleton_for_classification(model_config("gpt2-medium"))
    model.requires_grad_(False)
    method = build_method({"name": "prefix", "length": 10})
    method.apply(model, anatomy_of("gpt2"))
    n, d, h, width = 10, 1024, 512, 24 * 2 * 1024
    assert _own(model, method) == n * d + (d * h + h) + (h * width + width)
    method.fold(model)
    assert _own(model, method) == n * width


@pytest.mark.parametrize("name", ["tiny-roberta", "tiny-gpt2"])
def test_peft_save_pretrained_round_trip(name, tmp_path):
    """peft saves MLP(P') (the folded prefixes) and reloads them in inference mode: same logits, padded."""
    from peft import PeftModel, get_peft_model

    model, tokenizer = tiny_classifier(name)
    ours = copy.deepcopy(model)
    method = apply_method(ours, NODES["mlp"], name)
    _randomise(ours, method, torch.Generator().manual_seed(9))
    config, state = method.to_peft(ours)
    twin = get_peft_model(copy.deepcopy(model), config)
    with torch.no_grad():
        params = dict(twin.named_parameters())
        for key, value in state.items():
            params[key].copy_(value)
    twin.save_pretrained(str(tmp_path))
    loaded = PeftModel.from_pretrained(copy.deepcopy(model), str(tmp_path)).eval()
    inputs = _inputs(tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, ours(**inputs).logits, atol=1e-5, rtol=0)
