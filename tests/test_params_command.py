"""`peftbench params`: counts from configs alone, checked against the papers' parameter columns."""

import json

import pytest

from peftbench.cli import main


def _params(capsys, *overrides) -> dict:
    main(["params", *overrides, "--json"])
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    "overrides, method_count",
    [
        (["model=roberta-base", "method=lora"], 294_912),  # LoRA Table 2: 0.3M
        (["model=roberta-large", "method=lora"], 786_432),  # LoRA Table 2: 0.8M
        # LoRA Table 3, FT-Top2 on GPT-2 medium: 25.19M = 2 blocks x (12 d^2 + 13 d), d = 1024
        (["model=gpt2-medium", "method=top_k", "method.k=2"], 2 * (12 * 1024**2 + 13 * 1024)),
    ],
)
def test_papers_parameter_columns(capsys, overrides, method_count):
    counts = _params(capsys, *overrides)
    assert counts["trainable_method"] == method_count
    assert counts["trainable"] == method_count + counts["head"]
    assert counts["total"] == counts["backbone"] + counts["head"] + (method_count if "lora" in str(overrides) else 0)


def test_head_follows_the_task(capsys):
    two = _params(capsys, "model=roberta-base", "method=head", "task=rte")
    three = _params(capsys, "model=roberta-base", "method=head", "task=mnli")
    assert three["head"] - two["head"] == 768 + 1  # one more output row of out_proj: 768 weights + 1 bias
    assert two["trainable_method"] == 0


def test_text_output_and_refusals(capsys):
    main(["params", "model=roberta-base", "method=lora"])
    out = capsys.readouterr().out
    assert "294,912" in out and "roberta-base" in out
    for bad in (["method=lora", "method.r=0"], ["model=t5-base", "method=top_k"], ["method=lora", "method.r=1,2"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["params", *bad])
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.startswith("error: ")
