"""`peftbench export`: a finished run loads with peft.PeftModel.from_pretrained and gives its outputs."""

import copy
import json

import pytest
import torch

from peftbench.cli import main
from peftbench.config import model_config
from peftbench.methods import build_method
from peftbench.methods.base import attach
from peftbench.models.anatomy import anatomy_of
from peftbench.pipeline import build_model
from peftbench.tasks import get_task
from peftbench.train.weights import load_weights
from tests.cli import peftbench
from tests.helpers import batch


def _finished_run(tmp_path, model_name, method=("method=lora",)):  # decoders rank GLUE by default: ask for a head
    """A finished run, planned and executed in this process (the command line's path is tested in
    test_cli.py; here the export is)."""
    from peftbench.launch import compose
    from peftbench.plan import plan
    from peftbench.run import execute

    results = tmp_path / "results"
    record = execute(plan(compose([
        f"model={model_name}", *method, "task=rte", "data.source=embedded", "trainer.max_steps=4",
        "trainer.lr=0.05", "trainer.batch_size=8", "data.max_eval_samples=16", "trainer.progress=false",
        "task.format=classification", f"results_dir={results}",
    ])))  # fmt: skip
    (run_dir,) = [p for p in results.iterdir() if not p.name.startswith(".")]
    assert record == json.loads((run_dir / "record.json").read_text())
    return run_dir, record


PROMPT = ("method=prompt", "method.length=4", "method.init=sampled_vocab", "method.vocab_top=0")  # no frequency order
PTUNING = ("method=ptuning", "method.length=4")
ONE_ROW = ("a tiny test sentence",)  # peft's decoder prompt learning pools the last position: no padding


@pytest.mark.parametrize(
    "model_name, method, texts",
    [
        pytest.param("tiny-roberta", ("method=lora",), None, id="lora-roberta"),
        pytest.param("tiny-gpt2", ("method=lora",), None, id="lora-gpt2"),  # q and v are slices of c_attn
        pytest.param("tiny-roberta", ("method=ia3",), None, id="ia3-roberta"),
        pytest.param("tiny-gpt2", ("method=ia3",), None, id="ia3-gpt2"),  # k, v slices of c_attn; q as ones
        pytest.param("tiny-roberta", PROMPT, None, id="prompt-roberta"),  # padded batch; positions from padding_idx + 1
        pytest.param("tiny-bert", (*PTUNING, "method.dropout=0.1"), None, id="ptuning-lstm-bert"),  # token_type_ids
        pytest.param("tiny-bert", (*PTUNING, "method.encoder=mlp"), None, id="ptuning-mlp-bert"),
        pytest.param("tiny-roberta", ("method=prefix",), None, id="prefix-roberta"),
        pytest.param("tiny-gpt2", ("method=prefix",), None, id="prefix-gpt2"),  # padded batch: peft passes input_ids
        pytest.param("tiny-gpt2", PROMPT, ONE_ROW, id="prompt-gpt2-one-row"),
        pytest.param("tiny-gpt2", (*PTUNING, "method.encoder=emb"), ONE_ROW, id="ptuning-emb-gpt2-one-row"),
    ],
)
def test_export_round_trip_through_peft(tmp_path, capsys, model_name, method, texts):
    from peft import PeftModel

    run_dir, record = _finished_run(tmp_path, model_name, method)
    out = tmp_path / "adapter"
    main(["export", str(run_dir), "--format", "peft", "--out", str(out)])
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    provenance = json.loads((out / "peftbench_export.json").read_text())
    assert provenance["run_id"] == record["run_id"]
    soft_prompt = record["method"] in {"prompt", "ptuning"}  # decoders: peft pools a pad under right padding
    assert ("limitation" in provenance) == soft_prompt

    model_cfg, task = model_config(model_name), get_task("rte")
    base, tokenizer, _ = build_model(model_cfg, task, record["seed"], "classification", record["config"]["task"])
    ours = copy.deepcopy(base)
    attach(build_method(record["method_config"]), ours, anatomy_of(model_cfg.architecture["model_type"]))
    load_weights(ours, run_dir / "method.safetensors")
    theirs = PeftModel.from_pretrained(copy.deepcopy(base), str(out)).eval()
    inputs = batch(tokenizer, texts) if texts else batch(tokenizer)
    with torch.no_grad():
        expected = ours.eval()(**inputs).logits
        got = theirs(**inputs).logits
        plain = base.eval()(**inputs).logits
    assert not torch.allclose(expected, plain, atol=1e-4), "the trained run must differ from the base"
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_export_refuses_methods_peft_lacks_and_existing_folders(tmp_path, capsys):
    results = tmp_path / "results"
    done = peftbench("run", "model=tiny-bert", "method=bitfit", "task=rte", "data.source=embedded",
                     "trainer.max_steps=1", "trainer.progress=false", f"results_dir={results}", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run_dir,) = [p for p in results.iterdir() if not p.name.startswith(".")]
    for args, message in [
        ([str(run_dir), "--out", str(tmp_path / "new")], "no HF peft equivalent"),
        ([str(tmp_path), "--out", str(tmp_path / "new")], "not a run folder"),
        ([str(run_dir), "--out", str(results)], "not empty"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["export", *args])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


def test_to_peft_fused_ia3_vector_and_encoder_decoder_prompt_refusal():
    from peftbench.errors import UserError
    from tests.helpers import apply_method, tiny_classifier

    model, _ = tiny_classifier("tiny-gpt2")
    method = apply_method(model, {"name": "ia3"}, "tiny-gpt2")
    for layer in method.layers(model):
        torch.nn.init.uniform_(layer.ia3_l, 0.5, 1.5)
    config, state = method.to_peft(model)
    assert config.fan_in_fan_out and set(config.feedforward_modules) < set(config.target_modules)
    fused = [value for name, value in state.items() if name.endswith("c_attn.ia3_l.default")]
    assert fused and all(v.numel() == 3 * model.config.n_embd for v in fused)
    width = model.config.n_embd
    for vector in fused:  # q is not scaled by the run: ones; k, v carry the trained values
        assert torch.equal(vector[:width], torch.ones(width)) and not torch.equal(vector[width:], torch.ones(2 * width))

    t5, _ = tiny_classifier("tiny-t5")
    prompt = apply_method(t5, {"name": "prompt", "length": 2, "init": "random_uniform"}, "tiny-t5")
    with pytest.raises(UserError, match="T5ForSequenceClassification"):
        prompt.to_peft(t5)
