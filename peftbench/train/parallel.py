"""How a model trains over several processes: ``trainer.strategy`` ddp (a copy per rank) or fsdp.

**ddp**: every rank holds the whole model; accelerate wraps it in ``DistributedDataParallel``,
which all-reduces the gradients of the trainable parameters (frozen ones have none).
``find_unused_parameters`` is on: a PEFT method's trainable parameters need not all take part in
every batch (a multi-task run's other tasks' heads, a router's unchosen experts).

**fsdp**: the backbone does not fit one device. torch's FSDP2 ``fully_shard`` shards each
transformer block (the classes the model names in ``_no_split_modules``, as accelerate's
transformer auto-wrap policy reads them) and then the rest of the model, over all ranks. Frozen
and trainable parameters may share a block, so a PEFT method's parameters train under it as
torchtune's LoRA recipes and peft's FSDP guide do it. accelerate 1.15's FSDP plugin is not used:
it takes effect on GPU distributed types only, and on CPU silently falls back to DDP.
Parameters are then ``DTensor`` shards; ``full`` gathers one whole (a collective: every rank
calls it in the same order) and ``place`` cuts a whole tensor to this rank's shard, so
checkpoints and the best weights hold whole tensors, which a run with another world size (or
one process) resumes from.

Alone (one process) nothing is wrapped, whatever the strategy.
"""

from __future__ import annotations

import torch

STRATEGIES = ("ddp", "fsdp")


def ddp_options() -> list:
    """accelerate's kwargs handlers for DDP."""
    from accelerate.utils import DistributedDataParallelKwargs

    return [DistributedDataParallelKwargs(find_unused_parameters=True)]


def shard_model(model, device):
    """``model`` sharded in place with FSDP2 over every rank (blocks first, then the root)."""
    from torch.distributed.fsdp import fully_shard

    model.to(device)
    blocks = set(getattr(model, "_no_split_modules", None) or [])
    for module in model.modules():
        if type(module).__name__ in blocks:
            fully_shard(module)
    fully_shard(model)
    return model


def is_sharded(tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor of an FSDP shard (a collective); any other tensor as it is."""
    return tensor.full_tensor() if is_sharded(tensor) else tensor


def place(whole: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``whole`` as ``like`` holds it: this rank's shard of an FSDP parameter, else ``whole``."""
    if not is_sharded(like):
        return whole
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(whole.to(like.device, like.dtype), like.device_mesh, like.placements)


def load_whole(model, state: dict) -> None:
    """Copy the whole tensors ``state`` (name → tensor, a subset of the model's parameters and
    buffers) into ``model``, sharded or not."""
    tensors = dict(model.named_parameters())
    tensors.update(model.named_buffers())
    with torch.no_grad():
        for name, whole in state.items():
            target = tensors[name]
            target.copy_(place(whole, target))
