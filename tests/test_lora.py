"""LoRA against HF peft 0.21 (same count, same outputs) and against the LoRA paper's counts."""

import copy

import pytest
import torch

from peftbench.config import model_config
from peftbench.methods import build_method
from peftbench.models.anatomy import anatomy_of, head_parameter_names
from peftbench.models.load import skeleton_for_classification
from tests.helpers import (
    apply_method,
    assert_merge_equals_unmerged_and_unmerge_restores,
    assert_same_logits_as_peft,
    batch,
    copy_into_peft,
    tiny_classifier,
)

LORA = {"name": "lora", "r": 8, "alpha": 16, "dropout": 0.0, "targets": ["attn.q", "attn.v"]}


def _peft_twin(model):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query", "value"])
    return get_peft_model(copy.deepcopy(model), config)


def _trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_same_trainable_count_and_logits_as_peft():
    model, tokenizer = tiny_classifier("tiny-roberta")
    theirs = _peft_twin(model).eval()
    ours = copy.deepcopy(model)
    apply_method(ours, LORA, "tiny-roberta")
    assert _trainable(ours) == _trainable(theirs)

    copy_into_peft(
        ours,
        theirs,
        select=lambda name: name.endswith((".lora_A", ".lora_B")),
        peft_name=lambda name: "base_model.model."
        + name.replace(".lora_A", ".lora_A.default.weight").replace(".lora_B", ".lora_B.default.weight"),
        draw=lambda shape, generator: torch.randn(shape, generator=generator) * 0.5,
    )
    assert_same_logits_as_peft(
        ours,
        theirs,
        model,
        tokenizer,
        differs=lambda got, plain: not torch.allclose(got, plain, atol=1e-3),
        message="the LoRA update must change the outputs",
    )


@pytest.mark.parametrize("name", ["tiny-roberta", "tiny-bert", "tiny-gpt2", "tiny-llama", "tiny-t5", "tiny-mpnet", "tiny-deberta-v2"])
def test_merge_equals_unmerged_and_unmerge_restores(name):
    model, tokenizer = tiny_classifier(name)
    targets = ["attn.q", "attn.k", "attn.v", "attn.o", "ffn.out"]
    method = apply_method(model, {**LORA, "targets": targets}, name)
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if param_name.endswith(".lora_B"):
                param.normal_(0, 0.3)
    assert_merge_equals_unmerged_and_unmerge_restores(model, method, tokenizer, frozen_rtol=0)


def test_fused_gpt2_projection_adapts_only_its_slices():
    """On GPT-2's fused c_attn = [q; k; v], LoRA on q and v leaves the k slice untouched."""
    model, _ = tiny_classifier("tiny-gpt2")
    apply_method(model, LORA, "tiny-gpt2")
    layer = model.transformer.h[0].attn.c_attn
    with torch.no_grad():
        layer.lora_B.normal_()
        delta = layer.delta_weight()
    d = model.config.n_embd
    assert delta[d : 2 * d].abs().sum() == 0
    assert delta[:d].abs().sum() > 0 and delta[2 * d :].abs().sum() > 0
    # one LoRA per role: 2 roles x (r x d + d x r) per layer
    assert layer.lora_A.numel() + layer.lora_B.numel() == 2 * 2 * 8 * d


@pytest.mark.parametrize(
    "name, expected",
    [("roberta-base", 294_912), ("roberta-large", 786_432)],  # LoRA paper Table 2: 0.3M and 0.8M
)
def test_paper_parameter_counts_from_config_alone(name, expected):
    model_cfg = model_config(name)
    model = skeleton_for_classification(model_cfg)
    method = build_method(LORA)
    model.requires_grad_(False)
    method.apply(model, anatomy_of(model_cfg.architecture["model_type"]))
    own = sum(p.numel() for n, p in model.named_parameters() if n in set(method.parameter_names(model)))
    assert own == expected
    head = head_parameter_names(model)
    assert all(n.startswith("classifier.") for n in head) and head


def test_initial_update_is_zero():
    """B = 0 at initialisation (paper §4.1): the adapted model starts as the pretrained one."""
    model, tokenizer = tiny_classifier("tiny-bert")
    reference = copy.deepcopy(model)
    apply_method(model, LORA, "tiny-bert")
    inputs = batch(tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, reference(**inputs).logits, atol=1e-6, rtol=0)
