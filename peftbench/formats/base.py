"""What every format provides (see ``peftbench/formats/__init__.py`` for the formats)."""

from __future__ import annotations

from typing import ClassVar

import torch


class Format:
    """Rows → features → padded batches → a loss while training, predictions while evaluating.

The trainer's batches are drawn by ``peftbench.train.batching.train_loader`` from a format's
``length`` and ``collate``; evaluation batches are the format's own (``predict``).

    ``options`` is the run's task config (``max_length``, the loss options). A feature keeps the
    row's ``labels`` where the row has one.
    """

    name: ClassVar[str]
    trains_head: ClassVar[bool] = True  # a fresh task head trains with every method (LM formats: none)
    cache_features: ClassVar[bool] = True  # ``encode`` depends on its inputs alone: its features may be cached (formats/cache.py)

    def __init__(self, task, tokenizer, options: dict):
        self.task = task
        self.tokenizer = tokenizer
        self.options = options
        self.max_length = options["max_length"]

    @classmethod
    def check(cls, task, family: str) -> None:
        """Refuse (UserError) a task or family this format cannot run; before any model loads."""

    def load_model(self, model_cfg):
        raise NotImplementedError

    @classmethod
    def head_size(cls, task) -> int:
        """The outputs of the head a format with ``trains_head`` puts on the model for ``task`` (a
        multi-task run gives each task its own: ``peftbench.models.heads``)."""
        raise NotImplementedError

    def encode(self, rows: list[dict]) -> list[dict]:
        raise NotImplementedError

    def length(self, feature: dict) -> int:
        """The feature's token count, for length-grouped batches."""
        return len(feature["input_ids"])

    def collate(self, features: list[dict], training: bool = False) -> dict:
        raise NotImplementedError

    def loss(self, model, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def predict_batch(self, model, batch: dict) -> list:
        raise NotImplementedError

    def predict(self, model, features: list[dict], batch_size: int) -> list:
        """Predictions for every feature, in the original order: batches of ``batch_size`` rows of
        similar length (sorted, longest first, so that little goes to padding), under inference
        mode (no autograd record, no version counters), whoever calls it."""
        device = next(model.parameters()).device
        predictions = [None] * len(features)
        with torch.inference_mode():
            for indices in sorted_batches([self.length(f) for f in features], batch_size):
                batch = self.collate([features[i] for i in indices])
                batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
                for i, value in zip(indices, self.predict_batch(model, batch)):
                    predictions[i] = value
        return predictions


def sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches: the split sorted by length, longest first (``predict`` restores the order)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad(sequences: list[list[int]], fill: int, left: bool = False) -> torch.Tensor:
    """A [len(sequences), longest] tensor, each row padded with ``fill`` on the right (or left)."""
    width = max(len(s) for s in sequences)
    return torch.tensor([[fill] * (width - len(s)) + s if left else s + [fill] * (width - len(s)) for s in sequences])


def label_index(task, label) -> int:
    """The candidate a label is, for formats that rank label words: its class index, or for a
    regression read as text the word of the nearest value (T5's STS-B target: the score rounded to 0.2)."""
    values = task.verbalized_values
    if not values:
        return int(label)
    return min(range(len(values)), key=lambda i: abs(values[i] - float(label)))


def scores_by_row(values: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Flat per-choice ``values`` regrouped as [rows, most choices], missing choices at -inf."""
    table = values.new_full((len(sizes), max(sizes)), float("-inf"))
    start = 0
    for row, size in enumerate(sizes):
        table[row, :size] = values[start : start + size]
        start += size
    return table
