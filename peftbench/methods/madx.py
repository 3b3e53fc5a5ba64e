"""MAD-X: a task adapter stacked on a frozen language adapter with its invertible adapter.

Pfeiffer, Vulić, Gurevych & Ruder, "MAD-X: An Adapter-Based Framework for Multi-Task
Cross-Lingual Transfer", EMNLP 2020 (arXiv 2005.00052): its "Language Adapters", "Task Adapters"
and "Invertible Adapters" and Fig. 1. Three steps, each a run:

1. language adaptation, once per language (the source, English, and each target) — a language
   adapter LA_l in every block (Pfeiffer et al.'s architecture, after the FFN: ``method=pfeiffer``)
   and an invertible adapter A_inv on the embeddings (``method.invertible=nice``:
   peftbench.methods.invertible; together AdapterHub's ``SeqBnInvConfig``), trained with the
   backbone and its MLM head frozen by masked language modelling on the language's raw text, as
   the paper does (``task=mlm task.language=<code>``: peftbench.tasks.mlm). Any finished run of
   ``method=pfeiffer method.invertible=nice`` serves, named by its run id (``peftbench list runs``);
2. task adaptation — this method: the source language's adapter and A_inv are loaded from that run
   (``method.language_run=<run id>``) and frozen, and a new task adapter TA (Pfeiffer's
   architecture, no invertible adapter) is stacked on LA in each block (TA reads LA's output) and
   trained with the task head on the source language's training data. As AdapterHub's
   ``Stack(lang, task)`` (``compose_stack``) — checked against it in
   tests/test_adapterhub_parity.py — with s the FFN sublayer's residual sum: in a post-LN block
   s' = s + LA(LN(s)) and the block returns LN(s' + TA(LN(s'))); in a pre-LN block
   s' = s + LA(s) and it returns s' + TA(s');
3. zero-shot transfer (the paper's "Task Adapters" and Fig. 1: at inference the source language
   adapter is replaced by the target language's, the task adapter kept) —
   ``method.target_language_run=<run id>`` names the
   target language's run of step 1. The run trains and chooses its weights with the source
   language adapter (a cross-lingual task's English train and dev splits:
   peftbench.tasks.cross_lingual); when it scores the target language's held-out test split, once
   (``testing``), the language adapter's and A_inv's tensors are overwritten in place by the
   target run's and put back afterwards. Nothing else changes: the task adapter, the head and the
   backbone are the same tensors. Without it the test split is scored with the source adapter.

The task adapter sits in every block the language adapter does (the language run's
``drop_layers``); its size, activation and initialisation are this method's (AdapterHub's Pfeiffer
defaults, as ``method=pfeiffer``). The target run's adapter must have the source's shape and
function (the same bottleneck, ``drop_layers``, ``train_layer_norms`` and activation), be of the
same model, and where its run names a language (``task.language``: an ``mlm`` run), be of the
task's target language; otherwise it is refused while planning, in one line, as is a target run
on a task without a target language's test split. Trained and counted: the task adapter (and
the head). The run saves the frozen source language adapter beside it, so its folder alone
restores what was trained and selected (the test split's scores also need the target run), and
its record names both language runs (``language_run``, ``target_language_run``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from peftbench.errors import UserError
from peftbench.methods import build_method, register
from peftbench.methods.adapters import STACKED, Pfeiffer, PfeifferConfig
from peftbench.methods.base import Method, MethodConfig, require

LANGUAGE_METHOD = "pfeiffer"  # the language adapter's architecture (MAD-X: Pfeiffer et al.'s)
SOURCE, TARGET = "language_run", "target_language_run"  # the config fields naming the two language runs
SWAPPABLE = ("drop_layers", "train_layer_norms", "activation", "invertible")  # with the bottleneck: the same adapter


@dataclass
class MadxConfig(MethodConfig):
    language_run: str = ""
    target_language_run: str = ""  # empty: the test split is scored with the source language adapter
    bottleneck: Optional[int] = None
    reduction_factor: Optional[float] = 16.0
    activation: str = "relu"
    init: str = "bert"

    def check(self) -> None:
        require(bool(self.language_run), "name the language adapter's run: method.language_run=<run id> (a complete "
                                         "run of method=pfeiffer method.invertible=nice; peftbench list runs)")  # fmt: skip
        self.task_adapter(drop_layers=0).check()

    def task_adapter(self, drop_layers: int) -> PfeifferConfig:
        """The task adapter's configuration: Pfeiffer's, no invertible adapter, in the language adapter's blocks."""
        return PfeifferConfig(name="pfeiffer", bottleneck=self.bottleneck, reduction_factor=self.reduction_factor,
                              activation=self.activation, init=self.init, drop_layers=drop_layers)  # fmt: skip


