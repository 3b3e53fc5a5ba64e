"""Composed sparse fine-tunings (Ansell et al. 2022): f(x; θ0 + φ_A + φ_B), finished sparse
differences added onto one frozen backbone.

What is checked: three finished runs (LT-SFT on RTE and on MRPC sharing one random mask, so every
entry overlaps, and diff pruning on MRPC) added on tiny-bert give weights equal, bit for bit, to
θ0 with each run's saved values added in turn, computed here from the run files; the composed
model's outputs equal a plain model holding those weights and RTE's head; nothing trains (one
evaluation), or only a fresh head with ``train_head``; the saved folder holds the sum and the head;
merging folds the sum into the weights and unmerging restores θ0 bit-exact; missing, incomplete,
foreign-backbone, other-seed and non-sparse runs, and a missing head, are refused in one line
before any model loads.
"""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from peftbench.launch import compose
from peftbench.methods.delta import backbone_tensors, tensor_name
from peftbench.plan import plan
from peftbench.run import execute, finish, setup, train
from tests.helpers import batch, refused_before_a_model_loads, tiny_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

RUN = ["model=tiny-bert", "data.source=embedded", "data.max_train_samples=32", "data.max_eval_samples=16",
       "trainer.max_steps=4", "trainer.batch_size=8", "trainer.progress=false", "task.max_length=32", "seed=0"]  # fmt: skip
RANDOM = ["method=sparse", "method.mask_from=random", "method.k=400", "method.density=null"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Three finished sparse differences of tiny-bert (seed 0): LT-SFT on RTE and MRPC on the same
    random mask, diff pruning on MRPC; their results folder."""
    results = tmp_path_factory.mktemp("results")
    runs = [
        execute(plan(compose([*RUN, "task=rte", f"results_dir={results}", *RANDOM]))),
        execute(plan(compose([*RUN, "task=mrpc", f"results_dir={results}", *RANDOM]))),
        execute(plan(compose([*RUN, "task=mrpc", f"results_dir={results}", "method=diff_pruning", "method.k=300",
                              "method.density=null"]))),
    ]  # fmt: skip
    assert all(run["status"] == "complete" for run in runs)
    return results, [run["run_id"] for run in runs]


def composed(results, runs, *overrides, task="rte"):
    session = setup(plan(compose([*RUN, f"task={task}", f"results_dir={results}", "method=sparse_sum",
                                  f"method.runs=[{','.join(runs)}]", *overrides])))  # fmt: skip
    finish(session, train(session))
    return session


def expected_weights(results, runs) -> dict[str, torch.Tensor]:
    """θ0 (tiny-bert, seed 0) with each run's saved values added at its indices, run after run."""
    reference, _ = tiny_classifier("tiny-bert")
    weights = {name: param.detach().clone() for name, param, _ in backbone_tensors(reference)}
    for run in runs:
        saved = load_file(str(results / run / "method.safetensors"))
        for key, values in saved.items():
            if key.endswith(".sparse_values"):
                flat = weights[tensor_name(key)].view(-1)
                for index, value in zip(saved[key.removesuffix("sparse_values") + "indices"].tolist(), values.tolist()):
                    flat[index] = torch.tensor(flat[index].item(), dtype=torch.float32) + torch.tensor(value, dtype=torch.float32)
    return weights


def test_the_composed_weights_are_theta0_plus_each_difference_and_outputs_match_a_plain_model(finished):
    results, runs = finished
    rte, mrpc, diff = runs
    first = load_file(str(results / rte / "method.safetensors"))
    second = load_file(str(results / mrpc / "method.safetensors"))
    shared = [key for key in first if key.endswith(".indices")]
    assert shared and all(torch.equal(first[key], second[key]) for key in shared)  # every entry of A overlaps B

    session = composed(results, runs)
    record, folder = session.record, results / session.record["run_id"]
    assert record["status"] == "complete" and record["cost"]["steps"] == 0
    assert [entry["run_id"] for entry in record["composed"]] == runs
    assert record["params"]["trainable_method"] == 0
    assert len((folder / "history.jsonl").read_text().splitlines()) == 1  # one evaluation, no training

    weights = expected_weights(results, runs)
    model = session.model.cpu().eval()
    for name, expected in weights.items():
        path, _, attribute = name.rpartition(".")
        assert torch.equal(getattr(model.get_submodule(path), attribute).detach(), expected), name

    plain, tokenizer = tiny_classifier("tiny-bert", seed=7)
    state = {**weights, **{name: first[name] for name in ("classifier.weight", "classifier.bias")}}
    plain.load_state_dict(state, strict=False)
    inputs = batch(tokenizer)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, plain(**inputs).logits)

    saved = load_file(str(folder / "method.safetensors"))
    assert torch.equal(saved["classifier.weight"], first["classifier.weight"])
    values = sum(v.numel() for k, v in saved.items() if k.endswith(".sparse_values"))
    assert values == 400 + 400 + 300 == sum(v.numel() for k, v in saved.items() if k.endswith(".indices"))

    stored = {n: p for n, p in model.named_parameters() if n.endswith(".original")}
    before = {n: p.detach().clone() for n, p in stored.items()}
    with torch.no_grad():
        logits = model(**inputs).logits
        session.plan.method.merge(model)
        torch.testing.assert_close(model(**inputs).logits, logits, atol=1e-6, rtol=0)
        session.plan.method.unmerge(model)
    assert all(torch.equal(p, before[n]) for n, p in stored.items())


