"""What a run costs: wall time, throughput, peak and average memory (DESIGN §3, cost figures).

Memory is the accelerator's allocated memory on CUDA, the process's resident set size on CPU. The
peak is the allocator's (or the kernel's) high-water mark; the average is the mean of samples taken
after each optimiser step, as HF peft's ``method_comparison`` reports it beside the peak (its
``train()`` logs ``memory_allocated()`` / ``memory_reserved()`` after every step).
"""

from __future__ import annotations

import resource
import sys


def peak_memory_mb(device) -> float:
    """Peak GPU memory allocated on CUDA, else the process's peak resident set size."""
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def memory_mb(device) -> float:
    """Memory in use now: GPU memory allocated on CUDA (no device synchronisation), else the
    process's resident set size."""
    import torch

    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    import psutil

    return psutil.Process().memory_info().rss / 2**20  # a new Process each time: right after a fork too


class MemorySamples:
    """A running mean of ``memory_mb`` samples; ``total`` and ``count`` go into checkpoints, so a
    resumed run's mean covers the steps before the interruption too."""

    def __init__(self, device, total: float = 0.0, count: int = 0):
        self.device, self.total, self.count = device, total, count
        self.highest = 0.0

    def sample(self) -> None:
        now = memory_mb(self.device)
        self.total += now
        self.count += 1
        self.highest = max(self.highest, now)

    def mean(self) -> float | None:
        return round(self.total / self.count, 1) if self.count else None

    def peak(self) -> float:
        """``peak_memory_mb``, and never below a sample: the kernel's high-water mark of the
        resident set is updated lazily and can trail the RSS read a moment ago."""
        return round(max(peak_memory_mb(self.device), self.highest), 1)


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"
