"""method=peft: any HF peft method through peftbench (peftbench/methods/peft_backed.py).

Counts on the meta device equal the papers' and peft's published ones; the peft-backed run of a
method peftbench also has natively gives the native run's outputs for the same weights; bad
configs are one line before any model loads; merging keeps the outputs.
"""

from __future__ import annotations

import copy

import pytest
import torch

from peftbench.cli import main
from peftbench.errors import UserError
from tests.helpers import adamw_step, assert_merge_equals_unmerged_and_unmerge_restores, batch, tiny_classifier

TINY_RTE = ["task=rte", "data.source=embedded", "trainer.progress=false", "data.max_eval_samples=8"]


def _params(capsys, *overrides) -> str:
    main(["params", *overrides])
    return capsys.readouterr().out


def _count(*overrides) -> dict:
    from peftbench.counting import counts_from_config
    from peftbench.launch import compose

    return counts_from_config(compose(list(overrides)))


def test_dora_on_roberta_base_counts_lora_plus_one_magnitude_per_matrix(capsys):
    """LoRA r=8 on W_q, W_v of 12 layers (12·2·8·(768+768) = 294,912) plus a magnitude vector of 768
    per adapted matrix (12·2·768 = 18,432): 313,344."""
    out = _params(capsys, "model=roberta-base", "method=dora")
    assert "method's           313,344" in out


# HF peft's method_comparison on Llama-3.2-3B: each row of conf/table/peft_method_comparison.yaml
# carries peft's published trainable count (results/*.json, peft@5d602fdb, copied in
# ../shared/papers/peft_method_comparison.md) and, as its match, the experiment's adapter config; the
# run that `peftbench reproduce` makes of the row, counted on the meta device, must give that count.
PUBLISHED_TOTAL_WITHOUT_ADAPTER = 3_212_749_824
FAST_ROWS = [
    "lora--llama-3.2-3B-rank32", "lora--llama-3.2-3B-rank32-dora", "vera--llama-3.2-3B-default",
    "lora--llama-3.2-3B-rank64-rslora", "adalora--llama-3.2-3B-rank32", "ia3--llama-3.2-3B-default",
    "ia3--llama-3.2-3B-all-attn-5k-lr0.005", "ln_tuning--llama-3.2-3B-default", "loha--llama-3.2-3B-rank32",
    "lokr--llama-3.2-3B-rank32-factor4-lr0.003", "oft--llama-3.2-3B-rank32", "randlora--llama-3.2-3B-default",
    "vblora--llama-3.2-3B-default", "prompt_tuning--llama-3.2-3B-default", "prefixtuning--llama-3.2-3B-lr_0.001",
    "ptuning--llama-3.2-3B-default", "full-finetuning--llama-3.2-3B-lr_0.00001",
]  # fmt: skip
# rows no count on the meta device can give: peft refuses them there (their init reads the weights)
# or method=peft cannot run them at all; each must be one line, not a traceback
NOT_COUNTED = {
    "adamss--llama-3.2-3B-rank32", "adaptionprompt--llama-3.2-3B-lr_0.0005", "frod--llama-3.2-3B-default",
    "frod--llama-3.2-3B-sparse0.02-lr_0.001", "lora--llama-3.2-3B-rank32-mica", "shira--llama-3.2-3B-lr_0.0003-random_seed_42",
}  # fmt: skip


def _comparison_rows():
    from peftbench.config import CONF_DIR
    from peftbench.results.spec import load_spec

    return {row.label: row for row in load_spec("peft_method_comparison", CONF_DIR).rows}


def _row_counts(label: str) -> tuple[dict, int]:
    from peftbench.reproduce import _row_overrides

    row = _comparison_rows()[label]
    overrides = _row_overrides(row, "metamathqa")
    return _count(*overrides, "model=llama-3.2-3b", "task=rte", "task.format=classification"), int(row.paper_params.replace(",", ""))


def _slow_rows():
    return [label for label in _comparison_rows() if label not in FAST_ROWS and label not in NOT_COUNTED]


@pytest.mark.parametrize("label", FAST_ROWS)
def test_llama_3_2_3b_counts_equal_peft_published_ones(label):
    counts, published = _row_counts(label)
    assert counts["backbone"] == PUBLISHED_TOTAL_WITHOUT_ADAPTER
    assert counts["trainable_method"] == published


