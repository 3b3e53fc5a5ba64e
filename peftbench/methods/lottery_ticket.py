"""Lottery tickets: iterative magnitude pruning with rewinding.

Frankle & Carbin, ICLR 2019, "The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural
Networks", §1: (1) initialise f(x; θ0); (2) train for j iterations, reaching θj; (3) prune p% of
θj, creating a mask m; (4) reset the remaining parameters to their values in θ0: the winning
ticket is f(x; m ⊙ θ0), trained in isolation; iterated over n rounds, each pruning the weights that
survive the previous one. Chen, Frankle, Chang, Liu, Zhang, Wang & Carbin, NeurIPS 2020, "The
Lottery Ticket Hypothesis for Pre-trained BERT Networks": θ0 is the pre-trained BERT (the new
classifier at its initialisation beside it), IMP with one global magnitude ranking over the
encoder's matrices, 10% pruned per round, rewinding to θ0. Frankle, Dziugaite, Roy & Carbin,
ICML 2020, "Linear Mode Connectivity and the Lottery Ticket Hypothesis": rewinding to θk, the
weights after k steps of the first training, instead of θ0. In the survey's notation (seed 004)
the ticket is f_{θk∘b} trained to f_{θ∘b} + φ.

What this implementation does (``magnitude_pruning`` with a rewind between rounds; one run of the
run's trainer):

* **Round 0**: the whole model (backbone and head) trains densely; θk is kept at step
  ``method.rewind_step`` = k (k = 0: θ0 itself, the pre-trained weights and the head's
  initialisation, copied before training).
* **Rounds i = 1 … n**: prune the trained weights to s_i by magnitude (``magnitude_pruning``: the
  same eligible tensors, scope, ties, and pruned weights staying pruned), put every weight, the
  head's too, back to θk bit for bit (pruned ones compute as 0), and train the ticket; the last
  round's ticket is what the run trains, scores and saves. Each round is a full trainer schedule
  with a fresh optimiser (BERT-Tickets resets its optimiser too).
* **Defaults** (``conf/method/lottery_ticket.yaml``): Chen et al.'s global scope, and their code's
  schedule (VITA-Group/BERT-Tickets ``LT_glue.py``: each round prunes 1/(10 − i) of the weights
  left, 10% of the original ones), that is ``schedule: linear`` with iterations = 10 · sparsity;
  ``schedule: geometric`` prunes the same share of the survivors each round, as Frankle & Carbin.

Where it departs: after rewinding to θk (k > 0) each round trains the run's whole schedule, where
Frankle et al. train the T − k steps left; the classifier is rewound with the encoder, as the
papers' algorithms state (BERT-Tickets' code keeps its trained classifier across rounds); and the
pooler is not pruned (``binary_mask``). A run that resumes its first training from a checkpoint
past step k no longer holds θk and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from peftbench.errors import UserError
from peftbench.methods import register
from peftbench.methods.base import require
from peftbench.methods.binary_mask import stored
from peftbench.methods.delta import tensor_name
from peftbench.methods.magnitude_pruning import MagnitudePruning, MagnitudePruningConfig


@dataclass
class LotteryTicketConfig(MagnitudePruningConfig):
    iterations: int = 5
    schedule: str = "linear"
    scope: str = "global"
    rewind_step: int = 0  # 0 = the pre-trained weights θ0; k = the weights after k steps of round 0

    def check(self) -> None:
        super().check()
        require(self.rewind_step >= 0, f"method.rewind_step must be ≥ 0 (0 = the pre-trained weights), got {self.rewind_step}")


def snapshot(model) -> dict[str, torch.Tensor]:
    """A CPU copy of every parameter by its name before parametrisation (``a.weight``)."""
    return {tensor_name(name): param.detach().to("cpu", copy=True) for name, param in model.named_parameters()}


@torch.no_grad()
def rewind(model, weights: dict[str, torch.Tensor]) -> None:
    """Every parameter back to ``weights`` (``snapshot``), masked or not, bit for bit."""
    for name, value in weights.items():
        path, _, attribute = name.rpartition(".")
        stored(model.get_submodule(path), attribute).copy_(value)


@register
class LotteryTicket(MagnitudePruning):
    name = "lottery_ticket"
    Config = LotteryTicketConfig

    _rewind_to: dict[str, torch.Tensor] | None = None  # θk, kept by the search

    def _train_dense(self, model, train) -> None:
        """Round 0, keeping θk (θ0 before it starts)."""
        k = self.config.rewind_step

        def keep(step: int) -> None:
            if step == k:
                self._rewind_to = snapshot(model)

        self._rewind_to = snapshot(model) if k == 0 else None
        train(on_step=keep if k else None)
        if self._rewind_to is None:
            raise UserError(
                f"method.rewind_step={k} was never reached: the first training ran fewer steps, or resumed from a "
                "checkpoint past it; choose a smaller rewind_step, or delete the run's checkpoints/search folder"
            )

    def _restart(self, model) -> None:
        """Every weight back to θk (nothing to rewind when no search ran: a reload, a count)."""
        if self._rewind_to is not None:
            rewind(model, self._rewind_to)
