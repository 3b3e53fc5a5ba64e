"""MAD-X: the invertible adapter (NICE coupling) and ``method=madx``, a task adapter stacked on a
finished language run, through the command line; its refusals. Parity of both with AdapterHub's
outputs is in tests/test_adapterhub_parity.py (``seq_bn_inv-*``, ``stack_seq_bn_inv-bert``)."""

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from peftbench.errors import UserError
from peftbench.launch import compose
from peftbench.methods.invertible import INVERTIBLE, NICECoupling
from peftbench.plan import plan
from peftbench.run import execute
from tests.cli import peftbench
from tests.helpers import copied_runs

COMMON = ("model=tiny-bert", "data.source=embedded", "trainer.max_steps=4", "trainer.progress=false", "trainer.lr=0.05",
          "data.max_eval_samples=8")  # fmt: skip

pytestmark = pytest.mark.usefixtures("one_thread")


# --- the coupling ----------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [32, 7])
def test_nice_coupling_is_inverted_exactly(width):
    """A_inv⁻¹(A_inv(e)) = e and A_inv(A_inv⁻¹(o)) = o (MAD-X's invertible adapter), an odd width
    split ⌊h/2⌋ + ⌈h/2⌉ too, while A_inv itself is far from the identity."""
    torch.manual_seed(0)
    coupling = NICECoupling(width, torch.nn.ReLU, torch.empty(0, dtype=torch.float64))  # exact up to float64 rounding
    with torch.no_grad():
        for param in coupling.parameters():  # N(0, 0.02) at init: make the map visibly non-trivial
            param.normal_(std=0.5)
        e = torch.randn(2, 5, width, dtype=torch.float64)
        assert (coupling(e) - e).abs().max() > 0.1
        torch.testing.assert_close(coupling.inverse(coupling(e)), e, atol=1e-12, rtol=0)
        torch.testing.assert_close(coupling(coupling.inverse(e)), e, atol=1e-12, rtol=0)


@pytest.mark.parametrize("model_name", ["tiny-bert", "tiny-gpt2", "tiny-t5"])
def test_the_first_block_reads_a_inv_and_the_output_embeddings_read_its_inverse(model_name):
    """On a model with its LM head (masked, causal, seq2seq): the first block reads A_inv(e) where it
    read the embeddings e, and the output embeddings project A_inv⁻¹(h) where they projected h."""
    from peftbench.config import model_config
    from peftbench.methods import build_method
    from peftbench.methods.base import attach
    from peftbench.models.anatomy import anatomy_of, blocks
    from peftbench.models.load import load_language_model, load_tokenizer, model_type

    model_cfg = model_config(model_name)
    tokenizer = load_tokenizer(model_cfg)
    torch.manual_seed(0)
    model = load_language_model(model_cfg, tokenizer).eval()
    anatomy = anatomy_of(model_type(model_cfg))
    first, head = model.get_submodule(blocks(model, anatomy)[0]), model.get_output_embeddings()
    seen = {}

    def capture(key):
        def hook(module, args, kwargs):
            seen[key] = (args[0] if args else kwargs["hidden_states"]).detach().clone()

        return hook

    first.register_forward_pre_hook(capture("embeddings"), with_kwargs=True)
    head.register_forward_pre_hook(capture("last"), with_kwargs=True)
    attach(build_method({"name": "pfeiffer", "reduction_factor": 8, "invertible": "nice"}), model, anatomy, train_head=False)
    first.register_forward_pre_hook(capture("block reads"), with_kwargs=True)
    coupling = getattr(model.base_model, INVERTIBLE)
    with torch.no_grad():
        for param in coupling.parameters():
            param.normal_(std=0.3)
        inputs = tokenizer(["a tiny test sentence", "another one"], padding=True, return_tensors="pt")
        if model_cfg.family == "encoder_decoder":
            inputs["decoder_input_ids"] = inputs["input_ids"][:, :3]
        logits = model(**inputs).logits
        torch.testing.assert_close(seen["block reads"], coupling(seen["embeddings"]), atol=1e-6, rtol=0)
        assert (seen["block reads"] - seen["embeddings"]).abs().max() > 1e-2
        # the projection by hand: head(…) would run its hooks (the inverse) again
        projected = torch.nn.functional.linear(coupling.inverse(seen["last"]), head.weight, head.bias)
        torch.testing.assert_close(logits, projected, atol=1e-5, rtol=0)


# --- language run, then MAD-X on it --------------------------------------------------------------


@pytest.fixture(scope="module")
def two_stages(tmp_path_factory):
    """A language run (Pfeiffer adapter with its invertible adapter, on RTE standing in for MAD-X's
    masked LM on raw text), then MAD-X on MRPC stacking a task adapter on it: two commands."""
    root = tmp_path_factory.mktemp("madx")
    results = root / "results"
    language = execute(plan(compose([*COMMON, "method=pfeiffer", "method.invertible=nice", "task=rte",
                                     f"results_dir={results}"])))  # fmt: skip
    task = execute(plan(compose([*COMMON, "method=madx", f"method.language_run={language['run_id']}", "task=mrpc",
                                 f"results_dir={results}"])))  # fmt: skip
    return root, results, results / language["run_id"], results / task["run_id"]


