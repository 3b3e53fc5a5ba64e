"""AdapterFusion: attention over the outputs of adapters trained on other tasks.

Pfeiffer, Kamath, Rücklé, Cho & Gurevych, "AdapterFusion: Non-Destructive Task Composition for
Transfer Learning", EACL 2021 (arXiv 2005.00247), §3. Two stages:

1. knowledge extraction — one adapter per task, trained alone (ST-A, ``method.adapter_training=single``):
   any finished runs of a bottleneck adapter method (those with ``fusion_stage``: ``houlsby``, ``pfeiffer``,
   ``parallel``, ``lin``), found by query
   (``method.adapter_tasks=[rte,mrpc,sst2]``: the newest complete run of each task with this
   model, ``method.adapter_method`` and, where there is one, this seed) or named
   (``method.adapter_runs=[<run id>, …]``); or trained on all tasks at once (MT-A, §2.2.2 and
   Table 1's "Fusion w/ MT-A" column, ``method.adapter_training=multitask``): one finished
   multi-task ``task_routing`` run whose modules are ``method.adapter_method`` adapters, one per
   task, found by query (``method.adapter_tasks``: the newest complete such run of this model on
   exactly these tasks, this seed where there is one) or named (``method.adapter_runs=[<run id>]``,
   all its tasks fused). Its module of task n is the n-th fused adapter, and its layer norms
   (shared by all tasks, where the module trains them) are the stage-1 norms. The paper's MT-A
   also fine-tunes BERT's own weights; ``task_routing`` keeps them frozen, so that is what is fused;
2. knowledge composition — with the backbone and every adapter frozen, fusion parameters
   Ψ = {Q_l, K_l, V_l} at each adapter site l are trained on the target task (§3.2):

       s_{l,t}   = softmax( h_{l,t}ᵀ Q_l ⊗ z_{l,t,n}ᵀ K_l ),   n = 1 … N
       z'_{l,t,n} = z_{l,t,n}ᵀ V_l
       o_{l,t}   = s_{l,t}ᵀ Z'_{l,t}

   where h is the sub-layer output the adapters read (the query) and z_n the n-th adapter's
   output (keys and values); the site's residual is added to o as it was to each adapter's output.

As AdapterHub's default ("dynamic") fusion: Q and K with biases, initialised N(0, 0.02); V without
bias, initialised to the identity with 1e-6 elsewhere; no temperature; dropout on the attention
scores; and a regulariser λ Σ_l ‖I − V_l‖²_F (λ = 0.01) added to the loss, keeping V near the
identity. Fusion sits at every site the stage-1 method put adapters (after the FFN for Pfeiffer
adapters, as in the paper; after attention and FFN for Houlsby's, as AdapterHub does).

Stage-1 layer norms (Houlsby trains them per task): those of the run on the target task when it
is among the fused, else the pretrained ones. The run saves the frozen adapters and norms beside
Ψ, so its folder alone restores it, and records the fused runs (``fused``). After training, the
softmax weights of every site, averaged over the development set's tokens (padding left out),
are written to ``fusion_attention.json`` (the paper's Figure 4; ``peftbench plot fusion``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from peftbench.errors import UserError
from peftbench.methods import build_method, register, registered
from peftbench.methods.adapters import ADAPTER
from peftbench.methods.base import Method, MethodConfig, require
from peftbench.models.anatomy import blocks

ATTENTION_FILE = "fusion_attention.json"
TRAININGS = ("single", "multitask")  # how stage 1 trained the fused adapters: ST-A or MT-A
MT_A = "task_routing"  # the method whose multi-task runs are MT-A


@dataclass
class AdapterFusionConfig(MethodConfig):
    adapter_method: str = "pfeiffer"
    adapter_tasks: list[str] = field(default_factory=list)
    adapter_runs: list[str] = field(default_factory=list)
    adapter_training: str = "single"
    regularization: float = 0.01
    dropout: float = 0.1

    def check(self) -> None:
        stages = [name for name, cls in registered().items() if cls.fusion_stage]
        require(
            self.adapter_method in stages,
            f"method.adapter_method must be a bottleneck adapter method ({', '.join(stages)}), got '{self.adapter_method}'",
        )
        require(
            bool(self.adapter_tasks) != bool(self.adapter_runs),
            "name the adapters to fuse one way: method.adapter_tasks=[rte,mrpc,sst2] (their newest runs) "
            "or method.adapter_runs=[RUN_ID,…]",
        )
        require(self.adapter_training in TRAININGS,
                f"method.adapter_training must be one of {', '.join(TRAININGS)}, got '{self.adapter_training}'")  # fmt: skip
        if self.adapter_training == "multitask" and self.adapter_runs:
            require(len(self.adapter_runs) == 1, "method.adapter_training=multitask fuses the modules of one "
                    f"multi-task {MT_A} run: name one run id, method.adapter_runs=[RUN_ID]; got {list(self.adapter_runs)}")  # fmt: skip
        else:
            fused = self.adapter_tasks or self.adapter_runs
            require(len(fused) >= 2 and len(set(fused)) == len(fused),
                    f"AdapterFusion needs two adapters or more, each named once; got {list(fused)}")  # fmt: skip
        require(self.regularization >= 0, f"method.regularization must be ≥ 0, got {self.regularization}; e.g. 0.01")
        require(0 <= self.dropout < 1, f"method.dropout must be in [0, 1), got {self.dropout}")


class _Recorder:
    """The mean softmax weights per site over the tokens seen while ``on`` (padding left out)."""

    def __init__(self):
        self.on = False
        self.mask = None  # the current batch's attention mask (a forward pre-hook on the model sets it)
        self.sums: dict[int, torch.Tensor] = {}
        self.counts: dict[int, int] = {}

    def capture_mask(self, module, args, kwargs):
        self.mask = kwargs.get("attention_mask")

    def add(self, site: int, probs: torch.Tensor) -> None:
        flat = probs.detach().float().reshape(-1, probs.shape[-1])
        if self.mask is not None and self.mask.numel() * probs.shape[-1] == probs.numel():
            flat = flat[self.mask.reshape(-1).bool()]
        self.sums[site] = self.sums.get(site, 0) + flat.sum(0).cpu()
        self.counts[site] = self.counts.get(site, 0) + flat.shape[0]


class Fusion(nn.Module):
    """In place of one adapter: the N frozen adapters and Ψ = (Q, K, V); returns o (the caller adds
    the residual, as it did to the adapter's output)."""

    def __init__(self, adapters: list[nn.Module], d: int, dropout: float, recorder: _Recorder, site: int, like):
        super().__init__()
        self.adapters = nn.ModuleList(adapters)
        factory = {"device": like.device, "dtype": torch.float32}
        self.query = nn.Linear(d, d, **factory)
        self.key = nn.Linear(d, d, **factory)
        self.value = nn.Linear(d, d, bias=False, **factory)
        self.dropout = nn.Dropout(dropout)
        self.recorder, self.site = recorder, site
        if like.device.type != "meta":
            with torch.no_grad():
                for linear in (self.query, self.key):
                    nn.init.normal_(linear.weight, std=0.02)
                    nn.init.zeros_(linear.bias)
                self.value.weight.copy_(torch.full((d, d), 1e-6).fill_diagonal_(1.0))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = torch.stack([adapter(h) for adapter in self.adapters], dim=-2).float()  # (..., N, d)
        query = self.query(h.float()).unsqueeze(-2)  # (..., 1, d)
        scores = self.dropout((query * self.key(z)).sum(-1))  # (..., N)
        probs = torch.softmax(scores, dim=-1)
        if self.recorder.on:
            self.recorder.add(self.site, probs)
        return (probs.unsqueeze(-1) * self.value(z)).sum(-2).to(h.dtype)


@register
class AdapterFusion(Method):
    name = "adapter_fusion"
    composable = False  # it builds on finished runs
    multitask = False  # it fuses for one target task
    Config = AdapterFusionConfig
    families = frozenset({"encoder", "decoder", "encoder_decoder"})

    def __init__(self, config: AdapterFusionConfig):
        super().__init__(config)
        self.sources: list[dict] = []  # the fused runs' records, in order (set by ``prerequisites``)
        self.source_dirs: list[Path] = []
        # per fused adapter: its task, its run and its module there (None: the run's one adapter)
        self.fused: list[dict] = []

    def check_model(self, anatomy, arch_config) -> None:
        """The family here; the fused adapters' fit once ``prerequisites`` has found them."""
        super().check_model(anatomy, arch_config)
        self._model = (anatomy, arch_config)

    def prerequisites(self, runs, model: str, seed: int) -> list[Path]:
        """Find the stage-1 runs in ``runs`` (UserError when one is missing or they do not fit together)."""
        c = self.config
        if c.adapter_training == "multitask":
            return self._multitask_prerequisites(runs, model, seed)
        found = []
        for run in c.adapter_runs:
            record = runs.by_id(run)
            if record is None:
                raise UserError(f"method.adapter_runs: no complete run '{run}' in {runs.root}; "
                                "list the run ids with peftbench list runs")  # fmt: skip
            found.append(record)
        for task in c.adapter_tasks:
            query = {"task": task, "model": model, "method": c.adapter_method}
            record = runs.newest(**query, seed=seed) or runs.newest(**query)
            if record is None:
                raise UserError(
                    f"method.adapter_tasks: no complete {c.adapter_method} run of {model} on {task} in {runs.root}; "
                    f"train it first (peftbench run model={model} method={c.adapter_method} task={task})"
                )
            found.append(record)
        for record in found:
            if (record["model"], record["method"]) != (model, c.adapter_method):
                raise UserError(f"run {record['run_id']} is a {record['method']} run of {record['model']}; AdapterFusion "
                                f"here fuses {c.adapter_method} runs of {model} (method.adapter_method=…)")  # fmt: skip
            if record["method_config"].get("invertible", "none") != "none":
                raise UserError(f"run {record['run_id']} has an invertible adapter (MAD-X's language adapter); AdapterFusion "
                                "fuses adapters without one: stack a task adapter on it with method=madx instead")  # fmt: skip
        configs = {repr(sorted((k, v) for k, v in r["method_config"].items() if k != "lr")) for r in found}
        if len(configs) > 1:
            raise UserError("the fused adapters differ in their configuration (size, activation, sites); "
                            "fuse runs of one adapter configuration")  # fmt: skip
        self.sources = found
        self.source_dirs = [runs.folder(r) for r in found]
        self.fused = [{"task": r["task"], "run_id": r["run_id"], "module": None} for r in found]
        self._stage_one().check_model(*self._model)
        return self.source_dirs

    def _multitask_prerequisites(self, runs, model: str, seed: int) -> list[Path]:
        """The one multi-task ``task_routing`` run (MT-A) whose modules are fused, in the order of
        ``method.adapter_tasks`` (all its tasks, in its order, when named by run id)."""
        c = self.config
        wanted = f"multi-task {MT_A} run of {model} with method.module={c.adapter_method}"
        wanted += f" on {'+'.join(c.adapter_tasks)}" if c.adapter_tasks else ""
        if c.adapter_runs:
            record = runs.by_id(c.adapter_runs[0])
            if record is None:
                raise UserError(f"method.adapter_runs: no complete run '{c.adapter_runs[0]}' in {runs.root}; "
                                "list the run ids with peftbench list runs")  # fmt: skip
        else:
            def fits(r):
                return (r["model"], r["method"]) == (model, MT_A) and sorted(_tasks(r)) == sorted(c.adapter_tasks) \
                    and r["method_config"].get("module") == c.adapter_method  # fmt: skip

            candidates = [r for r in runs.complete if fits(r)]
            record = max([r for r in candidates if r["seed"] == seed] or candidates,
                         key=lambda r: r.get("finished") or "", default=None)  # fmt: skip
            if record is None:
                raise UserError(f"method.adapter_tasks: no complete {wanted} in {runs.root}; train it first "
                                f"(peftbench run model={model} method={MT_A} method.module={c.adapter_method} "
                                f"task=multi task.tasks=[{','.join(c.adapter_tasks)}])")  # fmt: skip
        module = (record.get("routing") or {}).get("module_config")
        if (record["model"], record["method"]) != (model, MT_A) or record["method_config"].get("module") != c.adapter_method:
            raise UserError(f"run {record['run_id']} is a {record['method']} run of {record['model']}; "
                            f"method.adapter_training=multitask fuses a {wanted} (method.adapter_method=…)")  # fmt: skip
        if module is None:
            raise UserError(f"run {record['run_id']} does not record its modules' configuration (a {MT_A} run from "
                            "before AdapterFusion could fuse them); run it again")  # fmt: skip
        if module.get("invertible", "none") != "none":
            raise UserError(f"run {record['run_id']} has an invertible adapter (MAD-X's language adapter); AdapterFusion "
                            "fuses adapters without one")  # fmt: skip
        tasks = _tasks(record)
        self.sources, self.source_dirs = [record], [runs.folder(record)]
        self.fused = [{"task": t, "run_id": record["run_id"], "module": tasks.index(t)} for t in c.adapter_tasks or tasks]
        self._stage_one().check_model(*self._model)
        return self.source_dirs

    def _stage_one(self):
        """The stage-1 adapter method (MT-A: the routed module's own), built to place fresh adapters."""
        if not self.sources:
            node = {"name": self.config.adapter_method}
        elif self.config.adapter_training == "multitask":
            node = dict(self.sources[0]["routing"]["module_config"])
        else:
            node = dict(self.sources[0]["method_config"])
        node["lr"] = None
        return build_method(node)

    def apply(self, model, anatomy) -> None:
        from safetensors.torch import load_file

        stage_one = self._stage_one()
        stage_one.apply(model, anatomy)
        states = [load_file(str(d / "method.safetensors")) for d in self.source_dirs]
        tasks = [r["task"] for r in self.sources]
        self._norm_names = list(getattr(stage_one, "_norm_names", []))
        multitask = self.config.adapter_training == "multitask"
        if states and (multitask or (self.tasks and self.tasks[0] in tasks)):  # MT-A's shared norms, or the target's own
            state = states[0] if multitask else states[tasks.index(self.tasks[0])]
            model.load_state_dict({n: state[n] for n in self._norm_names if n in state}, strict=False)
        self.recorder = _Recorder()
        model.register_forward_pre_hook(self.recorder.capture_mask, with_kwargs=True)
        block_paths = blocks(model, anatomy)
        self.sites: list[str] = []
        paths = [n for n, _ in model.named_modules() if n.endswith(ADAPTER)]
        d = getattr(model.config, anatomy.hidden_size_key)
        like = next(model.parameters())
        for path in paths:
            adapter = model.get_submodule(path)
            copies = []
            fused = self.fused or [None] * len(self.config.adapter_tasks or self.config.adapter_runs)
            for n, entry in enumerate(fused):  # counting from configs: fresh adapters
                twin = copy.deepcopy(adapter)
                if entry is not None:
                    state = states[0 if multitask else n]
                    prefix = f"{path}." if entry["module"] is None else f"{path}.experts.{entry['module']}."
                    twin.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
                copies.append(twin)
            fusion = Fusion(copies, d, self.config.dropout, self.recorder, len(self.sites), like)
            parent, _, child = path.rpartition(".")
            setattr(model.get_submodule(parent), child, fusion)
            block = max((b for b in block_paths if path.startswith(b + ".")), key=len, default="")
            where = path[len(block) + 1:].removesuffix(ADAPTER).rstrip(".") or "block output"
            self.sites.append(f"layer {block.rsplit('.', 1)[-1]} {where}" if block else where)
        model.requires_grad_(False)
        for param in self._fusion_parameters(model).values():
            param.requires_grad_(True)

    def _fusion_parameters(self, model) -> dict:
        return {
            n: p for n, p in model.named_parameters()
            if f".{ADAPTER}." in n and n.split(f".{ADAPTER}.", 1)[1].split(".")[0] in ("query", "key", "value")
        }  # fmt: skip

    def parameter_names(self, model) -> list[str]:
        return list(self._fusion_parameters(model))

    def saved_buffers(self, model) -> dict:
        """The frozen adapters and the stage-1 layer norms: the run's folder restores it alone."""
        own, norms = set(self._fusion_parameters(model)), set(self._norm_names)
        return {
            n: p.detach().to("cpu", copy=True).contiguous() for n, p in model.named_parameters()
            if n not in own and (f".{ADAPTER}.adapters." in n or n in norms)
        }  # fmt: skip

    def penalty(self, model):
        """λ Σ_l ‖I − V_l‖²_F over the fusion layers (AdapterHub's fusion regularisation)."""
        if not self.config.regularization:
            return None
        values = [p for n, p in self._fusion_parameters(model).items() if n.endswith(".value.weight")]
        eye = torch.eye(values[0].shape[0], device=values[0].device)
        return self.config.regularization * sum(((eye - v) ** 2).sum() for v in values)

    def reports(self, model, evaluate) -> dict:
        """``fusion_attention.json``: per site, the mean softmax weight of each fused adapter over
        the evaluation splits' tokens (run with the best weights)."""
        self.recorder.on, self.recorder.sums, self.recorder.counts = True, {}, {}
        try:
            evaluate(model)
        finally:
            self.recorder.on = False
        attention = [(self.recorder.sums[i] / max(1, self.recorder.counts[i])).tolist() for i in range(len(self.sites))]
        return {
            ATTENTION_FILE: {
                "adapters": [{"task": f["task"], "run_id": f["run_id"]} for f in self.fused],
                "sites": self.sites,
                "attention": attention,
                "tokens": [self.recorder.counts.get(i, 0) for i in range(len(self.sites))],
            }
        }

    def record_entry(self) -> dict:
        """What the run's record says about the fused adapters."""
        return {"fused": [{"task": f["task"], "run_id": f["run_id"], **({} if f["module"] is None else {"module": f["module"]})}
                          for f in self.fused]}  # fmt: skip


def _tasks(record: dict) -> list[str]:
    """The tasks a run trained, in its order (a multi-task run's ``parts``)."""
    return [part["task"] for part in record.get("parts") or [record]]
