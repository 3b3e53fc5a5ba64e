"""Movement pruning: keep the weights that move away from zero while fine-tuning.

Sanh, Wolf & Rush, NeurIPS 2020, "Movement Pruning: Adaptive Sparsity by Fine-Tuning", §4. Every
masked weight matrix W gets importance scores S of its shape, learned with W: the layer computes
a = (W ⊙ M) x with M = Top_v(S), and the straight-through estimator gives

    ∂L/∂S_ij = ∂L/∂a_i · W_ij x_j = (∂L/∂W' ⊙ W)_ij,     so   S^(T) = −α_S Σ_{t<T} (∂L/∂W_ij)^(t) W_ij^(t):

a score grows when W_ij and its gradient have opposite signs, i.e. when the weight moves away from
zero (the survey, seed 004: "keep weights that move the most away from 0", where magnitude
pruning keeps those far from 0). ``method.variant``:

* ``hard`` (movement pruning): M keeps, in each matrix, the round(v · n) highest scores (the
  authors' ``TopKBinarizer``: int(v · n), the same but for one entry's rounding; ties to the
  earlier entry); v = 1 − ``method.sparsity`` in the end.
* ``soft`` (soft movement pruning): M = 1[σ(S) > τ] (the paper's S > τ', τ' = logit τ; the authors'
  ``ThresholdBinarizer`` with ``sigmoid=True``, keeping at least 0.5% + 1 entry of each matrix,
  its highest scores, as it does), τ = ``method.threshold``, and the loss gains the regulariser
  λ_mvp Σ σ(S) that pushes the scores down; the sparsity follows from λ (``method.regularization``)
  and is measured. As the authors' ``regularization(mode="l1")``, each matrix's Σσ(S) is divided by
  its entries and the matrices averaged, the form their λ values (400 for SQuAD) are set for.

**Schedule** (§5, after Zhu & Gupta 2018; the authors' ``schedule_threshold``): the remaining
fraction v (hard) or the threshold τ (soft) follows a cubic schedule over the run's T optimiser
steps, with t_i steps of warm-up (``method.warmup`` · T) and t_f steps of cool-down
(``method.cooldown`` · T):

    x(t) = x_i                                                          t ≤ t_i
    x(t) = x_f + (x_i − x_f) (1 − (t − t_i) / (T − t_i − t_f))³          t_i < t ≤ T − t_f
    x(t) = x_f                                                          t > T − t_f

with x_i = 1 (v: dense) or ``method.initial_threshold`` (τ), x_f the final value, and soft's
λ(t) = λ · τ(t)/τ_f. The authors give t_i, t_f as 1 and 2 × the learning rate's warm-up, 10% of
training in their GLUE and SQuAD runs: the defaults 0.1 and 0.2. Training forwards use x(t);
evaluations, and the mask the run saves, use x_f: every evaluation, so the best one the run keeps,
scores the model at its final sparsity (the authors evaluate at x(t); their final figures are at
x_f). The step comes from the run (``after_step``, ``resume_at``), T from its plan (``check_steps``).

**What trains** (their GLUE and SQuAD setup, ``masked_run_glue.py``): W and the scores (the scores at
``method.scores_lr``, 1e-2, their ``mask_scores_learning_rate``; W at the run's rate, 3e-5), every
other backbone weight (biases, norms, the pooler) and the head; the embeddings stay frozen at
their pre-trained values ("we freeze all the embeddings modules"). Scores start at 0 (their
``mask_init constant``, ``mask_scale 0``). Masked: the linear matrices of the transformer blocks
(``binary_mask.eligible_tensors``).

Counted: the kept weights and the other trained backbone weights are the method's parameters (the
scores are training-only: not kept, not counted); the masks are ``params.mask_bits``; the record's
``sparsity`` is measured on the merged weights. Before training, the soft variant's mask is dense,
so its ``params.trainable_method`` counts every matrix entry (its measured sparsity says how many
the run removed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from peftbench.errors import UserError
from peftbench.methods import register
from peftbench.methods.base import MethodConfig, require
from peftbench.methods.binary_mask import eligible_tensors
from peftbench.methods.delta import add_delta
from peftbench.methods.learned_mask import LearnedMaskMethod, ScoredMask, top_k

VARIANTS = ("hard", "soft")
LEAST_KEPT = 0.005  # the soft binariser keeps at least int(0.005 · n) + 1 entries of a matrix


@dataclass
class MovementPruningConfig(MethodConfig):
    variant: str = "hard"  # hard: top-v of S | soft: σ(S) > τ with the λ Σσ(S) regulariser
    sparsity: float = 0.9  # hard: the fraction of each matrix removed in the end (1 − v_f)
    threshold: float = 0.1  # soft: the final τ on σ(S)
    initial_threshold: float = 0.0  # soft: τ at the start (0: every weight kept)
    regularization: float = 400.0  # soft: the final λ_mvp
    scores_lr: float = 1e-2  # the scores' learning rate (the weights train at trainer.lr)
    warmup: float = 0.1  # t_i / T: steps at the initial value before pruning starts
    cooldown: float = 0.2  # t_f / T: steps at the final value at the end

    def check(self) -> None:
        require(self.variant in VARIANTS, f"method.variant must be one of {', '.join(VARIANTS)}, got '{self.variant}'")
        require(
            0 <= self.sparsity < 1,
            f"method.sparsity must be in [0, 1) (the fraction of weights removed), got {self.sparsity}; e.g. method.sparsity=0.9",
        )
        require(0 < self.threshold < 1, f"method.threshold must be in (0, 1) (a threshold on σ(S)), got {self.threshold}")
        require(
            0 <= self.initial_threshold <= self.threshold,
            f"method.initial_threshold must be in [0, method.threshold={self.threshold}], got {self.initial_threshold}",
        )
        require(self.regularization >= 0, f"method.regularization must be ≥ 0 (λ_mvp), got {self.regularization}")
        require(self.scores_lr > 0, f"method.scores_lr must be positive, got {self.scores_lr}")
        require(
            self.warmup >= 0 and self.cooldown >= 0 and self.warmup + self.cooldown < 1,
            f"method.warmup and method.cooldown must be ≥ 0 with warmup + cooldown < 1 (fractions of the run's steps), "
            f"got {self.warmup} and {self.cooldown}",
        )


def cubic(step: int, total: int, warmup_steps: int, cooldown_steps: int, initial: float, final: float) -> float:
    """The cubic schedule's value at ``step`` (optimiser steps done), Zhu & Gupta's form."""
    if step <= warmup_steps:
        return initial
    if step > total - cooldown_steps:
        return final
    progress = (step - warmup_steps) / (total - warmup_steps - cooldown_steps)
    return final + (initial - final) * (1 - progress) ** 3


class Clock:
    """The run's position in its schedule, shared by the method and its masks."""

    def __init__(self, initial: float, final: float, warmup: float, cooldown: float):
        self.initial, self.final, self.warmup, self.cooldown = initial, final, warmup, cooldown
        self.total: int | None = None  # the run's optimiser steps; None (no run planned): at the final value
        self.step = 0

    def steps(self, total: int) -> tuple[int, int]:
        return round(self.warmup * total), round(self.cooldown * total)

    def value(self) -> float:
        if self.total is None:
            return self.final
        return cubic(self.step, self.total, *self.steps(self.total), self.initial, self.final)


