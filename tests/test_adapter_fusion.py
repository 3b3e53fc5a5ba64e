"""AdapterFusion: stage-1 adapter runs, then fusion on a target task through the command line; the
fusion layer against the paper's equations; what trains; the attention dump and its plot."""

import json

import pytest
import torch
from safetensors.torch import load_file

from peftbench.methods.adapter_fusion import Fusion, _Recorder
from tests.cli import peftbench

TASKS = ("rte", "mrpc", "sst2")
COMMON = ("model=tiny-bert", "data.source=embedded", "trainer.max_steps=4", "trainer.progress=false")
FUSE_HOULSBY = ("method=adapter_fusion", "method.adapter_method=houlsby")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def two_stages(tmp_path_factory):
    """Houlsby adapters on RTE, MRPC and SST-2, then AdapterFusion of the three on RTE: two commands."""
    root = tmp_path_factory.mktemp("fusion")
    results = root / "results"
    stage_one = peftbench("run", "-m", *COMMON, "method=houlsby", "method.bottleneck=8", "task=rte,mrpc,sst2",
                          "trainer.lr=0.05", f"results_dir={results}", cwd=root)  # fmt: skip
    assert stage_one.returncode == 0, stage_one.stderr
    stage_two = peftbench("run", *COMMON, *FUSE_HOULSBY, "method.adapter_tasks=[rte,mrpc,sst2]", "task=rte",
                          "trainer.lr=0.05", f"results_dir={results}", cwd=root)  # fmt: skip
    assert stage_two.returncode == 0, stage_two.stderr
    runs = {p.name.split(".")[2] + ":" + p.name.split(".")[0]: p for p in results.iterdir() if not p.name.startswith(".")}
    return root, results, runs


def test_the_fusion_run_records_its_adapters_and_trains_only_q_k_v(two_stages):
    _, _, runs = two_stages
    fusion = runs["adapter_fusion:rte"]
    record = json.loads((fusion / "record.json").read_text())
    assert record["status"] == "complete"
    stage_one = {task: json.loads((runs[f"houlsby:{task}"] / "record.json").read_text())["run_id"] for task in TASKS}
    assert record["fused"] == [{"task": task, "run_id": stage_one[task]} for task in TASKS]
    d, sites = 32, 2 * 2  # tiny-bert: width 32; Houlsby adapters after attention and FFN in 2 layers
    assert record["params"]["trainable_method"] == sites * (3 * d * d + 2 * d)  # Q, K with biases; V without

    saved = load_file(str(fusion / "method.safetensors"))
    for n, task in enumerate(TASKS):  # the fused adapters are the stage-1 weights, untouched by training
        source = load_file(str(runs[f"houlsby:{task}"] / "method.safetensors"))
        adapters = {k: v for k, v in source.items() if ".bottleneck_adapter." in k}
        assert adapters
        for name, value in adapters.items():
            fused_name = name.replace(".bottleneck_adapter.", f".bottleneck_adapter.adapters.{n}.")
            assert torch.equal(saved[fused_name], value), fused_name
    rte = load_file(str(runs["houlsby:rte"] / "method.safetensors"))
    norms = [k for k in rte if "LayerNorm" in k]
    assert norms and all(torch.equal(saved[k], rte[k]) for k in norms)  # the target task's own layer norms


def test_the_attention_dump_and_its_plot(two_stages):
    root, results, runs = two_stages
    dump = json.loads((runs["adapter_fusion:rte"] / "fusion_attention.json").read_text())
    assert [a["task"] for a in dump["adapters"]] == list(TASKS)
    assert dump["sites"] == ["layer 0 attention.output.dense", "layer 0 output.dense",
                             "layer 1 attention.output.dense", "layer 1 output.dense"]  # fmt: skip
    assert all(sum(row) == pytest.approx(1.0, abs=1e-5) and len(row) == 3 for row in dump["attention"])
    assert all(tokens > 0 for tokens in dump["tokens"])
    out = root / "fusion.png"
    done = peftbench("plot", "fusion", "--results", str(results), "--out", str(out), cwd=root)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from peftbench.results.fusion_plot import fusion_maps
    from peftbench.results.record import iter_records

    figure4, per_site = fusion_maps(iter_records(results), results)
    assert figure4.columns == TASKS and figure4.rows == ("rte (seed 0)",)
    assert figure4.values[0] == pytest.approx([sum(c) / 4 for c in zip(*dump["attention"])])
    assert per_site.rows == tuple(dump["sites"])


