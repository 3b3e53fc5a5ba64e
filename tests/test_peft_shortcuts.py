"""Every method=peft shortcut (conf/method/<name>.yaml, name: peft) trains tiny-bert and tiny-llama on
RTE end to end with the run's trainer, and the run's ``peft/`` folder loads with peft's
``PeftModel.from_pretrained`` to the run's outputs (head included), also through ``peftbench export``.

tiny-bert reads RTE with a classification head, tiny-llama ranks its label words with its own LM
head (rank classification, CAUSAL_LM). Widths the tiny models cannot hold are overridden: VB-LoRA's
vectors must divide the adapted widths (32 and 16), FourierFT's frequencies fit a 16×32 matrix.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

SHORTCUTS = ["dora", "rslora", "pissa", "olora", "adalora", "vera", "loha", "lokr", "oft", "boft", "fourierft",
             "ln_tuning", "vblora", "hra", "randlora", "peft_prompt_tuning", "peft_prefix_tuning"]  # fmt: skip
TINY_WIDTHS = {"vblora": ["method.config.vector_length=16"], "fourierft": ["method.config.n_frequency=64"]}


def _run(tmp_path, model_name: str, shortcut: str, *extra: str):
    from peftbench.launch import compose
    from peftbench.plan import plan
    from peftbench.run import execute

    results = tmp_path / "results"
    record = execute(plan(compose([
        f"model={model_name}", f"method={shortcut}", *TINY_WIDTHS.get(shortcut, []), *extra, "task=rte",
        "data.source=embedded", "data.max_train_samples=12", "data.max_eval_samples=8", "trainer.max_steps=3",
        "trainer.batch_size=4", "trainer.lr=0.01", "trainer.progress=false", f"results_dir={results}",
    ])))  # fmt: skip
    return results / record["run_id"], record


def _ours_and_peft(run_dir, record):
    """The run's model rebuilt with its saved weights, and peft's model loaded from RUN/peft."""
    from peft import PeftModel

    from peftbench.config import model_config
    from peftbench.methods.base import attach
    from peftbench.models.anatomy import anatomy_of
    from peftbench.pipeline import build_model
    from peftbench.plan import method_from_config
    from peftbench.tasks import get_task
    from peftbench.train.weights import load_weights

    model_cfg, task = model_config(record["model"]), get_task("rte")
    base, tokenizer, fmt = build_model(model_cfg, task, record["seed"], record["format"], record["config"]["task"])
    ours = copy.deepcopy(base)
    method = method_from_config(record["method_config"])
    method.check_format(task, record["format"])
    attach(method, ours, anatomy_of(model_cfg.architecture["model_type"]), tokenizer, train_head=fmt.trains_head)
    load_weights(ours, run_dir / "method.safetensors")
    return ours.eval(), PeftModel.from_pretrained(copy.deepcopy(base), str(run_dir / "peft")).eval(), base.eval(), tokenizer


@pytest.mark.parametrize("shortcut", SHORTCUTS)
@pytest.mark.parametrize("model_name", ["tiny-bert", "tiny-llama"])
def test_shortcut_trains_on_rte_and_round_trips_through_peft(tmp_path, model_name, shortcut, one_thread):
    run_dir, record = _run(tmp_path, model_name, shortcut)
    assert record["status"] == "complete" and record["method"] == "peft"
    assert record["params"]["trainable_method"] > 0
    saved = json.loads((run_dir / "peft" / "adapter_config.json").read_text())
    assert saved["peft_type"] == record["method_config"]["peft_type"]
    assert bool(saved.get("modules_to_save")) == (model_name == "tiny-bert")  # the classifier head

    ours, theirs, plain, tokenizer = _ours_and_peft(run_dir, record)
    inputs = tokenizer(["a tiny test sentence", "another, somewhat longer test sentence here"], padding=True,
                       return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        got, expected, untouched = ours(**inputs).logits, theirs(**inputs).logits, plain(**inputs).logits
    torch.testing.assert_close(expected, got, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got[..., -untouched.shape[-2] :, :] if got.dim() == 3 else got, untouched, atol=1e-6)


def test_adalora_reallocates_its_ranks_after_every_step_to_the_target_budget(tmp_path, one_thread):
    """With tinit = tfinal = 0 over 3 steps the budget phase runs at steps 1-2 and the last step fixes
    the final ranks: target_r on average over the adapted matrices (peft's RankAllocator reads the
    gradients, so the trainer's hook must come before they are cleared)."""
    run_dir, record = _run(tmp_path, "tiny-bert", "adalora", "method.targets=[attn.q,attn.v]")
    saved = json.loads((run_dir / "peft" / "adapter_config.json").read_text())
    ranks = {name: sum(keep) for name, keep in saved["rank_pattern"].items()}
    assert len(ranks) == 2 * 2  # q and v of two layers
    assert sum(ranks.values()) == saved["target_r"] * len(ranks) < saved["init_r"] * len(ranks)


def test_export_copies_the_runs_peft_folder(tmp_path):
    from peftbench.cli import main

    run_dir, record = _run(tmp_path, "tiny-bert", "dora")
    out = tmp_path / "exported"
    main(["export", str(run_dir), "--format", "peft", "--out", str(out)])
    assert (out / "adapter_model.safetensors").read_bytes() == (run_dir / "peft" / "adapter_model.safetensors").read_bytes()
    assert json.loads((out / "peftbench_export.json").read_text())["run_id"] == record["run_id"]
