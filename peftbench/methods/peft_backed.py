"""Any HF peft method through peftbench's pipeline: ``method=peft method.peft_type=… method.config={…}``.

peft (huggingface/peft) implements some forty PEFT methods; this runs any of its tuners, and its
prompt tuning, P-tuning and prefix tuning, under peftbench's trainer, data, metrics and records, so
that they compare with the seed methods on the same footing (DESIGN §1, "fairness").

* ``peft_type``: one of peft's ``PeftType`` names (``LORA``, ``VERA``, ``BOFT``…);
* ``config``: fields of that type's peft config (``LoraConfig``, ``VeraConfig``…), peft's defaults
  for the rest; an unknown field, or a value peft refuses, is one line before any model loads;
* ``targets`` (and ``feedforward``, IA3's ``feedforward_modules``): peftbench's roles
  (``attn.q``, ``ffn.in``…) mapped through the anatomy to the modules of the model at hand, every
  block's, as full paths (peft matches a bare name by suffix, and BERT's ``output.dense`` would
  also hit ``attention.output.dense``). A role the model lacks is refused before weights load.
  ``targets: null`` keeps peft's own per-architecture default (its ``target_module_mapping``),
  as peft's benchmark configs do (LN tuning on Llama then includes the final norm). A role that
  is a slice of a fused projection (GPT-2's q in ``c_attn``) adapts the whole projection, as
  peft can only adapt modules.

Tuners are injected by peft itself (``get_peft_model`` on the backbone, with no task type: the
layers are replaced in place and the run keeps calling the transformers model, its head and the
formats as for any method; the ``PeftModel`` is kept beside it for peft's own save and AdaLoRA's
schedule). Prompt learning uses peft's modules (``PromptEmbedding``, ``PromptEncoder``,
``PrefixEncoder``, initialised by peft) placed as peftbench places its own
(``methods/peft_prompt.py``).

What a run keeps: the trained parameters in ``method.safetensors`` as for every method, and
``peft/`` beside it, written by peft's ``save_pretrained`` (``adapter_config.json`` +
``adapter_model.safetensors``) with the task head as ``modules_to_save``, which
``PeftModel.from_pretrained(base, RUN/peft)`` loads to the run's outputs. Its parameter count is
peft's: the parameters peft marks trainable (its ``get_nb_trainable_parameters``), counted on the
meta device by ``peftbench params``; data-dependent inits (PiSSA's SVD, OLoRA's QR) are swapped for
peft's default there, as counts do not depend on them. Merging uses peft's ``merge``/``unmerge``
of each adapted layer, for the tuners that have them.

Shortcuts (``conf/method/<name>.yaml``, each ``name: peft`` with the paper's defaults):

==================  =============  ================================================================
shortcut            peft_type      paper (defaults in the YAML)
==================  =============  ================================================================
dora                LORA           Liu et al., ICML 2024, arXiv 2402.09353 (``use_dora``)
rslora              LORA           Kalajdzievski, arXiv 2312.03732 (``use_rslora``: α/√r)
pissa               LORA           Meng et al., NeurIPS 2024, arXiv 2404.02948 (SVD init)
olora               LORA           Büyükakyüz, arXiv 2406.01775 (QR init)
adalora             ADALORA        Zhang et al., ICLR 2023, arXiv 2303.10512 (budget schedule)
vera                VERA           Kopiczko et al., ICLR 2024, arXiv 2310.11454
loha                LOHA           Hyeon-Woo et al., ICLR 2022 (FedPara), arXiv 2108.06098
lokr                LOKR           Edalati et al. (KronA), arXiv 2212.10650; LyCORIS arXiv 2309.14859
oft                 OFT            Qiu et al., NeurIPS 2023, arXiv 2306.07280
boft                BOFT           Liu et al., ICLR 2024, arXiv 2311.06243
fourierft           FOURIERFT      Gao et al., ICML 2024, arXiv 2405.03003
ln_tuning           LN_TUNING      Qi et al., arXiv 2211.08682
vblora              VBLORA         Li et al., NeurIPS 2024, arXiv 2405.15179
hra                 HRA            Yuan et al., NeurIPS 2024, arXiv 2405.17484
randlora            RANDLORA       Albert et al., ICLR 2025, arXiv 2502.00987
peft_prompt_tuning  PROMPT_TUNING  Lester et al., EMNLP 2021: peft's twin of ``method=prompt``
peft_prefix_tuning  PREFIX_TUNING  Li & Liang, ACL 2021: peft's twin of ``method=prefix``
==================  =============  ================================================================

AdaLoRA's rank allocation runs after every optimiser step (``after_step``: peft's
``update_and_allocate(step)``, the step counted from 1 as in peft's benchmark script, with the
gradients still there), its ``total_step`` is the run's optimiser steps unless given, and its
orthogonal regulariser is the run's loss penalty (``penalty``). A resumed run restarts the
allocator's importance averages (they are not in the checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from peftbench.errors import UserError
from peftbench.methods import peft_prompt, register, soft_prompt
from peftbench.methods.base import Method, MethodConfig, require, require_roles
from peftbench.models.anatomy import ROLES, Part, head_parameter_names

FOLDER = "peft"  # peft's adapter folder in a run's folder
PROMPT_TYPES = peft_prompt.TYPES
NOT_HERE = {  # peft types method=peft cannot run, and why
    "XLORA": "it mixes several trained LoRA adapters",
    "POLY": "it needs task ids in every forward",
    "ADAPTION_PROMPT": "it rewrites Llama's attention, not a module peft can inject alone",
    "MULTITASK_PROMPT_TUNING": "it needs task ids in every forward",
    "CPT": "it needs token-type masks from its own data collator",
}
# config fields the run sets: the roles' modules, the head, and what peft fills from the model
SET_BY_RUN = {
    "target_modules": "give roles in method.targets", "feedforward_modules": "give roles in method.feedforward",
    "peft_type": "use method.peft_type", "task_type": "the run's format sets it",
    "modules_to_save": "the task head is saved with every method", "inference_mode": "the run trains",
    "base_model_name_or_path": "the model config names the backbone", "revision": "the model config names it",
    "num_layers": "taken from the model", "token_dim": "taken from the model",
    "num_attention_heads": "taken from the model", "num_transformer_submodules": "taken from the model",
}  # fmt: skip
# LoRA inits that read W but train A and B as the default init does: swapped for it on the meta device
DATA_DEPENDENT_INITS = ("pissa", "olora", "corda", "eva", "loftq", "lora_ga")
MUTATING_INITS = ("pissa", "olora", "corda", "lora_ga")  # they also change W: peft saves ΔW as a LoRA
TASK_TYPES = {"classification": "SEQ_CLS", "rank_classification": "CAUSAL_LM", "generation": "CAUSAL_LM"}


@dataclass
class PeftMethodConfig(MethodConfig):
    peft_type: str = "LORA"
    targets: Optional[list[str]] = None  # roles; None: peft's default modules for the architecture
    feedforward: Optional[list[str]] = None  # roles whose input is scaled (IA3's feedforward_modules)
    config: dict[str, Any] = field(default_factory=dict)  # fields of peft's config for peft_type

    def check(self) -> None:
        config_class(self.peft_type)
        for key in ("targets", "feedforward"):
            roles = getattr(self, key)
            unknown = sorted(set(roles or ()) - set(ROLES))
            require(not unknown, f"method.{key} has unknown roles {unknown}; known: {', '.join(ROLES)}")
        prompt = self.peft_type in PROMPT_TYPES
        require(not (prompt and (self.targets or self.feedforward)),
                f"method.targets: {self.peft_type} adapts no modules; drop method.targets and method.feedforward")  # fmt: skip
        require(self.targets is not None or not self.feedforward,
                "method.feedforward needs method.targets too (feedforward roles are targets peft scales at the input)")  # fmt: skip
        for key, value in self.config.items():
            require(key not in SET_BY_RUN, f"method.config.{key}: {SET_BY_RUN.get(key)}; drop it from method.config")
        build_config(self, total_steps=None)


def config_class(peft_type: str):
    """peft's config class for ``peft_type`` (UserError for an unknown or unsupported type)."""
    from peft import PeftType
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING

    if peft_type not in PeftType.__members__:
        raise UserError(f"method.peft_type '{peft_type}' is not a peft type; known: {', '.join(PeftType.__members__)}")
    if peft_type in NOT_HERE:
        raise UserError(f"method.peft_type {peft_type} cannot run through method=peft ({NOT_HERE[peft_type]})")
    if peft_type not in PEFT_TYPE_TO_TUNER_MAPPING and peft_type not in PROMPT_TYPES:
        raise UserError(f"method.peft_type {peft_type} is neither a peft tuner nor PROMPT_TUNING, P_TUNING, PREFIX_TUNING")
    return PEFT_TYPE_TO_CONFIG_MAPPING[peft_type]