@register
class Madx(Method):
    name = "madx"
    Config = MadxConfig
    composable = False  # it builds on a finished run

    def __init__(self, config: MadxConfig):
        super().__init__(config)
        self.language: dict | None = None  # the language run's record (set by ``prerequisites``)
        self.language_dir: Path | None = None
        self.target: dict | None = None  # the target language run's record, where one is named
        self.target_dir: Path | None = None
        self._target_languages: set[str] = set()  # the languages of the run's test splits (``check_format``)
        self._target_state: dict | None = None  # the target run's language-adapter tensors (``apply``)

    def check_model(self, anatomy, arch_config) -> None:
        """The family and the task adapter's fit here; the language adapter's once ``prerequisites`` found it."""
        super().check_model(anatomy, arch_config)
        Pfeiffer(self.config.task_adapter(drop_layers=0)).check_model(anatomy, arch_config)
        self._model = (anatomy, arch_config)

    def check_format(self, task, format_name: str) -> None:
        """With a target language run, the task must score a target language's test split: a
        cross-lingual task (``task.language``)."""
        language = dict(task.options).get("language")
        if self.config.target_language_run and (language is None or not task.test_splits):
            raise UserError(f"method.{TARGET}: task {task.name} has no target language whose test split the target "
                            "language adapter would score; use a cross-lingual task (xnli, wikiann with task.language=…) "
                            f"or drop method.{TARGET}")  # fmt: skip
        if language is not None:
            self._target_languages.add(language)

    def prerequisites(self, runs, model: str, seed: int) -> list[Path]:
        """Find the language run in ``runs`` (and the target language run, where named): complete,
        of this model, a Pfeiffer adapter with an invertible adapter; the target's of the same
        shape as the source's and of the task's language (UserError otherwise)."""
        self.language = _language_record(runs, SOURCE, self.config.language_run, model)
        self.language_dir = runs.folder(self.language)
        self._language_method().check_model(*self._model)
        if not self.config.target_language_run:
            return [self.language_dir]
        self.target = _language_record(runs, TARGET, self.config.target_language_run, model)
        self.target_dir = runs.folder(self.target)
        self._check_swappable()
        return [self.language_dir, self.target_dir]

    def _check_swappable(self) -> None:
        """The target run's adapter is the source's but for its weights, and adapted the task's target language."""
        anatomy, arch_config = self._model
        width = getattr(arch_config, anatomy.hidden_size_key)

        def adapter(record: dict) -> dict:
            config = _method(record).config
            return {"bottleneck": config.size(width), **{name: getattr(config, name) for name in SWAPPABLE}}

        source, target = adapter(self.language), adapter(self.target)
        field = next((name for name in source if source[name] != target[name]), None)
        if field is not None:
            raise UserError(f"method.{TARGET}: run '{self.target['run_id']}' has a language adapter with {field} "
                            f"{target[field]}, run '{self.language['run_id']}' one with {source[field]}; train the "
                            "target language's adapter with the source's method options")  # fmt: skip
        language = self.target["config"]["task"].get("language")
        if language is not None and self._target_languages - {language}:
            wanted = ", ".join(sorted(self._target_languages))
            raise UserError(f"method.{TARGET}: run '{self.target['run_id']}' adapted to {language}, but the test split "
                            f"is {wanted}; name a language run of task.language={wanted}")  # fmt: skip

    def _language_method(self) -> Pfeiffer:
        return _method(self.language) if self.language else build_method({"name": LANGUAGE_METHOD, "invertible": "nice", "lr": None})

    def apply(self, model, anatomy) -> None:
        language = self._language_method()
        language.apply(model, anatomy)
        self._language_names = language.parameter_names(model)
        if self.language_dir is not None:  # counting from configs has no run to load
            model.load_state_dict(_saved(self.language, self.language_dir, self._language_names), strict=False)
        if self.target_dir is not None:
            self._target_state = _saved(self.target, self.target_dir, self._language_names)
        model.requires_grad_(False)
        Pfeiffer(self.config.task_adapter(language.config.drop_layers)).stack(model, anatomy)

    @contextlib.contextmanager
    def testing(self, model):
        """MAD-X's zero-shot transfer: the target language's adapter and invertible adapter copied
        over the source's tensors while the held-out test split is scored, the source's put back
        after; every other tensor (the task adapter, the head, the backbone) untouched."""
        if self._target_state is None:
            yield
            return
        import torch

        parameters = dict(model.named_parameters())
        source = {name: parameters[name].detach().clone() for name in self._language_names}
        with torch.no_grad():
            for name, tensor in self._target_state.items():
                parameters[name].copy_(tensor)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, tensor in source.items():
                    parameters[name].copy_(tensor)

    def parameter_names(self, model) -> list[str]:
        return [name for name, _ in model.named_parameters() if f".{STACKED}." in name]

    def saved_buffers(self, model) -> dict:
        """The frozen language adapter and invertible adapter: the run's folder restores it alone."""
        parameters = dict(model.named_parameters())
        return {name: parameters[name].detach().to("cpu", copy=True).contiguous() for name in self._language_names}

    def record_entry(self) -> dict:
        """The language runs the run stacks on (and swaps in for the test split, where named)."""
        named = ((SOURCE, self.language), (TARGET, self.target))
        return {field: {"run_id": record["run_id"], "task": record["task"]} for field, record in named if record}


