"""Lottery tickets (Frankle & Carbin 2019; Chen et al. 2020): iterative magnitude pruning with rewinding.

What is checked: every round prunes by the magnitude of the weights the last training left, then
puts every weight (backbone and head) back to θ0 bit for bit; ``rewind_step=k`` rewinds to the
weights after step k of the first training instead, and a k never reached is refused; the ticket
the run trains is rewound too; a tiny-bert RTE run trains end to end in rounds, records mask bits
and measured sparsity, saves and reloads to the same outputs. (Refusals of a bad config:
tests/test_magnitude_pruning.py.)
"""

import json

import pytest
import torch

from peftbench.errors import UserError
from peftbench.methods import build_method
from peftbench.methods.base import attach
from peftbench.methods.binary_mask import eligible_tensors, mask_of
from peftbench.methods.delta import tensor_name
from peftbench.models.anatomy import anatomy_of, head_parameter_names
from tests.helpers import tiny_classifier
from tests.test_magnitude_pruning import TINY_BERT_MATRICES, assert_record_counts_and_measures
from tests.test_magnitude_pruning import assert_reloads_to_the_same_outputs, lowest_positions, removed_positions, run_in_process

pytestmark = pytest.mark.usefixtures("one_thread")


def _weights(model) -> dict[str, torch.Tensor]:
    """Every stored parameter, by its name before parametrisation."""
    return {tensor_name(name): param.detach().clone() for name, param in model.named_parameters()}


def _masks(model) -> list[torch.Tensor]:
    return [mask_of(*owners[0]).current() for _, _, owners in eligible_tensors(model)]


def _perturb(model, generator) -> None:
    """What training does to every weight, the head's included: new values (many equal magnitudes)."""
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randint(-5, 6, param.shape, generator=generator).float() / 8)


def test_every_round_prunes_the_trained_weights_then_rewinds_everything_to_theta0():
    model, _ = tiny_classifier("tiny-bert")
    theta0 = _weights(model)
    method = build_method({"name": "lottery_ticket", "sparsity": 0.5, "iterations": 3})  # linear: 1/6, 1/3, 1/2
    generator = torch.Generator().manual_seed(0)
    rounds = []

    def fake_train(lr=None, on_step=None):
        rounds.append({"start": _weights(model), "trainable": {n for n, p in model.named_parameters() if p.requires_grad},
                       "all": {n for n, _ in model.named_parameters()}})  # fmt: skip
        _perturb(model, generator)
        rounds[-1]["removed"] = removed_positions(_masks(model)) if mask_of(*eligible_tensors(model)[0][2][0]) else set()

    method.search(model, head_parameter_names(model), fake_train)
    assert len(rounds) == 3 and all(r["trainable"] == r["all"] for r in rounds)
    for previous, current in zip(rounds, rounds[1:]):
        assert all(torch.equal(current["start"][n], theta0[n]) for n in theta0)  # rewound, bit for bit
        assert current["removed"] >= previous["removed"]
    last_trained = lowest_positions(eligible_tensors(model), round(0.5 * TINY_BERT_MATRICES), already=rounds[2]["removed"])
    attach(method, model, anatomy_of("bert"))
    assert removed_positions(_masks(model)) == last_trained  # the trained weights' magnitudes, not θ0's
    assert all(torch.equal(t, theta0[n]) for n, t in _weights(model).items())  # the ticket starts from θ0
    for (name, _, owners), keep in zip(eligible_tensors(model), _masks(model)):
        effective = getattr(*owners[0])
        assert torch.equal(effective, torch.where(keep, theta0[name], torch.zeros(())))


def test_rewind_step_k_rewinds_to_the_weights_after_step_k_of_the_first_training():
    model, _ = tiny_classifier("tiny-bert")
    method = build_method({"name": "lottery_ticket", "sparsity": 0.2, "iterations": 2, "rewind_step": 2})
    generator = torch.Generator().manual_seed(1)
    after_step = {}

    def fake_train(lr=None, on_step=None):
        for step in (1, 2, 3):  # three optimiser steps
            _perturb(model, generator)
            after_step.setdefault(step, _weights(model))
            if on_step is not None:
                on_step(step)

    method.search(model, head_parameter_names(model), fake_train)
    attach(method, model, anatomy_of("bert"))
    assert all(torch.equal(t, after_step[2][n]) for n, t in _weights(model).items())
    assert not all(torch.equal(t, after_step[3][n]) for n, t in _weights(model).items())


def test_a_rewind_step_the_first_training_never_reaches_is_refused():
    model, _ = tiny_classifier("tiny-bert")
    method = build_method({"name": "lottery_ticket", "sparsity": 0.2, "iterations": 1, "rewind_step": 5})

    def fake_train(lr=None, on_step=None):
        for step in (1, 2):
            on_step(step)

    with pytest.raises(UserError, match="rewind_step=5 was never reached"):
        method.search(model, head_parameter_names(model), fake_train)


def test_lottery_ticket_trains_tiny_bert_on_rte_in_rounds_saves_and_reloads(tmp_path):
    node = {"name": "lottery_ticket", "sparsity": 0.5, "iterations": 2}
    session, record = run_in_process(tmp_path, "method=lottery_ticket", "method.iterations=2")
    folder = tmp_path / record["run_id"]
    assert record["status"] == "complete" and record["method_config"]["schedule"] == "linear"
    phases = [json.loads(line)["phase"] for line in (folder / "history.jsonl").read_text().splitlines()]
    assert phases == ["search", "search-1", "train"]
    reloaded = assert_reloads_to_the_same_outputs(session, node, folder)
    assert_record_counts_and_measures(record, reloaded, 0.5)


@pytest.mark.slow  # three minutes: three trainings twice, killed in the second and resumed
def test_killed_in_a_pruning_round_resumes_to_the_same_ticket(tmp_path):
    """Each round checkpoints as a phase of its own (search, search-1): a run killed in round 1
    replays round 0 from its checkpoint, takes θ0 again, and ends as an uninterrupted run."""
    import random

    from tests.cli import peftbench
    from tests.test_resume import RUN, _kill_during_training, _outcome

    argv = [*RUN, "method=lottery_ticket", "method.iterations=2", "trainer.epochs=2", "trainer.lr=1e-3"]
    reference = tmp_path / "reference"
    assert peftbench(*argv, f"results_dir={reference}", cwd=tmp_path).returncode == 0
    _, expected_record, expected_weights, expected_history = _outcome(reference)

    results = tmp_path / "killed"
    _kill_during_training([*argv, f"results_dir={results}"], results, random.Random(0), tmp_path, phase="search-1")
    rerun = peftbench(*argv, f"results_dir={results}", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    run_dir, record, weights, history = _outcome(results)
    assert "checkpoints/search-1/step-" in rerun.stderr  # it resumed inside round 1
    assert record["metrics"] == expected_record["metrics"] and history == expected_history
    assert record["sparsity"] == expected_record["sparsity"]
    assert weights.keys() == expected_weights.keys()
    assert all(weights[name].equal(expected_weights[name]) for name in weights)  # packed masks included
    assert not list((run_dir / "checkpoints").glob("search*"))
