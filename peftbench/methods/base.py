"""The protocol every PEFT method follows.

A method takes a frozen backbone and its anatomy, adds or selects trainable parameters, and says
which parameters are its own (what is saved, counted and exported). The classifier head is not
the method's: the run trains it with every method, as the papers do, and counts it apart.

To add a method: write one file in this folder with a ``Method`` subclass decorated by
``@register`` and a dataclass ``Config`` of its hyperparameters, and one YAML in ``conf/method/``.
"""

from __future__ import annotations

import contextlib

from dataclasses import dataclass
from typing import ClassVar, Optional

from peftbench.errors import UserError

FAMILIES = frozenset({"encoder", "decoder", "encoder_decoder"})


@dataclass
class MethodConfig:
    """Fields every method config has; a method's ``Config`` extends it.

    ``lr`` is the learning rate a method's YAML gives when its paper trains at a rate of its own
    (prompt tuning 0.3, IA3 3e-3): ``trainer.lr`` defaults to it, else to 1e-3
    (``conf/trainer/default.yaml``); ``trainer.lr=…`` on the command line overrides both.
    """

    name: str = ""
    lr: Optional[float] = None

    def check(self) -> None:
        """Refuse impossible values (raise UserError); called before any model loads."""


class Method:
    name: ClassVar[str]
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    families: ClassVar[frozenset[str]] = FAMILIES
    mergeable: ClassVar[bool] = False
    in_peft: ClassVar[bool] = False  # HF peft has this method: ``to_peft`` maps it (export)
    export_limitation: ClassVar[str | None] = None  # where peft's twin departs from the run, if anywhere
    generates: ClassVar[frozenset[str]] = FAMILIES  # the families it decodes text on (the generation format)
    trains: ClassVar[bool] = True  # False: the run evaluates without training (in-context learning)
    composable: ClassVar[bool] = True  # may be one part of a combination, method=[a,b] (methods/composed.py)
    fusion_stage: ClassVar[bool] = False  # its finished runs are adapters AdapterFusion can fuse
    sparse_difference: ClassVar[bool] = False  # its finished runs are sparse differences θ − θ0 sparse_sum can add
    multitask: ClassVar[bool] = True  # may train on several tasks at once, task=[a,b]
    tokenizer = None  # the run's tokenizer, set by ``attach`` (prompt tuning's class-label init reads it)

    def __init__(self, config: MethodConfig):
        self.config = config
        self.tasks: list[str] = []  # the run's task names, set before ``attach`` (Hyperformer embeds each)
        # the run's label words (its tasks' verbalisers, each once), set with ``tasks``: prompt
        # tuning's class-label initialisation embeds them
        self.class_labels: list[str] = []

    def select_task(self, name: str) -> None:
        """Called with the task's name before each training batch and each task's evaluation;
        a method conditioned on the task (Hyperformer) switches to it."""

    @property
    def searches(self) -> bool:
        """Whether the method picks its parameters by training first (``search``): LT-SFT's mask."""
        return False

    def search(self, model, head: list[str], train) -> None:
        """Called by the run before ``attach`` when ``searches``: ``train(lr=None, on_step=None)``
        runs the run's trainer over whatever parameters this marks trainable (``head`` names the
        task head's), at ``lr`` or the run's ``trainer.lr``, calling ``on_step(step)`` after each
        optimiser step; it may be called several times (rounds of iterative pruning), each call a
        fresh schedule and optimiser. ``train.gradients(on_batch)`` passes once over the training
        batches with no optimiser (evaluation mode), each batch's loss back-propagated before
        ``on_batch(batch)`` reads the gradients (head importance); ``train.evaluate()`` returns the
        run's evaluation of the model as it stands ({split: {metric: value}})."""
        raise NotImplementedError

    def prerequisites(self, runs, model: str, seed: int) -> list:
        """Finished runs this method builds on (AdapterFusion's stage-1 adapters), found in ``runs``
        (the results folder's complete runs: ``by_id``, ``newest(task=…, model=…)``, ``folder``)
        before any model loads (UserError when one is missing); their folders are part of the run's id."""
        return []

    def penalty(self, model):
        """A term the run adds to every training loss (AdapterFusion's ‖I − V‖²), or None."""
        return None

    def after_step(self, model, step: int) -> None:
        """Called by the run after each optimiser step (``step`` counted from 1), the gradients still
        there: AdaLoRA reallocates its rank budget (``peft_backed``)."""

    def resume_at(self, model, step: int) -> None:
        """Called by the run when training resumes from a checkpoint taken after optimiser step
        ``step``, before its first batch: a schedule over steps (movement pruning's sparsity) picks
        up where it was."""

    def check_steps(self, total: int) -> None:
        """Refuse a schedule that does not fit the run's ``total`` optimiser steps; called while
        planning, before any model loads (AdaLoRA's budget spans the run's steps)."""

    def learning_rates(self, model) -> dict[str, float]:
        """Trainable parameters that train at a rate of their own, by name (movement pruning's
        scores at 1e-2 beside weights at 3e-5); the others train at the run's ``trainer.lr``."""
        return {}

    def training_only(self, model) -> list[str]:
        """Names of trainable parameters that only steer training (a learned mask's real-valued
        scores): the optimiser updates them and checkpoints keep them, but the run's result is
        what they decided (the mask, saved as bits), so the run neither saves them in
        ``method.safetensors`` nor counts them among the model's parameters."""
        return []

    def save_alongside(self, model, head: list[str], folder) -> None:
        """Write into the run's ``folder``, beside its weights and with the best ones loaded, the method
        in another library's format (``method=peft``: peft's own adapter folder, ``head`` naming the
        task head's parameters to include)."""

    def reports(self, model, evaluate) -> dict:
        """Files the run writes beside its record after training, with the best weights loaded:
        {file name: JSON-able data} (AdapterFusion's attention over its adapters)."""
        return {}

    def evaluating(self, model):
        """The context the run evaluates in: nothing by default; SAID computes its projected
        weights once for all batches instead of at every forward."""
        return contextlib.nullcontext()

    def testing(self, model):
        """The context the run scores its held-out test splits in, once, with the best weights:
        nothing by default; MAD-X swaps the target language's adapter in for them."""
        return contextlib.nullcontext()

    def record_entry(self) -> dict:
        """Fields the method adds to the run's record (AdapterFusion: the fused runs)."""
        return {}

    def saved_buffers(self, model) -> dict:
        """Buffers the run saves beside the trained weights (a searched sparse mask); by name."""
        return {}

    def binary_masks(self, model) -> dict:
        """The binary masks the method keeps over backbone tensors (``methods/binary_mask``: a
        ``BinaryMask``, or a ``MaskCount`` where none holds the mask), by the name of the parameter
        each masks. Counting reports their ``entries`` as bits (``params.mask_bits``), not as
        parameters, and leaves the ``zeros`` they remove out of the trainable counts."""
        return {}

    def measured(self, model) -> dict:
        """Fields the run adds to its record, measured once training is over with the best weights
        loaded, after ``reports`` (a pruned model's real sparsity; a router's module usage)."""
        return {}

    def check_model(self, anatomy, arch_config) -> None:
        """Refuse a model this method is undefined for; called before weights load."""
        if anatomy.family not in self.families:
            raise UserError(
                f"method '{self.name}' is not defined for {anatomy.family} models; "
                f"it supports: {', '.join(sorted(self.families))}"
            )

    def preferred_format(self, task, family: str) -> str | None:
        """The format this method runs ``task`` in on ``family`` models where ``task.format`` is
        unset (P-tuning's template on an encoder: cloze); None: the family's own."""
        return None

    def check_format(self, task, format_name: str) -> None:
        """Refuse a format this method cannot run ``task`` in; called before weights load."""

    def check_tokenizer(self, load) -> None:
        """Refuse the run's tokenizer (UserError); called while planning with ``load``, which loads
        the tokenizer (no weights): call it only where the check needs to look."""

    def prompt_task(self, task, train_rows: list[dict], seed: int, tokenizer, max_length: int):
        """The task as the run's format should read it: itself, unless the method rewrites its
        prompts (in-context learning puts solved training rows before each one)."""
        return task

    def apply(self, model, anatomy) -> None:
        """Add or select this method's parameters and mark them trainable.

        The caller has frozen every parameter before and unfreezes the head after.
        """
        raise NotImplementedError

    def parameter_names(self, model) -> list[str]:
        """Names (in ``model.named_parameters()``) of this method's own parameters."""
        raise NotImplementedError

    def to_peft(self, model) -> tuple[object, dict]:
        """The equivalent HF peft config and this method's weights under peft's parameter names.

        Names are those of ``get_peft_model(base, config).named_parameters()`` for the adapter
        named ``default`` (``base_model.model.<path>.lora_A.default.weight``); the head is mapped
        by the exporter. Methods that peft does not have keep this refusal.
        """
        raise UserError(f"method '{self.name}' has no HF peft equivalent; export supports lora, ia3, prefix, prompt, ptuning")

    def merge(self, model) -> None:
        """Fold the method into the frozen weights: every wrapped layer of a mergeable method."""
        for layer in self._wrapped_layers(model):
            layer.merge()

    def unmerge(self, model) -> None:
        for layer in self._wrapped_layers(model):
            layer.unmerge()

    def _wrapped_layers(self, model) -> list:
        from peftbench.methods.wrapped import WrappedProjection

        if not self.mergeable:
            raise UserError(f"method '{self.name}' cannot be merged into the weights")
        return [module for module in model.modules() if isinstance(module, WrappedProjection)]