def _language_record(runs, field: str, run: str, model: str) -> dict:
    """The complete run ``run`` in ``runs`` as a language adapter of ``model`` (UserError naming
    ``method.<field>`` otherwise)."""
    record = runs.by_id(run)
    if record is None:
        state = "is not complete; finish it first (run its command again)" if (runs.root / run).is_dir() else \
            "does not exist; list the run ids with peftbench list runs"  # fmt: skip
        raise UserError(f"method.{field}: run '{run}' in {runs.root} {state}")
    if record["method"] != LANGUAGE_METHOD or record["method_config"].get("invertible", "none") == "none":
        what = record["method"] + (" run without an invertible adapter" if record["method"] == LANGUAGE_METHOD else " run")
        raise UserError(f"method.{field}: run '{run}' is a {what}; MAD-X stacks on a language adapter: "
                        "a run of method=pfeiffer method.invertible=nice")  # fmt: skip
    if record["model"] != model:
        raise UserError(f"method.{field}: run '{run}' adapted {record['model']}, not {model}; "
                        f"name a language run of model={model}")  # fmt: skip
    return record


def _method(record: dict) -> Pfeiffer:
    """The language adapter method a language run trained, as its record configures it."""
    return build_method({**record["method_config"], "lr": None})


def _saved(record: dict, folder: Path, names: list[str]) -> dict:
    """The tensors ``names`` of the language run ``record`` (in ``folder``), as it saved them."""
    from safetensors.torch import load_file

    state = load_file(str(folder / "method.safetensors"))
    missing = [name for name in names if name not in state]
    if missing:
        raise UserError(f"run {record['run_id']} saved no {missing[0]} ({len(missing)} of its adapter's "
                        "tensors missing); train the language run again")  # fmt: skip
    return {name: state[name] for name in names}
