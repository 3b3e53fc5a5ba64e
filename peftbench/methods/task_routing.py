"""Task routing: fixed routing of each task to a module of its own.

Seed 004, "Fixed Routing": the routing decision is made a priori, r(φ_i) = 1 if i ∈ K ⊆ F, else 0;
for multi-task learning

    r(task_id) → task adapter

so every task trains and runs only its own module at each site; the backbone (frozen) and what
the module method trains outside its modules are shared. With ``method.module=pfeiffer`` this is
AdapterFusion's MT-A setting (Pfeiffer et al., EACL 2021, arXiv 2005.00247, §2.2.2: "adapters for
N tasks ... trained simultaneously", one adapter φ_n per task, in Stickland & Murray 2019's
multi-task training) except that MT-A also fine-tunes the shared BERT weights; here they stay
frozen. On a model whose format trains a head, each task has its own head too
(``peftbench.models.heads``).

The module of task n at a site is expert n (``peftbench.methods.routing``): only it runs, so only
its parameters receive gradients from task n's batches (the optimiser skips the others, which
have none). The run's record names the modules by task (``routing``).
"""

from __future__ import annotations

import torch

from peftbench.errors import UserError
from peftbench.methods import register
from peftbench.methods.routing import Routed, RoutingConfig, RoutingMethod


class TaskRouted(Routed):
    """The current task's module: r(task_id) → module task_id."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.experts[self.state.task](x)


@register
class TaskRouting(RoutingMethod):
    name = "task_routing"
    Config = RoutingConfig

    def check_model(self, anatomy, arch_config) -> None:
        if len(self.tasks) < 2:
            raise UserError(f"method '{self.name}' gives each task its own module; train two tasks or more "
                            "at once: task=[rte,mrpc]")  # fmt: skip
        super().check_model(anatomy, arch_config)

    @property
    def count(self) -> int:
        return len(self.tasks)

    def expert_names(self) -> list[str]:
        return list(self.tasks)

    def routed(self, experts, site: int, stack: int, width: int) -> Routed:
        return TaskRouted(experts, self.state, site, stack)

    def usage(self, model, evaluate) -> dict[str, list[list[float]]]:
        """Each task's own module, everywhere."""
        own = {task: [float(j == t) for j in range(self.count)] for t, task in enumerate(self.tasks)}
        return {task: [list(row) for _ in self.sites] for task, row in own.items()}
