"""Hyperformer and Hyperformer++: generated adapters that differ by task, what trains, the
paper's per-task parameter shares, and a multi-task run of a tiny T5 end to end."""

import json

import pytest
import torch

from peftbench.cli import main
from peftbench.methods.hyperformer import CONTAINER
from tests.cli import peftbench
from tests.helpers import assert_save_load_round_trip, assert_step_touches_only, batch, tiny_classifier

TASKS = ["rte", "mrpc", "sst2"]
PAPER_TASKS = "task=[rte,sst2,mrpc,stsb,qqp,mnli,qnli,cola]"  # the paper's eight GLUE tasks

pytestmark = pytest.mark.usefixtures("one_thread")


def _adapted(name, model_name="tiny-t5", tasks=TASKS, **settings):
    from peftbench.config import model_config
    from peftbench.methods import build_method
    from peftbench.methods.base import attach
    from peftbench.models.anatomy import anatomy_of

    model, tokenizer = tiny_classifier(model_name)
    method = build_method({"name": name, **settings})
    method.tasks = list(tasks)
    attach(method, model, anatomy_of(model_config(model_name).architecture["model_type"]))
    return model, tokenizer, method


def _is_norm(model, name):
    module = model.get_submodule(name.rsplit(".", 1)[0])
    return "norm" in type(module).__name__.lower()


@pytest.mark.parametrize("name", ["hyperformer", "hyperformer_pp"])
@pytest.mark.parametrize("model_name", ["tiny-t5", "tiny-llama"])
def test_only_hypernetworks_task_embeddings_and_layer_norms_train(name, model_name, tmp_path):
    model, tokenizer, method = _adapted(name, model_name)
    own = set(method.parameter_names(model))
    from peftbench.models.anatomy import head_parameter_names

    head = set(head_parameter_names(model))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == own | head and not own & head
    hyper = {n for n in own if f"{CONTAINER}." in n}
    norms = own - hyper
    assert hyper and norms and all(_is_norm(model, n) for n in norms)
    every_norm = {n for n, _ in model.named_parameters() if _is_norm(model, n) and f"{CONTAINER}." not in n}
    assert norms == every_norm - head  # the backbone's own norms, every one of them
    assert any(n.endswith("task_embeddings") for n in hyper)

    before, after = assert_step_touches_only(model, own | head, tokenizer, label=name)
    assert [n for n in hyper if not torch.equal(before[n], after[n])], "no hypernetwork parameter moved"
    assert_save_load_round_trip(model, tokenizer, lambda: _adapted(name, model_name)[0], tmp_path, method)


@pytest.mark.parametrize("name", ["hyperformer", "hyperformer_pp"])
def test_generated_adapters_differ_by_task_and_so_do_the_outputs(name):
    model, tokenizer, method = _adapted(name)
    sites = len(method._container.sites)
    assert sites == 2 * 4  # self-attention and FFN in each of the 2 encoder + 2 decoder blocks
    for site in range(sites):
        rte, mrpc = method.adapter_weights("rte", site), method.adapter_weights("mrpc", site)
        assert set(rte) == {"down", "down_bias", "up", "up_bias", "gamma", "beta"}
        assert all(not torch.equal(rte[key], mrpc[key]) for key in rte), site
    if name == "hyperformer_pp":  # one generator for every site: sites differ through layer and position
        first, second = method.adapter_weights("rte", 0), method.adapter_weights("rte", 1)
        assert not torch.equal(first["down"], second["down"])
    inputs = batch(tokenizer)
    with torch.no_grad():
        outputs = {}
        for task in TASKS:
            method.select_task(task)
            outputs[task] = model(**inputs).logits
    assert not torch.equal(outputs["rte"], outputs["mrpc"]) and not torch.equal(outputs["mrpc"], outputs["sst2"])
    method.select_task("rte")
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, outputs["rte"])
    with pytest.raises(Exception, match="no embedding for task 'cola'"):
        method.select_task("cola")


@pytest.mark.parametrize(
    "model, name, paper_share",
    [  # Karimi Mahabadi et al. 2021, Table 1, "#Trained params / per task" (8 GLUE tasks)
        ("t5-base", "hyperformer_pp", 0.29),
        ("t5-small", "hyperformer_pp", 0.50),
        ("t5-base", "hyperformer", 6.86),
        ("t5-small", "hyperformer", 5.80),  # ours 5.78: within 0.03 points
    ],
)
def test_params_per_task_share_matches_the_paper(capsys, model, name, paper_share):
    main(["params", f"model={model}", f"method={name}", PAPER_TASKS, "--json"])
    counts = json.loads(capsys.readouterr().out)
    assert len(counts["tasks"]) == 8
    share = 100 * counts["trainable_method"] / len(counts["tasks"]) / counts["backbone"]
    assert share == pytest.approx(paper_share, abs=0.03)
    main(["params", f"model={model}", f"method={name}", PAPER_TASKS])
    assert "per task" in capsys.readouterr().out