def build_config(c: PeftMethodConfig, total_steps: int | None, **run_fields):
    """peft's config object for ``c`` with the run's fields (target modules, task type); peft's own
    checks turned into one line. AdaLoRA's ``total_step`` defaults to ``total_steps``; for a check
    before the run's steps are known, to the fewest its schedule allows."""
    cls = config_class(c.peft_type)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(c.config) - names)
    if unknown:
        fields = ", ".join(sorted(names - set(SET_BY_RUN) - {"auto_mapping"}))
        raise UserError(f"method.config has fields {unknown} that peft's {cls.__name__} lacks; its fields: {fields}")
    values = {**c.config, **run_fields}
    if "total_step" in names and values.get("total_step") is None:
        schedule = values.get("tinit", 0) + values.get("tfinal", 0) + 1
        values["total_step"] = total_steps if total_steps is not None else schedule
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. AdaLoRA's note that r is unused
            return cls(**values)
    except (ValueError, TypeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        where = " with the run's optimiser steps" if total_steps is not None else ""
        raise UserError(f"method.config: peft's {cls.__name__} refuses it{where}: {first}") from None


@register
class PeftMethod(Method):
    name = "peft"
    Config = PeftMethodConfig
    in_peft = True
    composable = False  # peft's injection keeps its own bookkeeping on the model (model.peft_config)

    def __init__(self, config: PeftMethodConfig):
        super().__init__(config)
        self.prompt = config.peft_type in PROMPT_TYPES
        self.mergeable = not self.prompt
        if self.prompt:
            self.families = frozenset({"encoder", "decoder"})
            self.generates = frozenset({"decoder"}) if config.peft_type == "PREFIX_TUNING" else frozenset()
            if config.peft_type != "PREFIX_TUNING":
                self.export_limitation = soft_prompt.EXPORT_LIMITATION
        self.task_type = None  # peft's task type of the run's format (prompt learning saves it)
        self.total_steps = None  # the run's optimiser steps (AdaLoRA's budget schedule spans them)
        self.peft_model = None  # tuners: peft's PeftModel around the adapted backbone
        self.peft_config = None  # the peft config applied (prompt learning: completed from the model)
        self._initial = None  # PiSSA/OLoRA: the adapter as initialised, to save ΔW as a LoRA

    # -- checks before weights load ---------------------------------------------------------

    def check_model(self, anatomy, arch_config) -> None:
        super().check_model(anatomy, arch_config)
        c = self.config
        roles = [*(c.targets or ()), *(c.feedforward or ())]
        require_roles(anatomy, roles, arch_config.model_type, "method.targets")
        if c.targets is None and not self.prompt:
            _check_default_modules(c, arch_config.model_type)

    def check_format(self, task, format_name: str) -> None:
        self.task_type = TASK_TYPES.get(format_name)
        if self.prompt and self.task_type is None:
            raise UserError(
                f"peft's prompt learning has no task type for the {format_name} format; "
                "run task.format=classification, or use method=prompt / method=prefix"
            )

    def check_steps(self, total: int) -> None:
        """AdaLoRA's schedule (``tinit`` + ``tfinal`` < ``total_step``) against the run's steps."""
        self.total_steps = total
        if "total_step" in {f.name for f in dataclasses.fields(config_class(self.config.peft_type))}:
            build_config(self.config, total)

    # -- on the model -------------------------------------------------------------------------

    def apply(self, model, anatomy) -> None:
        if self.prompt:
            self.peft_config = peft_prompt.place(model, anatomy, self._config(), self.tokenizer)
            return
        from peft import get_peft_model

        meta = next(model.parameters()).device.type == "meta"
        c = self.config
        config = self._config(target_modules=self._modules(model, anatomy, [*(c.targets or ()), *(c.feedforward or ())]),
                              feedforward_modules=self._modules(model, anatomy, self.config.feedforward),
                              meta=meta)  # fmt: skip
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")  # GPT-2's Conv1D: peft sets it
                warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecations peft still calls
                self.peft_model = get_peft_model(model, config)
        except ValueError as error:
            raise UserError(f"peft cannot apply {self.config.peft_type} to this model: {str(error).splitlines()[0]}") from None
        except (NotImplementedError, RuntimeError):
            if not meta:
                raise
            raise UserError(f"peft's {self.config.peft_type} initialisation reads the weights, which counting on the meta "
                            "device does not have; count a run's parameters instead (its record's params)") from None
        self.peft_config = config
        _freeze_settings(model)
        if str(config.init_lora_weights if hasattr(config, "init_lora_weights") else "").lower().startswith(MUTATING_INITS):
            self._initial = {n: p.detach().clone() for n, p in self.peft_model.named_parameters() if p.requires_grad}

    def _config(self, meta: bool = False, **modules):
        fields = {k: v for k, v in modules.items() if v}
        if meta and str(self.config.config.get("init_lora_weights", "")).lower().startswith(DATA_DEPENDENT_INITS):
            fields["init_lora_weights"] = True  # no weights to decompose on the meta device; counts are the same
        if self.prompt:
            fields["task_type"] = self.task_type
        return build_config(self.config, self.total_steps, **fields)

    def _modules(self, model, anatomy, roles) -> list[str] | None:
        """The full module paths of ``roles`` in ``model`` (each once); None for no roles."""
        from peftbench.models.anatomy import locate

        if not roles:
            return None
        paths, fused = {}, set()
        for role in roles:
            for path, part in locate(model, anatomy, role):
                paths[path] = None
                if isinstance(part, Part):
                    fused.add(role)
        if fused:
            warnings.warn(f"method.targets {sorted(fused)} are slices of fused projections; peft adapts the whole "
                          "projection", stacklevel=2)  # fmt: skip
        return list(paths)

    def parameter_names(self, model) -> list[str]:
        """The parameters peft trains (its ``requires_grad`` marks), the task head's left out."""
        head = set(head_parameter_names(model))
        return [n for n, p in model.named_parameters() if p.requires_grad and n not in head]

    def penalty(self, model):
        """AdaLoRA's orthogonal regulariser, as peft's ``AdaLoraModel.forward`` adds it to the loss:
        γ · mean over P (A) and Q (B) of ‖PPᵀ − I‖_F and ‖QᵀQ − I‖_F (Zhang et al. 2023, Eq. 4)."""
        if self.config.peft_type != "ADALORA":
            return None
        import torch

        terms = []
        for name, param in model.named_parameters():
            if (".lora_A." in name or ".lora_B." in name) and param.requires_grad:
                covariance = param @ param.T if ".lora_A." in name else param.T @ param
                eye = torch.eye(*covariance.shape, dtype=covariance.dtype, device=covariance.device)
                terms.append(torch.norm(covariance - eye, p="fro"))
        return self.peft_config.orth_reg_weight * torch.stack(terms).mean() if terms else None

    def after_step(self, model, step: int) -> None:
        """AdaLoRA: importance scores, budget and rank masks after optimiser step ``step`` (from 1)."""
        if self.config.peft_type == "ADALORA":
            self.peft_model.base_model.update_and_allocate(step)

    def merge(self, model) -> None:
        self._each_layer(model, "merge")

    def unmerge(self, model) -> None:
        self._each_layer(model, "unmerge")

    def _each_layer(self, model, action: str) -> None:
        from peft.tuners.tuners_utils import BaseTunerLayer

        if not self.mergeable:
            raise UserError(f"{self.config.peft_type} cannot be merged into the weights")
        try:
            for module in model.modules():
                if isinstance(module, BaseTunerLayer):
                    getattr(module, action)()
        except NotImplementedError:
            raise UserError(f"peft cannot {action} {self.config.peft_type} layers") from None

    # -- saving in peft's format -----------------------------------------------------------------

    def save_alongside(self, model, head: list[str], folder: Path) -> None:
        """``folder/peft``: peft's adapter folder for the model's current weights, head included
        (written whole in a temporary folder, then renamed into place)."""
        staging = Path(tempfile.mkdtemp(prefix=f".{FOLDER}.", dir=folder))
        try:
            if self.prompt:
                peft_prompt.save(model, self.peft_config, staging)
            else:
                self._save_tuner(model, staging)
            values = dict(model.named_parameters())
            prefix = "base_model." if self.prompt else "base_model.model."
            _add_head(staging, {f"{prefix}{name}": values[name].detach() for name in head})
            target = folder / FOLDER
            shutil.rmtree(target, ignore_errors=True)  # a finish that crashed before its record
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _save_tuner(self, model, out: Path) -> None:
        if self.config.peft_type == "ADALORA":
            _keep_contributing_ranks(model, self.peft_config)
        if self._initial is None:
            self.peft_model.save_pretrained(str(out))
            return
        with tempfile.TemporaryDirectory() as scratch:  # peft loads the initial adapter back by folder name
            initial = os.path.join(scratch, "initial_adapter")
            self.peft_model.save_pretrained(initial, state_dict=self._initial)
            self.peft_model.save_pretrained(str(out), path_initial_model_for_weight_conversion=initial)

    def to_peft(self, model) -> tuple[object, dict]:
        raise UserError("a method=peft run keeps peft's own adapter folder, RUN/peft; export copies it")


def _check_default_modules(c: PeftMethodConfig, model_type: str) -> None:
    """``targets: null``: peft must have default modules of ``c.peft_type`` for ``model_type`` (asked
    as its injection asks, ``_prepare_adapter_config``, with the architecture's name alone)."""
    import inspect
    from types import SimpleNamespace

    from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING

    tuner = PEFT_TYPE_TO_TUNER_MAPPING[c.peft_type]
    prepare = inspect.getattr_static(tuner, "_prepare_adapter_config")
    try:
        owner = () if isinstance(prepare, staticmethod) else (SimpleNamespace(target_module_mapping=tuner.target_module_mapping),)
        tuner._prepare_adapter_config(*owner, build_config(c, total_steps=None), {"model_type": model_type})
    except ValueError:
        raise UserError(f"peft has no default {c.peft_type} modules for {model_type}; name them: "
                        "method.targets=[attn.q,attn.v]") from None
    except AttributeError:  # a tuner whose defaults need more than the architecture's name: injection decides
        pass


def _freeze_settings(model) -> None:
    """Hold peft's per-adapter settings (``other_param_names``: AdaLoRA's ``ranknum``) frozen.

    peft creates them with ``requires_grad=False`` but moving them to the base layer's device re-wraps
    them as trainable parameters (peft 0.21 ``_move_adapter_to_device_of_base_layer``); they are
    constants (AdaLoRA keeps ``ranknum`` = r), never trained, and peft's published counts leave them out.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            for name in module.other_param_names:
                settings = getattr(module, name, None)
                if hasattr(settings, "parameters"):
                    settings.requires_grad_(False)


def _keep_contributing_ranks(model, config) -> None:
    """AdaLoRA's saved ranks: peft's last allocation, and every rank whose E entry is not zero in the
    weights being saved (the best evaluation's may precede the last allocation), so that the saved
    adapter gives the run's outputs; peft resizes the saved matrices to these ranks."""
    if not config.rank_pattern:
        return
    values = dict(model.named_parameters())
    for name, keep in config.rank_pattern.items():
        entries = values[name].detach().view(-1).ne(0).tolist()
        config.rank_pattern[name] = [bool(k) or e for k, e in zip(keep, entries)]


def _add_head(folder: Path, head: dict) -> None:
    """The task head into peft's folder: its weights under peft's names and its modules as
    ``modules_to_save`` (what ``get_peft_model`` + ``save_pretrained`` write for a head)."""
    if not head:
        return
    from safetensors.torch import load_file, save_file

    weights_path, config_path = folder / "adapter_model.safetensors", folder / "adapter_config.json"
    weights = load_file(str(weights_path))
    weights.update({name: value.to("cpu").contiguous() for name, value in head.items()})
    save_file(weights, str(weights_path), metadata={"format": "pt"})
    config = json.loads(config_path.read_text())
    modules = {name.split(".")[2 if name.startswith("base_model.model.") else 1] for name in head}
    config["modules_to_save"] = sorted(set(config.get("modules_to_save") or []) | modules)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