def test_madx_trains_the_task_adapter_on_the_frozen_language_adapter(two_stages):
    _, _, language_dir, task_dir = two_stages
    language_record = json.loads((language_dir / "record.json").read_text())
    record = json.loads((task_dir / "record.json").read_text())
    assert record["status"] == "complete"
    assert record["language_run"] == {"run_id": language_dir.name, "task": "rte"}
    d, m, blocks = 32, 32 // 16, 2  # tiny-bert; the task adapter's m = d / 16, one per block
    assert record["params"]["trainable_method"] == blocks * (2 * m * d + m + d)
    nice = 2 * (16 * 8 + 8 + 8 * 16 + 16)  # F and G: 16 → 8 → 16, with biases
    assert language_record["params"]["trainable_method"] == blocks * (2 * 2 * d + 2 + d) + nice

    language = load_file(str(language_dir / "method.safetensors"))
    saved = load_file(str(task_dir / "method.safetensors"))
    adapters = {k: v for k, v in language.items() if ".bottleneck_adapter." in k or INVERTIBLE in k}
    assert any(INVERTIBLE in k for k in adapters) and len(adapters) == 4 * blocks + 8
    for name, value in adapters.items():  # frozen: bit-identical after the task adapter's training
        assert torch.equal(saved[name], value), name
    stacked = [k for k in saved if ".stacked_adapter." in k]
    assert len(stacked) == 4 * blocks and all(".output.LayerNorm.stacked_adapter." in k for k in stacked)
    assert all(saved[k].abs().sum() > 0 for k in stacked if k.endswith(".up.bias"))  # zero at init: it trained


@pytest.fixture(scope="module")
def fake_runs(two_stages):
    """Runs faked from the real language run's record, each in a folder named by its run id: an
    unfinished one, a Pfeiffer run without an invertible adapter, a Houlsby run, and a second copy."""
    _, results, language_dir, _ = two_stages
    record = json.loads((language_dir / "record.json").read_text())
    fakes = {
        "INCOMPLETE": {**record, "status": "running", "finished": None},
        "PLAIN": {**record, "method_config": {**record["method_config"], "invertible": "none"}},
        "HOULSBY": {**record, "method": "houlsby", "method_config": {**record["method_config"], "name": "houlsby"}},
        "COPY": record,
    }
    return {"LANGUAGE": language_dir.name, **copied_runs(results, language_dir, fakes)}


@pytest.mark.parametrize(
    "run, model, message",
    [
        (None, "tiny-bert", "name the language adapter's run: method.language_run=<run id>"),
        ("nope", "tiny-bert", "method.language_run: run 'nope' in"),
        ("INCOMPLETE", "tiny-bert", "is not complete; finish it first"),
        ("HOULSBY", "tiny-bert", "is a houlsby run; MAD-X stacks on a language adapter"),
        ("LANGUAGE", "tiny-roberta", "adapted tiny-bert, not tiny-roberta"),
    ],
)
def test_bad_language_runs_are_refused_while_planning(two_stages, fake_runs, run, model, message):
    """Missing, unfinished, not a Pfeiffer language adapter, another model: refused while the run
    is planned, before any model loads."""
    _, results, _, _ = two_stages
    named = [] if run is None else [f"method.language_run={fake_runs.get(run, run)}"]
    with pytest.raises(UserError, match=re.escape(message)):
        plan(compose([*COMMON, f"model={model}", "method=madx", *named, "task=mrpc", f"results_dir={results}"]))


def test_a_language_run_without_invertible_adapter_is_one_line_and_exit_2(two_stages, fake_runs):
    """Through the command line: one line, exit 2, nothing written."""
    root, results, _, _ = two_stages
    before = sorted(p.name for p in results.iterdir())
    done = peftbench("run", *COMMON, "method=madx", f"method.language_run={fake_runs['PLAIN']}", "task=mrpc",
                     f"results_dir={results}", cwd=root)  # fmt: skip
    message = "is a pfeiffer run without an invertible adapter; MAD-X stacks on a language adapter"
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert sorted(p.name for p in results.iterdir()) == before


def test_adapter_fusion_refuses_language_adapters(two_stages, fake_runs):
    """AdapterFusion fuses plain adapters: runs with an invertible adapter are refused while planning."""
    _, results, _, _ = two_stages
    runs = f"[{fake_runs['LANGUAGE']},{fake_runs['COPY']}]"
    with pytest.raises(UserError, match="has an invertible adapter"):
        plan(compose([*COMMON, "method=adapter_fusion", f"method.adapter_runs={runs}", "task=mrpc", f"results_dir={results}"]))


def test_no_invertible_adapter_keeps_the_run_ids_of_before():
    """``method.invertible`` arrived after adapter runs were recorded: at ``none`` it leaves the id as
    it was, so those runs stay found; ``nice`` is another run."""
    from peftbench.config import identity

    before = {"seed": 0, "method": {"name": "pfeiffer", "reduction_factor": 16, "activation": "relu"}}
    none = {**before, "method": {**before["method"], "invertible": "none"}}
    nice = {**before, "method": {**before["method"], "invertible": "nice"}}
    assert identity(none) == identity(before) != identity(nice)
