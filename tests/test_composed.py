"""method=[a,b]: two methods on one backbone, each tensor counted once, through the command line."""

import json

import pytest

from peftbench.cli import main
from tests.cli import peftbench
from tests.helpers import apply_method, assert_save_load_round_trip, assert_step_touches_only, method_and_head, tiny_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


def _params(capsys, *overrides) -> dict:
    main(["params", *overrides, "--json"])
    return json.loads(capsys.readouterr().out)


def test_lora_with_bitfit_on_roberta_base_is_the_sum_of_the_papers_columns(capsys):
    both = _params(capsys, "model=roberta-base", "method=[lora,bitfit]")
    lora = _params(capsys, "model=roberta-base", "method=lora")
    bitfit = _params(capsys, "model=roberta-base", "method=bitfit")
    assert lora["trainable_method"] == 294_912  # LoRA Table 2: 0.3M
    assert round(bitfit["trainable_method"] / 1e6, 1) == 0.1  # LoRA Table 2: BitFit 0.1M
    assert both["trainable_method"] == lora["trainable_method"] + bitfit["trainable_method"]  # no tensor in both
    smaller = _params(capsys, "model=roberta-base", "method=[lora,bitfit]", "+method.settings.lora.r=4")
    assert smaller["trainable_method"] == 294_912 // 2 + bitfit["trainable_method"]


@pytest.mark.parametrize("order", [["lora", "bitfit_qm2"], ["bitfit_qm2", "lora"]])
def test_a_part_whose_preset_builds_on_another_and_a_wrapped_projection(capsys, order):
    """bitfit_qm2's YAML is bitfit's with two roles (its defaults list); after LoRA wraps W_q, its b_q
    is the wrapped layer's bias. Either order gives the two methods' columns summed."""
    both = _params(capsys, "model=roberta-base", f"method=[{','.join(order)}]")
    qm2 = _params(capsys, "model=roberta-base", "method=bitfit_qm2")
    assert qm2["trainable_method"] == 12 * (768 + 3072)  # b_q and b_m2 in each of 12 layers
    assert both["trainable_method"] == 294_912 + qm2["trainable_method"]


@pytest.mark.parametrize("model_name", ["tiny-bert", "tiny-t5"])
def test_shared_tensors_are_counted_once_and_only_the_union_trains(model_name, tmp_path):
    node = {"name": "composed", "methods": ["houlsby", "bitfit"] if model_name == "tiny-bert" else ["lora", "ia3"],
            "settings": {"houlsby": {"bottleneck": 8}} if model_name == "tiny-bert" else {}}  # fmt: skip
    model, tokenizer = tiny_classifier(model_name)
    method = apply_method(model, node, model_name)
    own, head = method_and_head(model, method)
    assert len(own) == len(set(method.parameter_names(model)))
    parts = []
    for part in node["methods"]:
        alone, _ = tiny_classifier(model_name)
        single = apply_method(alone, {"name": part, **node["settings"].get(part, {})}, model_name)
        parts.append(sum(p.numel() for n, p in alone.named_parameters() if n in set(single.parameter_names(alone))))
    sizes = {n: p.numel() for n, p in model.named_parameters()}
    combined = sum(sizes[n] for n in own)
    if model_name == "tiny-bert":  # Houlsby's adapter and layer-norm biases are BitFit's too: once
        assert max(parts) < combined < sum(parts)
    else:  # LoRA on q, v and IA3 on k, v, FFN share no tensor
        assert combined == sum(parts)
    assert_step_touches_only(model, own | head, tokenizer, label="the combination")

    def rebuilt():
        twin, _ = tiny_classifier(model_name)
        apply_method(twin, node, model_name)
        return twin

    assert_save_load_round_trip(model, tokenizer, rebuilt, tmp_path, method)


def test_a_combined_run_through_the_command_line(tmp_path, capsys):
    results = tmp_path / "results"
    done = peftbench("run", "model=tiny-bert", "method=[lora,bitfit]", "task=rte", "data.source=embedded",
                     "trainer.max_steps=2", "trainer.progress=false", f"results_dir={results}", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run_dir,) = [p for p in results.iterdir() if not p.name.startswith(".")]
    assert run_dir.name.startswith("rte.tiny-bert.lora+bitfit.s0.")
    record = json.loads((run_dir / "record.json").read_text())
    assert record["method"] == "lora+bitfit" and record["method_config"]["methods"] == ["lora", "bitfit"]
    alone = [_params(capsys, "model=tiny-bert", f"method={m}", "task=rte")["trainable_method"] for m in ("lora", "bitfit")]
    assert record["params"]["trainable_method"] == sum(alone) == 2048 + 640  # LoRA r=8 on q, v; every bias


@pytest.mark.parametrize(
    "method, message",
    [
        ("method=[lora,lora]", "names a method twice"),
        ("method=[lora,full]", "method full does not combine"),
        ("method=[lora,nosuch]", "unknown method 'nosuch'"),
        ("method=[lora]", "needs two methods or more"),
    ],
)
def test_combinations_that_make_no_sense_are_refused(tmp_path, method, message):
    done = peftbench("run", "model=tiny-bert", method, "task=rte", f"results_dir={tmp_path / 'r'}", cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "r").exists()
