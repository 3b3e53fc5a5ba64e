"""Backbones: the anatomy of every architecture, and each way of loading weights."""

import dataclasses

import pytest
import torch

from peftbench.config import model_config
from peftbench.errors import UserError
from peftbench.models.anatomy import ANATOMIES, Part, anatomy_of, locate
from peftbench.models.load import (
    architecture_config,
    check_weights,
    load_for_classification,
    load_tokenizer,
    weights_folder,
)
from tests.helpers import batch, tiny_classifier

TINY = ["tiny-bert", "tiny-roberta", "tiny-mpnet", "tiny-deberta-v2", "tiny-gpt2", "tiny-llama", "tiny-t5"]


def test_every_architecture_of_the_spine_has_an_anatomy():
    assert {"bert", "roberta", "mpnet", "deberta-v2", "gpt2", "llama", "t5"} <= set(ANATOMIES)


@pytest.mark.parametrize("name", TINY)
def test_every_role_resolves_to_a_module_of_the_right_kind(name):
    model, _ = tiny_classifier(name)
    anatomy = anatomy_of(model_config(name).architecture["model_type"])
    layers = model_config(name).architecture.get("num_hidden_layers") or model_config(name).architecture.get("n_layer") or model_config(name).architecture["num_layers"]
    for role in anatomy.roles():
        sites = locate(model, anatomy, role)
        assert sites, role
        for path, part in sites:
            module = model.get_submodule(path)
            if role.startswith("ln."):
                assert "norm" in type(module).__name__.lower(), (role, path)
            else:
                assert hasattr(module, "weight") and module.weight.ndim == 2, (role, path)
            if part is not None:
                assert isinstance(part, Part) and max(module.weight.shape) % part.count == 0
    # attention roles occur once per block: in every stack (T5: encoder and decoder)
    expected = layers * len(anatomy.stacks)
    assert len(locate(model, anatomy, "attn.q")) == expected


def test_anatomy_of_unknown_architecture_is_a_user_error():
    with pytest.raises(UserError, match="no anatomy for model_type 'nope'"):
        anatomy_of("nope")


def test_minilm_loads_from_its_package_with_real_weights():
    model_cfg = model_config("minilm-l6")
    folder = weights_folder(model_cfg)
    assert (folder / "model.safetensors").is_file()
    tokenizer = load_tokenizer(model_cfg)
    model = load_for_classification(model_cfg, 2, tokenizer)
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        expected = weights.get_tensor("encoder.layer.0.attention.self.query.weight")
    torch.testing.assert_close(model.bert.encoder.layer[0].attention.self.query.weight, expected, atol=0, rtol=0)
    assert model.config.num_hidden_layers == 6 and model.config.hidden_size == 384


def test_a_local_folder_wins_and_loads_its_weights(tmp_path):
    model, tokenizer = tiny_classifier("tiny-bert")
    model.save_pretrained(tmp_path, safe_serialization=True)
    tokenizer.save_pretrained(tmp_path)
    model_cfg = dataclasses.replace(model_config("minilm-l6"), path=str(tmp_path))
    check_weights(model_cfg)
    loaded = load_for_classification(model_cfg, 2, load_tokenizer(model_cfg)).eval()
    inputs = batch(tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, model(**inputs).logits, atol=0, rtol=0)


def test_a_folder_without_safetensors_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded: only safetensors are")
    model_cfg = dataclasses.replace(model_config("minilm-l6"), path=str(tmp_path))
    with pytest.raises(UserError, match="no \\*.safetensors"):
        check_weights(model_cfg)


def test_hub_models_plan_from_their_declared_architecture_without_network():
    config = architecture_config(model_config("roberta-large"))
    assert (config.model_type, config.hidden_size, config.num_hidden_layers) == ("roberta", 1024, 24)


def test_hub_load_failure_offline_names_the_hub_id_and_the_fix():
    model_cfg = model_config("roberta-base")
    with pytest.raises(UserError, match="FacebookAI/roberta-base.*model.path=DIR"):
        load_tokenizer(model_cfg)


@pytest.mark.parametrize(
    "name, published",
    [  # total sizes as the model cards / papers state them
        ("bert-base", 110e6), ("bert-large", 340e6), ("roberta-base", 125e6), ("roberta-large", 355e6),
        ("deberta-v2-xxlarge", 1.5e9), ("gpt2-medium", 355e6), ("gpt2-large", 774e6),
        ("t5-small", 60e6), ("t5-base", 220e6), ("mpnet-base", 110e6), ("gpt2", 124e6),
        ("xlm-roberta-base", 270e6), ("xlm-roberta-large", 550e6),  # Conneau et al. 2020, Table 7
        ("mbert", 179e6),  # the model card's count (Google's README says "110M", BERT-base's)
        ("t5-base-lm-adapt", 220e6),
    ],
)  # fmt: skip
def test_paper_backbones_build_from_their_declared_architecture(name, published):
    from peftbench.models.load import skeleton_for_classification

    model = skeleton_for_classification(model_config(name))
    total = sum(p.numel() for p in model.parameters())
    # 5%: the cards round down ("1.5B" for DeBERTa-v2-XXL, which counts 1,566,913,538 with its head)
    assert abs(total - published) / published < 0.05, f"{name}: {total:,}"


@pytest.mark.parametrize(
    "name, d_model, d_ff, layers",
    [("t0-3b", 2048, 5120, 24), ("t0-11b", 4096, 10240, 24), ("t5-xxl-lm-adapt", 4096, 10240, 24)],
)
def test_t5_v1_1_backbones_count_as_the_architecture_says(name, d_model, d_ff, layers):
    """T0 and the LM-adapted T5 1.1 are T5 1.1 (gated GELU: two input matrices; no biases): the
    count from their declared architecture is the count by hand. The released checkpoints also have
    an output layer of their own (32128 × d: 2.85B for XL, the "3B"; 11.14B for XXL, the "11B");
    transformers 5.23 ties it to the embedding for every T5 (T5Config sets tie_word_embeddings = True
    and reads the YAML's `false` as T5 1.1's unscaled decoder output), so it builds one fewer."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    from peftbench.models.load import architecture_config

    attention = 4 * d_model * d_model
    feed_forward = 3 * d_model * d_ff
    encoder = layers * (attention + feed_forward + 2 * d_model)
    decoder = layers * (2 * attention + feed_forward + 3 * d_model)
    vocabulary = 32128 * d_model
    heads = d_model // 64
    by_hand = encoder + decoder + vocabulary + 2 * 32 * heads + 2 * d_model
    config = architecture_config(model_config(name))
    with torch.device("meta"):
        model = AutoModelForSeq2SeqLM.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == by_hand and not config.scale_decoder_outputs
    assert by_hand + vocabulary == {"t0-3b": 2_849_757_184}.get(name, 11_135_332_352)


def test_gpt3_counts_only_and_a_run_refuses_it(tmp_path):
    """GPT-3 175B is declared for counting (its weights were never published): 96 layers of
    d = 12288 give 174.6B (Brown et al. 2020 print 175.0B); a run refuses it before anything loads."""
    from peftbench.models.load import check_weights, skeleton_for_classification

    config = model_config("gpt3-175b")
    total = sum(p.numel() for p in skeleton_for_classification(config).transformer.parameters())
    d = 12288
    assert total == 96 * (12 * d * d + 13 * d) + 50257 * d + 2048 * d + 2 * d == 174_604_259_328
    with pytest.raises(UserError, match="has no weights anywhere"):
        check_weights(config)
