"""Batches with dynamic padding, grouped by length so that little compute goes to padding.

Training order follows HF's ``LengthGroupedSampler``: a seeded random permutation is cut into
mega-batches of ``group`` batches, each sorted by length (longest first) and cut into batches,
and the batches are shuffled. Every epoch differs, the same seed gives the same order, and each
batch holds examples of similar length. Each batch is padded to its own longest example by the
format that collates it (``peftbench.formats``: anything with ``length`` and ``collate``).
"""

from __future__ import annotations

import torch


def length_grouped_batches(lengths: list[int], batch_size: int, generator: torch.Generator, group: int = 50):
    """Training batches (lists of indices) for one epoch."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    mega = batch_size * group
    batches = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega], key=lambda i: -lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    shuffle = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffle]


class EpochBatches:
    """A batch sampler drawing a fresh length-grouped order each epoch from one seeded generator.

    Its position is part of a checkpoint: ``state_dict(consumed)`` gives the generator as it was
    when the epoch under way was drawn and how many of its batches are done (0 between epochs:
    the generator as it is now); after ``load_state_dict`` the next epoch is that epoch again,
    less the batches already done.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group: int = 50):
        self.lengths = lengths
        self.batch_size = batch_size
        self.group = group  # batches per sorted mega-batch; 1: plain random batches
        self.generator = torch.Generator().manual_seed(seed)
        self._epoch_start = self.generator.get_state()
        self._skip = 0

    def epoch(self) -> list[list[int]]:
        """One epoch's batches, drawn from ``self.generator`` (subclasses draw them otherwise)."""
        return length_grouped_batches(self.lengths, self.batch_size, self.generator, self.group)

    def __iter__(self):
        self._epoch_start = self.generator.get_state()
        batches = self.epoch()
        skip, self._skip = self._skip, 0
        return iter(batches[skip:])

    def state_dict(self, consumed: int) -> dict:
        generator = self._epoch_start if consumed else self.generator.get_state()
        return {"generator": generator.clone(), "consumed": consumed}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self._skip = state["consumed"]

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)


def train_loader(features: list[dict], fmt, batch_size: int, seed: int, group_by_length: bool = True):
    """Training batches of ``features`` collated by ``fmt`` (dynamically padded); length-grouped
    unless ``group_by_length`` is off (then each batch is a plain random draw)."""
    return torch.utils.data.DataLoader(
        features,
        batch_sampler=EpochBatches([fmt.length(f) for f in features], batch_size, seed, group=50 if group_by_length else 1),
        collate_fn=lambda batch: fmt.collate(batch, training=True),
        generator=torch.Generator().manual_seed(seed),  # its per-epoch draw must not touch the global RNG
    )