def test_fusion_follows_the_papers_equations():
    """o = Σ_n softmax_n(hᵀQ · z_nᵀK) z_nᵀV, written token by token with explicit loops."""
    torch.manual_seed(0)
    d = 6
    adapters = [torch.nn.Linear(d, d) for _ in range(3)]
    recorder = _Recorder()
    fusion = Fusion(adapters, d, dropout=0.0, recorder=recorder, site=0, like=adapters[0].weight).eval()
    assert torch.allclose(fusion.value.weight, torch.eye(d), atol=1e-6)  # V starts as the identity
    torch.nn.init.normal_(fusion.value.weight)
    h = torch.randn(2, 5, d)
    with torch.no_grad():
        got = fusion(h)
        for b in range(2):
            for t in range(5):
                q = fusion.query(h[b, t])
                z = [adapter(h[b, t]) for adapter in adapters]
                scores = torch.stack([torch.dot(q, fusion.key(z_n)) for z_n in z])
                s = torch.exp(scores) / torch.exp(scores).sum()
                expected = sum(s[n] * fusion.value(z[n]) for n in range(3))
                torch.testing.assert_close(got[b, t], expected, atol=1e-5, rtol=1e-5)


def test_one_step_moves_only_fusion_and_head_and_the_penalty_keeps_v_near_identity(two_stages):
    from peftbench.config import model_config
    from peftbench.methods import build_method
    from peftbench.methods.base import attach
    from peftbench.models.anatomy import anatomy_of, head_parameter_names
    from peftbench.models.load import architecture_config
    from peftbench.results.record import RunIndex
    from tests.helpers import assert_step_touches_only, tiny_classifier

    _, results, _ = two_stages
    model, tokenizer = tiny_classifier("tiny-bert")
    method = build_method({"name": "adapter_fusion", "adapter_method": "houlsby", "adapter_tasks": list(TASKS)})
    method.tasks = ["rte"]
    anatomy = anatomy_of("bert")
    method.check_model(anatomy, architecture_config(model_config("tiny-bert")))
    method.prerequisites(RunIndex(results), "tiny-bert", 0)
    attach(method, model, anatomy)
    own = set(method.parameter_names(model))
    assert own and all(n.split(".")[-2] in ("query", "key", "value") for n in own)
    before, after = assert_step_touches_only(model, own | set(head_parameter_names(model)), tokenizer, label="fusion")
    assert [n for n in own if not torch.equal(before[n], after[n])]

    values = [p for n, p in model.named_parameters() if n.endswith(".bottleneck_adapter.value.weight")]
    assert len(values) == 4
    by_hand = 0.01 * sum(((torch.eye(32) - v) ** 2).sum() for v in values)
    torch.testing.assert_close(method.penalty(model), by_hand)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["method.adapter_tasks=[rte,cola]"], "no complete houlsby run of tiny-bert on cola"),
        (["method.adapter_tasks=[rte,mrpc]", "method.adapter_runs=[x,y]"], "name the adapters to fuse one way"),
        (["method.adapter_tasks=[rte]"], "two adapters or more"),
        (["method.adapter_tasks=[rte,mrpc]", "method.adapter_method=lora"], "must be a bottleneck adapter method"),
        (["method.adapter_runs=[nope,rte.tiny-bert.x]"], "no complete run 'nope'"),
    ],
)
def test_bad_fusion_inputs_are_refused_before_anything_is_written(two_stages, overrides, message):
    root, results, _ = two_stages
    before = sorted(p.name for p in results.iterdir())
    done = peftbench("run", *COMMON, *FUSE_HOULSBY, *overrides, "task=rte", f"results_dir={results}", cwd=root)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert sorted(p.name for p in results.iterdir()) == before
