"""Saving and loading the trainable weights of a run (method + head) as safetensors."""

from __future__ import annotations

from pathlib import Path


def trainable_state(model) -> dict:
    """Detached CPU copies of every trainable parameter, by name."""
    return {
        name: param.detach().to("cpu", copy=True).contiguous()
        for name, param in model.named_parameters()
        if param.requires_grad
    }


def save_weights(state: dict, path: Path) -> None:
    """Write ``state`` as safetensors, atomically (temp file + rename)."""
    from safetensors.torch import save

    from peftbench.atomic import write_bytes_atomic

    write_bytes_atomic(Path(path), save(state))


def load_weights(model, path: Path) -> None:
    """Load saved trainable weights (and saved buffers) into ``model``; every saved tensor must find
    its parameter or buffer."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    missing = sorted(set(state) - {name for name, _ in [*model.named_parameters(), *model.named_buffers()]})
    if missing:
        raise ValueError(f"{path}: weights for parameters the model lacks: {missing[:3]}")
    model.load_state_dict(state, strict=False)
