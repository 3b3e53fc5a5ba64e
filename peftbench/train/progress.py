"""How training shows its progress: a tqdm bar on a terminal, plain lines in a log.

A bar redraws itself with carriage returns; written to a file (CI, ``make run | tee``, a SLURM
output file) that is thousands of updates on one line. So when the stream is not a terminal, each
``trainer.log_every`` steps is one line (step, loss, learning rate, samples/s) and each evaluation
one line; on a terminal, the bar, with the loss and the last evaluation beside it.
"""

from __future__ import annotations

import sys


class ProgressReport:
    """The trainer's progress on ``stream`` (stderr when None, looked up when made)."""

    def __init__(self, total: int, initial: int, enabled: bool, stream=None):
        from tqdm.auto import tqdm

        self.stream = sys.stderr if stream is None else stream
        self.total = total
        terminal = enabled and is_terminal(self.stream)
        self.lines = enabled and not terminal
        self.bar = tqdm(total=total, initial=initial, disable=not terminal, desc="train", unit="step",
                        dynamic_ncols=True, file=self.stream)  # fmt: skip

    def step(self) -> None:
        self.bar.update(1)

    def logged(self, step: int, loss: float, lr: float, samples_per_s: float | None) -> None:
        """The training loss averaged since the last log point, the learning rate, the throughput."""
        if self.lines:
            rate = "" if samples_per_s is None else f"  {samples_per_s:.1f} samples/s"
            self._line(f"step {step}/{self.total}  loss {loss:.4f}  lr {lr:.3e}{rate}")
        else:
            self.bar.set_postfix_str(f"loss={loss:.4f} lr={lr:.2e}")

    def evaluated(self, step: int, epoch: float, metric: str, value: float) -> None:
        if self.lines:
            self._line(f"eval step {step}/{self.total}  epoch {epoch:g}  {metric} {value:.4f}")
        else:
            self.bar.set_postfix_str(f"{metric}={value:.4f}")

    def close(self) -> None:
        self.bar.close()

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


def is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
