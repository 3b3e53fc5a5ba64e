"""Composed sparse fine-tunings: finished sparse differences added onto one frozen backbone.

Ansell, Ponti, Korhonen & Vulić, ACL 2022, "Composable Sparse Fine-Tuning for Cross-Lingual
Transfer", §3: sparse fine-tunings learned apart (a language's by masked language modelling, a
task's on source-language data) compose by addition,

    f'(x) = f(x; θ0 + φ_A + φ_B),

the survey's f'_θ = f_{θ+φA+φB} (seed 004, "Lottery Ticket Sparse Fine-tuning": keeping the
pre-trained weights allows combining subnetworks for different settings).

What this does: ``method.runs=[A, B, …]`` names finished runs of this backbone whose method is a
sparse difference (``Method.sparse_difference``: ``sparse``, LT-SFT, and ``diff_pruning``). Their
saved differences (per tensor, LT-SFT's flat indices and values) are added on the frozen weights
in the order named, W = ((W0 + φ_A) + φ_B) …, each φ zero off its own mask and overlapping entries
summed: one ``sparse.SparseDelta`` per tensor holding the runs' indices and values laid end to end
(``index_add`` accumulates them in that order; W0 is never written, and merging folds the sum in
and back out bit-exact). Nothing of the differences trains. The task head: with
``method.train_head=false`` (the default) it is the one of the first named run trained on this
run's task, and the run only evaluates, as Ansell et al. evaluate the composed model; with
``true`` a fresh head trains on the composed model, and nothing else does.

Refused while planning, before a model loads, in one line each: a named run that is missing from
the results folder or not complete, one of another backbone (or, for a randomly initialised test
backbone, of another seed: its θ0 differs), one whose method is not a sparse difference, a run
named twice, and, with ``train_head=false``, none of them trained on this run's task.

Saved: the summed difference in LT-SFT's format and the head, so that the run's folder restores
the composed model alone; the record's ``composed`` names the runs added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from peftbench.errors import UserError
from peftbench.methods import register, registered
from peftbench.methods.base import Method, MethodConfig, require
from peftbench.methods.delta import add_delta, backbone_tensors, deltas, merge, tensor_name, unmerge
from peftbench.methods.sparse import SparseDelta


@dataclass
class SparseSumConfig(MethodConfig):
    runs: list[str] = field(default_factory=list)  # finished sparse-difference runs, by run id, added in this order
    train_head: bool = False  # False: the head of the named run on this task, evaluation only

    def check(self) -> None:
        require(
            len(self.runs) >= 2 and len(set(self.runs)) == len(self.runs),
            f"method=sparse_sum adds two finished sparse runs or more, each named once: method.runs=[RUN_A,RUN_B] "
            f"(their run ids, peftbench list runs); got {list(self.runs)}",
        )


@register
class SparseSum(Method):
    name = "sparse_sum"
    Config = SparseSumConfig
    composable = False  # it builds on finished runs
    multitask = False
    mergeable = True

    def __init__(self, config: SparseSumConfig):
        super().__init__(config)
        self.sources: list[dict] = []  # the added runs' records, in order (set by ``prerequisites``)
        self.source_dirs: list[Path] = []

    @property
    def trains(self) -> bool:
        return self.config.train_head

    def prerequisites(self, runs, model: str, seed: int) -> list[Path]:
        """Find the named runs in ``runs``; refuse any that cannot be added here."""
        kinds = sorted(name for name, cls in registered().items() if cls.sparse_difference)
        found = []
        for run in self.config.runs:
            record = runs.by_id(run)
            if record is None:
                there = (Path(runs.root) / run / "record.json").is_file()
                raise UserError(
                    f"method.runs: run '{run}' in {runs.root} is not complete; finish it (run its command again) or drop it"
                    if there else f"method.runs: no run '{run}' in {runs.root}; list the run ids with peftbench list runs"
                )  # fmt: skip
            if record["method"] not in kinds:
                raise UserError(f"method.runs: {run} is a {record['method']} run, not a sparse difference; "
                                f"sparse_sum adds runs of {', '.join(kinds)}")  # fmt: skip
            if record["model"] != model:
                raise UserError(f"method.runs: {run} was trained on {record['model']}, not {model}; "
                                f"add runs of this backbone (or run with model={record['model']})")  # fmt: skip
            if record["config"]["model"].get("random_init") and record["seed"] != seed:
                raise UserError(f"method.runs: {run} has seed {record['seed']}: {model} is randomly initialised per seed, "
                                f"so its θ0 differs from this run's (seed {seed}); add runs of seed {seed} "
                                f"or set seed={record['seed']}")  # fmt: skip
            found.append(record)
        if not self.config.train_head and not any(record["task"] == self.tasks[0] for record in found):
            raise UserError(f"none of method.runs was trained on {self.tasks[0]}, so none has its task head; name one "
                            "that was, or set method.train_head=true to train a head on the composed model")  # fmt: skip
        self.sources = found
        self.source_dirs = [runs.folder(record) for record in found]
        return self.source_dirs

    def apply(self, model, anatomy) -> None:
        """The named runs' differences on the frozen backbone, and the head of the run on this task
        (counting from configs: nothing, no run is read)."""
        from safetensors.torch import load_file

        from peftbench.models.anatomy import head_parameter_names

        owners = {name: (param, holders) for name, param, holders in backbone_tensors(model)}
        pieces: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        states = [load_file(str(folder / "method.safetensors")) for folder in self.source_dirs]
        for folder, state in zip(self.source_dirs, states):
            for key, values in state.items():
                if key.endswith(".sparse_values"):
                    name = tensor_name(key)
                    if name not in owners:
                        raise UserError(f"{folder}: its difference on {name} fits no tensor of this model; "
                                        "add runs of this backbone")  # fmt: skip
                    pieces.setdefault(name, []).append((state[key.removesuffix("sparse_values") + "indices"], values))
        for name, parts in pieces.items():
            param, holders = owners[name]
            delta = SparseDelta(torch.cat([indices for indices, _ in parts]).to(param.device), param.dtype)
            delta.sparse_values.requires_grad_(False)
            with torch.no_grad():
                delta.sparse_values.copy_(torch.cat([values for _, values in parts]))
            add_delta(holders, delta)
        if not self.config.train_head and self.sources:
            state = states[[record["task"] for record in self.sources].index(self.tasks[0])]
            head = head_parameter_names(model)
            model.load_state_dict({name: state[name] for name in head}, strict=False)

    def parameter_names(self, model) -> list[str]:
        return []  # the added differences are frozen; only the head may train

    def saved_buffers(self, model) -> dict[str, torch.Tensor]:
        """The summed difference (indices and values, LT-SFT's format) and, when not trained here
        (so not among the trained weights), the head."""
        from peftbench.models.anatomy import head_parameter_names

        head = set() if self.config.train_head else set(head_parameter_names(model))
        saved = {name: b for name, b in model.named_buffers() if name.endswith(".indices") and ".parametrizations." in name}
        for name, param in model.named_parameters():
            if name.endswith(".sparse_values") or name in head:
                saved[name] = param.detach().to("cpu", copy=True).contiguous()
        return saved

    def sums(self, model) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each tensor's composed (indices, values), by its name before parametrisation."""
        return {name: (delta.indices, delta.sparse_values) for name, _, _, delta in deltas(model, SparseDelta)}

    def record_entry(self) -> dict:
        return {"composed": [{"run_id": r["run_id"], "method": r["method"], "task": r["task"]} for r in self.sources]}

    def merge(self, model) -> None:
        merge(model, SparseDelta)

    def unmerge(self, model) -> None:
        unmerge(model, SparseDelta)
