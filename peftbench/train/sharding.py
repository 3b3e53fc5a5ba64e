"""The global batch split over the ranks, so that ``trainer.batch_size`` means what it means alone.

Every rank draws the same global batches (``train.batching.EpochBatches``, one seed, one order,
one checkpointed position) and collates only its contiguous share of each: ⌈B/W⌉ or ⌊B/W⌋ of its
B rows for W ranks. Each rank's loss is the mean over its share; weighting it by

    w_r = n_r · W / N        (n_r rows of the batch's N on rank r)

makes the ranks' average, which DDP's all-reduce (and FSDP's reduce-scatter) takes, equal to the
mean over the whole batch:  (1/W) Σ_r w_r · mean_r = (1/N) Σ_rows loss.  So the optimiser steps
and their gradients are those of one process with the same ``batch_size`` and ``grad_accum``, up
to the order of float additions, whether B divides by W or not (no extra accumulation is
needed). A rank whose share is empty (an epoch's last batch with fewer rows than ranks) runs
the batch's first row with weight 0: it joins the gradient reduction and adds nothing.
The weighting is exact for losses that average over rows (classification, rank
classification); for token-averaged losses (generation) it weights rows, not tokens.
"""

from __future__ import annotations

from peftbench.train.distributed import World, share


class RankShare:
    """A collate function: rank ``rank``'s share of a global batch, as (batch, weight, rows)."""

    def __init__(self, collate, world: World):
        self.collate, self.world = collate, world

    def __call__(self, items: list):
        n = len(items)
        mine = items[share(n, self.world.rank, self.world.size)]
        weight = len(mine) * self.world.size / n
        return self.collate(mine or items[:1]), weight, n


def per_rank_batch(batch_size: int, world: World) -> int:
    """The most rows a rank collates of a global batch of ``batch_size``."""
    return -(-batch_size // world.size)


def rank_loader(loader, world: World, device):
    """``loader``'s global batches (its dataset, batch sampler and collate function), each cut to
    this rank's share on ``device``; an accelerate ``DataLoaderShard``, so that gradient
    accumulation still syncs at the end of an epoch as it does for one process."""
    from accelerate.data_loader import DataLoaderShard

    return DataLoaderShard(
        loader.dataset,
        device=device,
        batch_sampler=loader.batch_sampler,
        collate_fn=RankShare(loader.collate_fn, world),
        generator=loader.generator,  # its per-epoch draw must not touch the global RNG
    )