@pytest.mark.slow
@pytest.mark.parametrize("label", _slow_rows())
def test_every_other_countable_row_of_pefts_table_counts_as_published(label):
    counts, published = _row_counts(label)
    assert counts["trainable_method"] == published


@pytest.mark.slow
@pytest.mark.parametrize("label", sorted(NOT_COUNTED))
def test_rows_that_cannot_be_counted_on_the_meta_device_are_one_line(label):
    with pytest.raises(UserError, match="meta device|cannot run through method=peft"):
        _row_counts(label)


def test_llama_3_2_3b_lora_counts_the_same_natively_and_through_peft():
    native = _count("model=llama-3.2-3b", "method=lora", "method.r=32", "method.alpha=64", "task=rte")
    assert native["trainable_method"] == 9_175_040


# -- the native methods and their peft-backed twins: same weights in, same outputs out -----------------


def _peft_twin_pairs():
    """(native node, peft node, peft name of a native parameter name)."""
    lora = ({"name": "lora"}, {"name": "peft", "config": {"r": 8, "lora_alpha": 16}})
    ia3 = ({"name": "ia3", "targets": ["attn.k", "attn.v"], "feedforward": ["ffn.out"]},
           {"name": "peft", "peft_type": "IA3", "targets": ["attn.k", "attn.v"], "feedforward": ["ffn.out"]})  # fmt: skip
    prompt = ({"name": "prompt", "length": 5, "init": "random_uniform"},
              {"name": "peft", "peft_type": "PROMPT_TUNING", "config": {"num_virtual_tokens": 5}})  # fmt: skip
    ptuning = ({"name": "ptuning", "length": 5, "encoder": "mlp", "template": False},
               {"name": "peft", "peft_type": "P_TUNING", "config": {"num_virtual_tokens": 5,
                "encoder_reparameterization_type": "MLP", "encoder_hidden_size": 32}})  # fmt: skip
    prefix = ({"name": "prefix", "length": 4, "hidden_size": 16},
              {"name": "peft", "peft_type": "PREFIX_TUNING", "config": {"num_virtual_tokens": 4,
               "prefix_projection": True, "encoder_hidden_size": 16}})  # fmt: skip
    return {"lora": lora, "ia3": ia3, "prompt": prompt, "ptuning": ptuning, "prefix": prefix}


def _peft_name(native_name: str) -> str:
    """Where peft's module keeps a native method's parameter (tuners: the same path)."""
    for marker in (".soft_prompt.", ".prefix.sets.self_attn."):
        if marker in native_name:
            return native_name.replace(marker, f"{marker}encoder.")
    return native_name.replace(".ia3_l", ".ia3_l.default").replace(".lora_A", ".lora_A.default.weight").replace(
        ".lora_B", ".lora_B.default.weight"
    )


def _adapted(model_name: str, node: dict, format_name="classification"):
    from peftbench.config import model_config
    from peftbench.methods.base import attach
    from peftbench.models.anatomy import anatomy_of
    from peftbench.plan import method_from_config

    model, tokenizer = tiny_classifier(model_name)
    from peftbench.tasks import get_task

    method = method_from_config(node)
    method.check_format(get_task("rte"), format_name)
    attach(method, model, anatomy_of(model_config(model_name).architecture["model_type"]), tokenizer)
    return model.eval(), method, tokenizer


@pytest.mark.parametrize("model_name", ["tiny-bert", "tiny-llama"])
@pytest.mark.parametrize("kind", ["lora", "ia3", "prompt", "ptuning", "prefix"])
def test_peft_backed_gives_the_native_outputs_for_the_same_weights(model_name, kind, one_thread):
    native_node, peft_node = _peft_twin_pairs()[kind]
    ours, native, tokenizer = _adapted(model_name, native_node)
    theirs, twin, _ = _adapted(model_name, peft_node)
    plain, _ = tiny_classifier(model_name)
    assert set(map(_peft_name, native.parameter_names(ours))) == set(twin.parameter_names(theirs))
    generator = torch.Generator().manual_seed(1)
    their_params = dict(theirs.named_parameters())
    with torch.no_grad():
        for name, param in ours.named_parameters():
            if param.requires_grad:
                value = torch.randn(param.shape, generator=generator) * 0.5 + (1.0 if kind == "ia3" else 0.0)
                param.copy_(value)
                target = their_params[_peft_name(name)]
                target.copy_(value.reshape(target.shape))
        inputs = batch(tokenizer)
        got, expected, untouched = ours(**inputs).logits, theirs(**inputs).logits, plain.eval()(**inputs).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(got, untouched, atol=1e-4)


