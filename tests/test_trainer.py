"""The trainer: length-grouped batching, and the fit loop's best/last selection, steps and cost."""

import math
import types
from dataclasses import asdict

import pytest
import torch

from peftbench.config import TrainerConfig
from peftbench.formats.classification import ClassificationFormat
from peftbench.tasks import get_task
from peftbench.formats.base import sorted_batches
from peftbench.train.batching import EpochBatches, length_grouped_batches, train_loader
from peftbench.train.loop import fit
from peftbench.train.weights import trainable_state
from tests.helpers import apply_method, tiny_classifier

# 203 lengths in 1..101: 37 is coprime with 101, so i·37 mod 101 runs through every residue.
LENGTHS = [(i * 37) % 101 + 1 for i in range(203)]


pytestmark = pytest.mark.usefixtures("one_thread")


def _flat(batches):
    return [i for b in batches for i in b]


def _generator(seed):
    return torch.Generator().manual_seed(seed)


# --- batching ---------------------------------------------------------------------------------


def test_length_grouped_batches_cover_every_index_once():
    batches = length_grouped_batches(LENGTHS, 4, _generator(0), group=5)
    assert sorted(_flat(batches)) == list(range(203))
    # mega-batches of 4·5 = 20: ten full ones (5 batches of 4 each) and one of the last 3 → 51
    # batches, one of them of 3.
    assert len(batches) == 51
    assert sorted(len(b) for b in batches) == [3] + [4] * 50


def test_length_grouped_batches_hold_similar_lengths():
    batches = length_grouped_batches(LENGTHS, 4, _generator(0), group=5)
    for b in batches:  # each batch is a slice of a mega-batch sorted longest first
        lengths = [LENGTHS[i] for i in b]
        assert lengths == sorted(lengths, reverse=True)
    # A batch of 4 drawn at random from lengths spread over 1..101 spans ~0.6·100 = 60 on
    # average; 4 neighbours in a sorted mega-batch of 20 span ~3/21·100 ≈ 15.
    spread = sum(LENGTHS[b[0]] - LENGTHS[b[-1]] for b in batches) / len(batches)
    assert spread < 30


def test_one_mega_batch_is_the_sorted_order_cut_into_batches():
    # group · batch_size = 400 ≥ 203: one mega-batch, so the batches, put back in order of their
    # longest example, are the whole split sorted longest first.
    batches = length_grouped_batches(LENGTHS, 4, _generator(0), group=100)
    ordered = sorted(batches, key=lambda b: -LENGTHS[b[0]])
    lengths = [LENGTHS[i] for i in _flat(ordered)]
    assert lengths == sorted(LENGTHS, reverse=True)
    assert batches != ordered, "the batches themselves are shuffled, not served longest first"


def test_length_grouped_batches_seeded():
    first = length_grouped_batches(LENGTHS, 4, _generator(0), group=5)
    again = length_grouped_batches(LENGTHS, 4, _generator(0), group=5)
    other = length_grouped_batches(LENGTHS, 4, _generator(1), group=5)
    assert first == again
    assert first != other


def test_epoch_batches_new_order_each_epoch_same_for_same_seed():
    sampler = EpochBatches(LENGTHS, 4, seed=3)
    epoch1, epoch2 = list(sampler), list(sampler)
    assert epoch1 != epoch2
    assert sorted(_flat(epoch1)) == sorted(_flat(epoch2)) == list(range(203))
    twin = EpochBatches(LENGTHS, 4, seed=3)
    assert [list(twin), list(twin)] == [epoch1, epoch2]
    assert list(EpochBatches(LENGTHS, 4, seed=4)) != epoch1
    assert len(sampler) == 51 == len(epoch1)  # ⌈203 / 4⌉


def test_sorted_batches_cover_all_longest_first():
    batches = sorted_batches(LENGTHS, 4)
    assert sorted(_flat(batches)) == list(range(203))
    assert len(batches) == 51 and [len(b) for b in batches] == [4] * 50 + [3]
    lengths = [LENGTHS[i] for i in _flat(batches)]
    assert lengths == sorted(LENGTHS, reverse=True)