def test_hyperformer_task_embedding_goes_through_the_projector_by_default():
    """Seed 002: I_τ = h_I(z_τ), h_I two linear layers with a ReLU (the authors' TaskHyperNet,
    e -> 128 -> 64); every site's generators read I_τ, not z_τ."""
    _, _, method = _adapted("hyperformer")
    container = method._container
    linear_in, relu, linear_out = container.projector
    assert isinstance(relu, torch.nn.ReLU)
    assert (linear_in.in_features, linear_in.out_features, linear_out.out_features) == (64, 128, 64)
    seen = []
    container.projector.register_forward_hook(lambda module, args, out: seen.append((args[0], out)))
    rte = TASKS.index("rte")
    for site in (0, len(container.sites) - 1):
        weights = method.adapter_weights("rte", site)
        z, projected = seen[-1]
        assert torch.equal(z, container.task_embeddings[rte])
        expected = container.generators[site](projected)
        assert all(torch.equal(weights[key], expected[key]) for key in weights)
        assert container.generators[site].down.in_features == 64  # the projected width
    assert any(name.startswith("projector.") for name, _ in container.named_parameters())


def test_task_projector_false_is_the_ablation_without_it():
    """Table 4's "– Task projector" (and the released config): z_τ straight into the generators."""
    _, _, method = _adapted("hyperformer", task_projector=False, task_embedding_dim=16)
    container = method._container
    assert container.projector is None
    assert not any("projector" in name for name, _ in container.named_parameters())
    z = container.task_embeddings[TASKS.index("mrpc")]
    expected = container.generators[3](z)
    assert container.generators[3].down.in_features == 16
    assert all(torch.equal(method.adapter_weights("mrpc", 3)[k], expected[k]) for k in expected)


def test_hyperformer_pp_keeps_its_projector(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["params", "model=t5-base", "method=hyperformer_pp", "+method.task_projector=false", "task=[rte,mrpc]"])
    assert exit_info.value.code == 2 and "Hyperformer++ conditions on layer and position" in capsys.readouterr().err


def test_hyperformer_count_by_hand_on_t5_base(capsys):
    # Per site (2 per block, 12 encoder + 12 decoder blocks): D, U with biases, γ, β generated from
    # I_τ (64); shared: 8 task embeddings (64) and the projector 64 -> 128 -> 64.
    d, m, e = 768, 24, 64
    site = (e * m * d + m * d) + (e * m + m) + (e * d * m + d * m) + (e * d + d) + 2 * (e * d + d)
    projector = (e * 128 + 128) + (128 * 64 + 64)
    norms = (12 * 2 + 1 + 12 * 3 + 1) * d
    main(["params", "model=t5-base", "method=hyperformer", PAPER_TASKS, "--json"])
    counts = json.loads(capsys.readouterr().out)
    assert counts["trainable_method"] == 8 * e + projector + 48 * site + norms
    main(["params", "model=t5-base", "method=hyperformer", "method.task_projector=false", PAPER_TASKS, "--json"])
    assert json.loads(capsys.readouterr().out)["trainable_method"] == 8 * e + 48 * site + norms


def test_hyperformer_pp_count_by_hand_on_t5_base(capsys):
    # d = 768, m = 768 / 32 = 24, e = 64, projector 3e -> 128 -> 64, 12 layers per stack.
    d, m, e = 768, 24, 64
    generators = (e * m * d + m * d) + (e * m + m) + (e * d * m + d * m) + (e * d + d) + 2 * (e * d + d)
    stack = 12 * e + 2 * e + (3 * e * 128 + 128) + (128 * 64 + 64) + 2 * 64 + generators
    norms = (12 * 2 + 1 + 12 * 3 + 1) * d  # T5 RMSNorm weights: 2 per encoder block, 3 per decoder block, 2 final
    main(["params", "model=t5-base", "method=hyperformer_pp", PAPER_TASKS, "--json"])
    counts = json.loads(capsys.readouterr().out)
    assert counts["trainable_method"] == 8 * e + 2 * stack + norms


def test_hyperformer_pp_trains_a_tiny_t5_on_three_tasks(tmp_path):
    results = tmp_path / "results"
    done = peftbench(
        "run", "model=tiny-t5", "method=hyperformer_pp", "task=[rte,mrpc,sst2]", "data.source=embedded",
        "trainer.max_steps=6", "trainer.batch_size=4", "data.max_eval_samples=8", "trainer.progress=false",
        f"results_dir={results}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run_dir,) = [p for p in results.iterdir() if not p.name.startswith(".")]
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "complete" and record["method"] == "hyperformer_pp"
    assert set(record["metrics"]["best"]) == {f"{t}/validation" for t in TASKS} | {"average"}
    from safetensors.torch import load_file

    saved = load_file(str(run_dir / "method.safetensors"))
    assert saved[f"{CONTAINER}.task_embeddings"].shape == (3, 64)


def test_hyperformer_refuses_encoders(tmp_path):
    done = peftbench("run", "model=tiny-bert", "method=hyperformer", "task=rte", f"results_dir={tmp_path}", cwd=tmp_path)
    assert done.returncode == 2 and "not defined for encoder" in done.stderr, done.stderr
    assert not any(tmp_path.iterdir())
