"""One run over several processes: who this process is, and the few collectives a run needs.

A launcher (``torchrun``, ``accelerate launch``, SLURM through ``srun torchrun``) starts one
process per device and tells each its place in the environment: ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` (and ``MASTER_ADDR``/``MASTER_PORT`` for the rendezvous). Reading them needs no
torch, so every process plans the run (and refuses bad input, exit 2) before anything joins a
process group; only rank 0 prints the refusal (``speaks``).

Then the ranks join (``join``: gloo on CPU; on GPUs NCCL for tensors and gloo for the Python
objects below). Rank 0 alone holds the run's lock, writes its record, history and checkpoints;
it decides whether the run trains, is complete already or is busy elsewhere, and every rank
follows that decision (``decided``), so all of them train or none. Evaluation is split into
contiguous shards (``shard``) whose predictions are gathered back in order (``gathered``): no
row is scored twice and none is padding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the run's processes (rank 0 of 1 without a launcher)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world() -> World:
    """The launcher's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (torchrun, accelerate launch); in
    a job of several tasks that submitit started (``hydra/launcher=slurm`` with ``tasks_per_node``,
    or ``submitit_local``), the task's place, exported first as those variables (with
    ``MASTER_ADDR``/``MASTER_PORT``) by submitit's ``TorchDistributedEnvironment``."""
    if "RANK" not in os.environ and _submitit_tasks() > 1:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export()
    return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))


def _submitit_tasks() -> int:
    """The tasks of this submitit job (1 outside one: a plain ``sbatch`` script's are not ours)."""
    tasks = {"local": "SUBMITIT_LOCAL_NTASKS", "slurm": "SLURM_NTASKS"}.get(os.environ.get("SUBMITIT_EXECUTOR", ""))
    return int(os.environ.get(tasks, 1)) if tasks else 1


def speaks() -> bool:
    """Whether this process prints what the run says once (errors, summaries): rank 0."""
    return world().main


def join(device_type: str) -> None:
    """Join the run's process group (once per process): gloo on CPU; NCCL for tensors on GPUs,
    with gloo beside it for the Python objects that ``decided`` and ``gathered`` send."""
    import torch
    import torch.distributed as dist

    if not world().distributed or dist.is_initialized():
        return
    if device_type == "cuda":
        torch.cuda.set_device(world().local_rank)
        dist.init_process_group("cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group("gloo")


def joined() -> bool:
    import torch.distributed as dist

    return world().distributed and dist.is_available() and dist.is_initialized()


def leave(together: bool = True) -> None:
    """Leave the process group: every rank after the last job (``together``: at a barrier), or a
    rank that stops on its own (a refusal, a busy run): a process that exits still in the group
    aborts in gloo's threads instead of exiting with its status."""
    import torch.distributed as dist

    if joined():
        if together:
            dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if joined():
        import torch.distributed as dist

        dist.barrier()


def decided(decide: Callable[[], T]) -> T:
    """Rank 0's ``decide()``, sent to every rank (which does not call it); alone, just ``decide()``."""
    if not joined():
        return decide()
    import torch.distributed as dist

    box = [decide() if world().main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def share(count: int, rank: int, size: int) -> slice:
    """Rank ``rank``'s contiguous share of ``count`` items over ``size`` ranks, the first
    ``count % size`` ranks taking one more."""
    each, extra = divmod(count, size)
    start = rank * each + min(rank, extra)
    return slice(start, start + each + (rank < extra))


def shard(items: list, even: bool = False) -> list:
    """This rank's ``share`` of ``items``. ``even``: every share as long as the longest, the short
    ones padded with their last item (FSDP's forward is a collective, so every rank must run as
    many batches); ``gathered`` drops the padding."""
    if not joined():
        return items
    w = world()
    mine = items[share(len(items), w.rank, w.size)]
    if even and len(items) % w.size and len(mine) == len(items) // w.size:
        mine = mine + (mine[-1:] or items[:1])
    return mine


def gathered(mine: list, total: int) -> list | None:
    """Every rank's ``shard`` results, in order, on rank 0 (None on the others): ``total`` items,
    the padding of an even shard left out."""
    if not joined():
        return mine
    import torch.distributed as dist

    w = world()
    parts = [None] * w.size if w.main else None
    dist.gather_object(mine, parts, dst=0)
    if not w.main:
        return None
    shares = [share(total, rank, w.size) for rank in range(w.size)]
    return [item for own, part in zip(shares, parts) for item in part[: own.stop - own.start]]


def summed(value: float) -> float:
    """``value`` summed over the ranks (a count every rank keeps of its own share)."""
    if not joined():
        return value
    import torch
    import torch.distributed as dist

    total = torch.tensor([float(value)], dtype=torch.float64)  # on CPU: gloo sums it, beside NCCL too
    dist.all_reduce(total)
    return total.item()


def device_names(device) -> list[str]:
    """Every rank's device name (``train.cost.device_name``), in rank order."""
    from peftbench.train.cost import device_name

    name = device_name(device)
    if not joined():
        return [name]
    import torch.distributed as dist

    names = [None] * world().size
    dist.all_gather_object(names, name)
    return names