def require_roles(anatomy, roles, model_type: str, field: str, optional: tuple[str, ...] = ()) -> None:
    """Refuse ``roles`` (of the config ``field``) that the architecture lacks; roles starting with an
    ``optional`` prefix (IA3's ``xattn.*`` on a model without cross-attention) may be absent."""
    missing = sorted(role for role in set(roles) - anatomy.roles() if not role.startswith(optional))
    if missing:
        raise UserError(f"{field} {missing} do not exist in {model_type}; drop them")


def require(condition: bool, message: str) -> None:
    """Raise a UserError with ``message`` unless ``condition`` holds (for ``Config.check``)."""
    if not condition:
        raise UserError(message)


def attach(method: Method, model, anatomy, tokenizer=None, train_head: bool = True) -> list[str]:
    """Freeze ``model``, let ``method`` add or select its parameters, unfreeze the task head.

    The one way every run, count and test puts a method on a model; returns the head's names.
    ``train_head=False``: the model has no fresh head (a language model scoring its own tokens).
    """
    from peftbench.models.anatomy import head_parameter_names

    method.tokenizer = tokenizer
    model.requires_grad_(False)
    method.apply(model, anatomy)
    model.train(model.training)  # the modules the method added follow the model's mode (no dropout in eval)
    head = head_parameter_names(model) if train_head else []
    parameters = dict(model.named_parameters())
    for name in head:
        parameters[name].requires_grad_(True)
    return head
