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


# --- A's initialisation: the released code's Kaiming-uniform by default, the paper's Gaussian as an option


def _lora_A(node):
    model, _ = tiny_classifier("tiny-bert")
    torch.manual_seed(0)
    apply_method(model, node, "tiny-bert")
    return model.bert.encoder.layer[0].attention.self.query.lora_A.detach()


def test_default_a_is_kaiming_uniform_as_loralib():
    """loralib's Linear.reset_parameters: kaiming_uniform_(a=√5), i.e. U(±1/√k) for k inputs."""
    A = _lora_A({k: v for k, v in LORA.items() if k != "init"})
    bound = 1 / A.shape[1] ** 0.5
    assert A.abs().max() <= bound and A.abs().max() > 0.9 * bound
    torch.manual_seed(0)
    expected = torch.empty_like(A)
    torch.nn.init.kaiming_uniform_(expected, a=5**0.5)
    torch.testing.assert_close(A, expected, rtol=0, atol=0)


def test_gaussian_a_is_normal_with_peft_sigma():
    """init=gaussian: the paper's Gaussian A, σ = 1/r as peft's init_lora_weights="gaussian" (a uniform
    A of this width could not exceed 1/√k = 0.18, which a Gaussian of σ = 0.125 does)."""
    A = _lora_A({**LORA, "init": "gaussian", "r": 8})
    assert abs(A.std().item() - 1 / 8) < 0.02 and abs(A.mean().item()) < 0.02
    assert A.abs().max() > 1 / A.shape[1] ** 0.5
    torch.manual_seed(0)
    torch.testing.assert_close(A, torch.randn_like(A) / 8, rtol=0, atol=0)


def test_unknown_init_is_one_line():
    from peftbench.errors import UserError

    with pytest.raises(UserError, match="method.init 'xavier' is unknown; choose one of kaiming, gaussian"):
        build_method({**LORA, "init": "xavier"})


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("overrides, expected", [((), "kaiming"), (("method.init=gaussian",), "gaussian")])
def test_record_says_which_init(tmp_path, overrides, expected):
    from peftbench.config import identity
    from peftbench.launch import compose
    from peftbench.plan import plan
    from peftbench.run import execute

    config = compose(["model=tiny-bert", "method=lora", *overrides, "task=rte", "data.source=embedded",
                      "trainer.max_steps=1", "data.max_eval_samples=4", "trainer.progress=false",
                      f"results_dir={tmp_path}"])  # fmt: skip
    planned = plan(config)
    record = execute(planned)
    assert record["status"] == "complete" and record["method_config"]["init"] == expected
    # the default leaves the run id as it was before the option existed (runs recorded then stay found)
    method = {k: v for k, v in planned.config["method"].items() if k != "init"}
    assert ("init" in identity(planned.config)["method"]) == (expected != "kaiming")
    assert identity({**planned.config, "method": method})["method"] == method