# --- fit --------------------------------------------------------------------------------------

LORA = {"name": "lora", "r": 4, "alpha": 8.0, "dropout": 0.0, "targets": ["attn.q", "attn.v"]}
TEXTS = [
    "a short one",
    "a slightly longer sentence than the first",
    "tiny",
    "the quick brown fox jumps over the lazy dog again and again",
    "some words here",
    "another example sentence of middling length",
    "yes",
    "a final example for the synthetic training set",
]


def _setup(n=8):
    model, tokenizer = tiny_classifier("tiny-bert")
    apply_method(model, LORA, "tiny-bert")
    rows = [{"text": TEXTS[i % len(TEXTS)], "text_pair": None, "label": i % 2} for i in range(n)]
    fmt = ClassificationFormat(get_task("sst2"), tokenizer, {"max_length": 32})
    return model, fmt.encode(rows), fmt


def _cfg(**overrides):
    values = asdict(TrainerConfig())
    values.update(progress=False, device="cpu", lr=1e-2, log_every=1)
    values.update(overrides)
    return types.SimpleNamespace(**values)


class _Scripted:
    """An evaluation callback returning scripted validation accuracies; keeps the weights it saw."""

    def __init__(self, values):
        self.values = list(values)
        self.seen = []

    def __call__(self, model):
        self.seen.append(trainable_state(model))
        return {"validation": {"accuracy": self.values[len(self.seen) - 1]}}


def _fit(cfg, script, n=8, **options):
    model, features, fmt = _setup(n)
    loader = train_loader(features, fmt, cfg.batch_size, 0)
    entries = []
    result = fit(model, loader, script, ("validation", "accuracy"), cfg, on_evaluation=entries.append, **options)
    return result, entries


def test_fit_keeps_best_and_last_evaluation():
    script = _Scripted([0.5, 0.9, 0.7])
    # 8 examples, batch 4: 2 optimiser steps per epoch, 3 epochs → evaluations at steps 2, 4, 6.
    result, entries = _fit(_cfg(epochs=3, batch_size=4), script)
    assert result.best == {"validation": {"accuracy": 0.9}}
    assert result.best_epoch == 2
    assert result.last == {"validation": {"accuracy": 0.7}}
    assert [e["epoch"] for e in result.history] == [1, 2, 3]
    assert [e["step"] for e in result.history] == [2, 4, 6]
    assert entries == result.history

    at_epoch2, at_epoch3 = script.seen[1], script.seen[2]
    assert set(result.best_state) == set(at_epoch2)
    assert all(torch.equal(result.best_state[k], at_epoch2[k]) for k in at_epoch2)
    assert any(not torch.equal(at_epoch2[k], at_epoch3[k]) for k in at_epoch2), "epoch 3 must train"

    cost = result.cost
    for key in ("wall_s", "samples_per_s", "tokens_per_s", "peak_memory_mb"):
        assert cost[key] is not None and cost[key] > 0, key
    assert cost["steps"] == 6
    assert cost["samples"] == 24  # 8 examples · 3 epochs


def test_max_steps_stops_early():
    script = _Scripted([0.1, 0.2, 0.3])
    # 2 steps per epoch; max_steps=3 stops one step into epoch 2 and evaluates there: epoch 1.5.
    result, _ = _fit(_cfg(epochs=3, batch_size=4, max_steps=3), script)
    assert result.cost["steps"] == 3
    assert [e["step"] for e in result.history] == [2, 3]
    assert [e["epoch"] for e in result.history] == [1, 1.5]
    assert result.cost["samples"] == 12  # 3 batches of 4