def above_threshold(scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """1[σ(S) > τ], or the int(0.005 · n) + 1 highest scores where fewer pass."""
    mask = torch.sigmoid(scores.detach()) > threshold
    least = int(LEAST_KEPT * scores.numel()) + 1
    if mask.is_meta:  # counting from configs: no entry to read
        return mask
    return mask if int(mask.sum()) >= least else top_k(scores, least)


class MovementMask(ScoredMask):
    """M from the scores at the clock's value (training) or its final value (delivered)."""

    def __init__(self, scores: torch.Tensor, clock: Clock, soft: bool, zeros: int):
        super().__init__(scores, zeros)
        self.clock, self.soft = clock, soft

    def at(self, value: float) -> torch.Tensor:
        if self.soft:
            return above_threshold(self.scores, value)
        return top_k(self.scores, round(value * self.scores.numel()))

    def delivered(self) -> torch.Tensor:
        return self.at(self.clock.final)

    def training_mask(self) -> torch.Tensor:
        return self.at(self.clock.value())


@register
class MovementPruning(LearnedMaskMethod):
    name = "movement_pruning"
    Config = MovementPruningConfig

    def __init__(self, config: MovementPruningConfig):
        super().__init__(config)
        c = config
        soft = c.variant == "soft"
        self.clock = Clock(c.initial_threshold if soft else 1.0, c.threshold if soft else 1 - c.sparsity, c.warmup, c.cooldown)
        self.masks: list[MovementMask] = []

    def check_steps(self, total: int) -> None:
        warmup, cooldown = self.clock.steps(total)
        if total - warmup - cooldown <= 0:
            raise UserError(
                f"method.warmup={self.config.warmup} and method.cooldown={self.config.cooldown} leave none of the run's "
                f"{total} optimiser steps to prune in; train longer or lower them"
            )
        self.clock.total = total

    def after_step(self, model, step: int) -> None:
        self.clock.step = step

    def resume_at(self, model, step: int) -> None:
        self.clock.step = step

    def apply(self, model, anatomy) -> None:
        soft = self.config.variant == "soft"
        self.masks = []
        for _, param, owners in eligible_tensors(model):
            removed = 0 if soft else param.numel() - round(self.clock.final * param.numel())
            mask = MovementMask(torch.zeros(param.shape, dtype=torch.float32, device=param.device), self.clock, soft, removed)
            add_delta(owners, mask)
            self.masks.append(mask)
        for name in self.parameter_names(model):
            model.get_parameter(name).requires_grad_(True)

    def parameter_names(self, model) -> list[str]:
        """Every backbone parameter but the embeddings' (and the scores)."""
        from peftbench.models.anatomy import anatomy_of, head_parameter_names

        embeddings = model.base_model.get_submodule(anatomy_of(model.config.model_type).embedding)
        frozen = {id(p) for p in embeddings.parameters()}
        frozen |= {id(m.weight) for m in model.base_model.modules() if isinstance(m, nn.Embedding)}
        outside = set(head_parameter_names(model)) | set(self.training_only(model))
        return [name for name, p in model.named_parameters() if name not in outside and id(p) not in frozen]

    def learning_rates(self, model) -> dict[str, float]:
        return {name: self.config.scores_lr for name in self.training_only(model)}

    def penalty(self, model):
        """Soft: λ(t) · mean over the matrices of Σσ(S)/n, λ(t) = λ · τ(t)/τ_f."""
        if self.config.variant != "soft" or not self.masks:
            return None
        mean = sum(torch.sigmoid(m.scores).sum() / m.scores.numel() for m in self.masks) / len(self.masks)
        return self.config.regularization * self.clock.value() / self.clock.final * mean
