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
from peftbench.run import build_model
from peftbench.tasks import get_task
from peftbench.train.weights import load_weights
from tests.cli import peftbench
from tests.helpers import batch


def _finished_run(tmp_path, model_name):
    results = tmp_path / "results"
    done = peftbench(
        "run", f"model={model_name}", "method=lora", "task=rte", "data.source=embedded", "trainer.max_steps=4",
        "trainer.lr=0.05", "trainer.progress=false", f"results_dir={results}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run_dir,) = [p for p in results.iterdir() if not p.name.startswith(".")]
    return run_dir, json.loads((run_dir / "record.json").read_text())


@pytest.mark.parametrize("model_name", ["tiny-roberta", "tiny-gpt2"])  # gpt2: q and v are slices of c_attn
def test_export_round_trip_through_peft(tmp_path, capsys, model_name):
    from peft import PeftModel

    run_dir, record = _finished_run(tmp_path, model_name)
    out = tmp_path / "adapter"
    main(["export", str(run_dir), "--format", "peft", "--out", str(out)])
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert json.loads((out / "peftbench_export.json").read_text())["run_id"] == record["run_id"]

    model_cfg, task = model_config(model_name), get_task("rte")
    base, tokenizer = build_model(model_cfg, task, record["seed"])
    ours = copy.deepcopy(base)
    attach(build_method(record["method_config"]), ours, anatomy_of(model_cfg.architecture["model_type"]))
    load_weights(ours, run_dir / "method.safetensors")
    theirs = PeftModel.from_pretrained(copy.deepcopy(base), str(out)).eval()
    inputs = batch(tokenizer)
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