@pytest.fixture
def optimiser_steps():
    """Counts every optimiser step taken in the process (a global post-step hook)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    count = [0]
    handle = register_optimizer_step_post_hook(lambda optimizer, args, kwargs: count.__setitem__(0, count[0] + 1))
    yield count
    handle.remove()


@pytest.mark.parametrize("grad_accum, expected", [(1, 4), (2, 2)])
def test_grad_accum_halves_optimiser_steps(grad_accum, expected, optimiser_steps):
    # 8 examples, batch 2: 4 batches in the one epoch → 4 steps, or 2 when accumulating over 2.
    result, _ = _fit(_cfg(epochs=1, batch_size=2, grad_accum=grad_accum), _Scripted([0.5]))
    assert optimiser_steps[0] == expected
    assert result.cost["steps"] == expected
    assert result.cost["samples"] == 8
    assert [e["step"] for e in result.history] == [expected]


def test_nan_first_evaluation_does_not_block_best():
    result, _ = _fit(_cfg(epochs=3, batch_size=4), _Scripted([math.nan, 0.5, 0.4]))
    assert result.best == {"validation": {"accuracy": 0.5}}
    assert result.best_epoch == 2


def test_nan_later_evaluation_does_not_replace_best():
    result, _ = _fit(_cfg(epochs=3, batch_size=4), _Scripted([0.5, math.nan, 0.4]))
    assert result.best == {"validation": {"accuracy": 0.5}}
    assert result.best_epoch == 1
    assert math.isnan(result.history[1]["metrics"]["validation"]["accuracy"])


# --- fast-path switches: each changes speed or memory, not what is learnt ----------------------


def _trained(cfg, dropout=0.1, calls=None):
    """A tiny LoRA model after ``fit`` with ``cfg``; ``calls`` counts its first block's forwards."""
    model, tokenizer = tiny_classifier("tiny-bert")
    apply_method(model, {**LORA, "dropout": dropout}, "tiny-bert")
    if calls is not None:
        model.bert.encoder.layer[0].attention.register_forward_hook(lambda *args: calls.append(1))
    rows = [{"text": TEXTS[i % len(TEXTS)], "text_pair": None, "label": i % 2} for i in range(8)]
    fmt = ClassificationFormat(get_task("sst2"), tokenizer, {"max_length": 32})
    loader = train_loader(fmt.encode(rows), fmt, cfg.batch_size, 0, cfg.group_by_length)
    torch.manual_seed(0)
    fit(model, loader, _Scripted([0.5, 0.5]), ("validation", "accuracy"), cfg)
    return model


def test_gradient_checkpointing_learns_the_same_weights():
    """Recomputing activations in backward (dropout RNG replayed) gives the same gradients."""
    calls_plain, calls_checkpointed = [], []
    plain = trainable_state(_trained(_cfg(epochs=2, batch_size=4), calls=calls_plain))
    checkpointed = _trained(_cfg(epochs=2, batch_size=4, gradient_checkpointing=True), calls=calls_checkpointed)
    assert len(calls_plain) == 4 and len(calls_checkpointed) == 8  # 4 steps; each block recomputed once
    checkpointed = trainable_state(checkpointed)
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-6)


def test_group_by_length_off_draws_plain_random_batches():
    """With grouping off, a batch is a slice of one random permutation (sorted within the batch,
    which changes no padding), not a slice of a length-sorted mega-batch."""
    order = torch.randperm(len(LENGTHS), generator=torch.Generator().manual_seed(3)).tolist()
    batches = EpochBatches(LENGTHS, 4, seed=3, group=1)
    drawn = list(batches)
    assert sorted(map(sorted, drawn)) == sorted(sorted(order[i : i + 4]) for i in range(0, len(order), 4))


def test_frozen_bf16_keeps_trained_parameters_fp32_and_needs_bf16():
    model = _trained(_cfg(epochs=1, batch_size=4, precision="bf16", frozen_bf16=True), dropout=0.0)
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert any(m.weight.dtype == torch.bfloat16 for m in linear)
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    assert all(torch.isfinite(p).all() for p in model.parameters() if p.requires_grad)