def test_train_head_trains_a_fresh_head_and_nothing_else(finished):
    results, runs = finished
    session = composed(results, runs[1:], "method.train_head=true")  # MRPC's differences, an RTE head
    record = session.record
    assert record["status"] == "complete" and record["cost"]["steps"] == 4
    assert record["params"]["trainable"] == record["params"]["head"]
    model = session.model.cpu()
    weights = expected_weights(results, runs[1:])
    for name, expected in weights.items():
        path, _, attribute = name.rpartition(".")
        assert torch.equal(getattr(model.get_submodule(path), attribute).detach(), expected), name


def refusal(capsys, monkeypatch, results, *overrides, task="rte"):
    argv = ["run", *RUN, f"task={task}", f"results_dir={results}", "method=sparse_sum", *overrides]
    return refused_before_a_model_loads(capsys, monkeypatch, argv)


def forged(results, run: str, name: str, **changes) -> str:
    """A copy of the finished run ``run`` under the id ``name``, its record changed by ``changes``."""
    shutil.copytree(results / run, results / name)
    record = json.loads((results / name / "record.json").read_text())
    record.update(run_id=name, **changes)
    (results / name / "record.json").write_text(json.dumps(record))
    return name


def test_runs_that_cannot_be_added_are_refused_in_one_line_before_a_model_loads(finished, tmp_path, capsys, monkeypatch):
    source, runs = finished
    results = tmp_path / "results"
    shutil.copytree(source, results)
    rte, mrpc, _ = runs
    cases = {
        "nothere": "no run 'nothere'",
        forged(results, rte, "running-run", status="running"): "is not complete",
        forged(results, rte, "gpt2-run", model="tiny-gpt2"): "was trained on tiny-gpt2, not tiny-bert",
        forged(results, rte, "seed1-run", seed=1): "has seed 1",
        forged(results, rte, "lora-run", method="lora"): "is a lora run, not a sparse difference",
    }
    for run, message in cases.items():
        assert message in refusal(capsys, monkeypatch, results, f"method.runs=[{mrpc},{run}]")
    assert "none of method.runs was trained on rte" in refusal(capsys, monkeypatch, results, f"method.runs=[{mrpc},{runs[2]}]")
    assert "each named once" in refusal(capsys, monkeypatch, results, f"method.runs=[{rte},{rte}]")
    assert "two finished sparse runs or more" in refusal(capsys, monkeypatch, results, f"method.runs=[{rte}]")