# -- merging -------------------------------------------------------------------------------------------

MERGEABLE = ["dora", "rslora", "vera", "loha", "lokr", "oft", "boft", "hra", "randlora", "ln_tuning",
             {"name": "peft", "peft_type": "IA3", "targets": ["attn.k", "attn.v", "ffn.out"], "feedforward": ["ffn.out"]}]  # fmt: skip


@pytest.mark.parametrize("preset", MERGEABLE, ids=lambda p: p if isinstance(p, str) else "ia3")
def test_merging_a_trained_peft_method_keeps_the_outputs(preset, one_thread):
    from peftbench.config import method_preset

    node = method_preset(preset) if isinstance(preset, str) else preset
    model, method, tokenizer = _adapted("tiny-bert", node)
    adamw_step(model, tokenizer, lr=0.05)  # off the identity initialisation
    assert_merge_equals_unmerged_and_unmerge_restores(model, method, tokenizer, frozen_rtol=1e-5)


def test_prompt_learning_does_not_merge():
    model, method, _ = _adapted("tiny-bert", {"name": "peft", "peft_type": "PROMPT_TUNING",
                                             "config": {"num_virtual_tokens": 3}})  # fmt: skip
    with pytest.raises(UserError, match="cannot be merged"):
        method.merge(model)


# -- bad input: one line, before any model loads -------------------------------------------------------

REFUSALS = [
    (["method=peft", "method.peft_type=LORAX"], "method.peft_type 'LORAX' is not a peft type"),
    (["method=peft", "++method.config.rank=4"], "method.config has fields ['rank'] that peft's LoraConfig lacks"),
    (["method=peft", "+method.config.target_modules=[query]"], "method.config.target_modules: give roles in method.targets"),
    (["method=peft", "method.targets=[xattn.q]"], "method.targets ['xattn.q'] do not exist in bert"),
    (["method=peft", "method.targets=[attn.z]"], "method.targets has unknown roles ['attn.z']"),
    (["method=peft", "method.peft_type=XLORA"], "cannot run through method=peft"),
    (["method=adalora", "method.config.orth_reg_weight=-1"], "peft's AdaLoraConfig refuses it"),
    (["method=adalora", "method.config.tinit=100", "trainer.max_steps=3"], "with the run's optimiser steps"),
    (["method=peft_prompt_tuning", "model=tiny-t5"], "not defined for encoder_decoder models"),
]


@pytest.mark.parametrize("overrides, message", REFUSALS, ids=[m for _, m in REFUSALS])
def test_bad_peft_configs_are_one_line_before_any_model_loads(overrides, message, tmp_path, capsys, monkeypatch):
    import peftbench.pipeline

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(peftbench.pipeline, "build_model", no_model)
    results = tmp_path / "results"
    with pytest.raises(SystemExit) as exit_:
        main(["run", "model=tiny-bert", *TINY_RTE, *overrides, f"results_dir={results}"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not results.exists()


def test_a_fused_role_adapts_the_whole_projection_with_a_warning():
    """GPT-2's q and v are slices of c_attn: peft adapts c_attn whole (once), and says so."""
    with pytest.warns(UserWarning, match="slices of fused projections"):
        model, method, _ = _adapted("tiny-gpt2", {"name": "peft", "peft_type": "LORA", "targets": ["attn.q", "attn.v"]})
    adapted = {name.rsplit(".lora_", 1)[0] for name in method.parameter_names(model)}
    assert adapted == {f"transformer.h.{i}.attn.c_attn" for i in range(len(model.transformer.h))}


def test_a_peft_model_copy_keeps_its_adapters(one_thread):
    model, method, tokenizer = _adapted("tiny-bert", {"name": "peft"})
    adamw_step(model, tokenizer, lr=0.05)
    twin = copy.deepcopy(model)
    inputs = batch(tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(twin(**inputs).logits, model(**inputs).logits)
