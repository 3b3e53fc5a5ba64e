"""Fixed routing (method=task_routing): each task runs through its own module only; a multi-task run
on an encoder (a head per task) gives per-task metrics, fills AdapterFusion's MT-A row, and
reloads from its folder to the same outputs."""

import pytest
import torch

from peftbench.config import CONF_DIR
from peftbench.methods.routing import Routed
from peftbench.results.spec import load_spec
from peftbench.results.table import build_table
from tests.helpers import finished_run, reloaded, task_losses

pytestmark = pytest.mark.usefixtures("one_thread")

TASKS = ["rte", "mrpc"]
SHORT = ["method=task_routing", "task=multi", "task.tasks=[rte,mrpc]", "trainer.max_steps=4", "trainer.batch_size=4"]
MODULES = ["pfeiffer", "houlsby", "lora"]


def _adapted(module: str, model_name: str = "tiny-bert"):
    from peftbench.methods.base import attach
    from peftbench.models.anatomy import anatomy_of
    from peftbench.plan import method_from_config
    from tests.helpers import tiny_classifier

    model, tokenizer = tiny_classifier(model_name)
    settings = {"bottleneck": 8} if module == "houlsby" else {}  # Houlsby's 64 does not fit a 32-wide model
    method = method_from_config({"name": "task_routing", "module": module, "settings": settings})
    method.tasks = list(TASKS)
    attach(method, model, anatomy_of(model.config.model_type))
    return model, tokenizer, method


def _expert_parameters(model, task_index: int) -> dict:
    routed = {path: module for path, module in model.named_modules() if isinstance(module, Routed)}
    return {f"{path}.experts.{task_index}.{name}": p for path, module in routed.items()
            for name, p in module.experts[task_index].named_parameters()}  # fmt: skip


@pytest.mark.parametrize("module", MODULES)
def test_a_task_runs_through_its_own_module_and_trains_only_it(module):
    model, tokenizer, method = _adapted(module)
    rte, mrpc = _expert_parameters(model, 0), _expert_parameters(model, 1)
    assert rte and rte.keys().isdisjoint(mrpc) and set(rte) | set(mrpc) <= set(method.parameter_names(model))
    inputs = tokenizer(["a tiny test sentence", "another one"], padding=True, return_tensors="pt")
    labels = torch.tensor([0, 1])

    method.select_task("rte")
    with torch.no_grad():
        before = model(**inputs).logits
        for p in mrpc.values():  # another task's module changes: this task's outputs do not
            p.add_(torch.randn_like(p))
        assert torch.equal(model(**inputs).logits, before)
        method.select_task("mrpc")
        assert not torch.allclose(model(**inputs).logits, before)  # mrpc's own module runs there
    method.select_task("rte")
    model.train()
    model(**inputs, labels=labels).loss.backward()
    assert all(p.grad is None for p in mrpc.values())  # the optimiser skips them: AdamW leaves them as they are
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in rte.values())


def test_task_routing_needs_two_tasks_and_knows_its_tasks(tmp_path):
    from peftbench.errors import UserError
    from tests.helpers import planned

    with pytest.raises(UserError, match="two tasks or more"):
        planned(tmp_path, "tiny-bert", "method=task_routing", "task=rte")
    _, _, method = _adapted("pfeiffer")
    with pytest.raises(UserError, match="routes the tasks rte, mrpc"):
        method.select_task("sst2")


def test_a_multitask_encoder_run_has_per_task_metrics_fills_mt_a_and_reloads(tmp_path):
    run = finished_run(tmp_path, "tiny-bert", *SHORT)
    record = run.record
    assert record["status"] == "complete" and record["task"] == "rte+mrpc"
    best = record["metrics"]["best"]
    assert set(best) == {"rte/validation", "mrpc/validation", "average"}
    heads = [name for name, _ in run.model.named_parameters() if name.startswith("classifier.")]
    assert sorted(heads) == [f"classifier.heads.{t}.{w}" for t in ("mrpc", "rte") for w in ("bias", "weight")]
    routing = record["routing"]
    assert routing["modules"] == TASKS and routing["sites"] == ["layer 0 ln.ffn", "layer 1 ln.ffn"]
    assert routing["usage"] == {"rte": [[1.0, 0.0]] * 2, "mrpc": [[0.0, 1.0]] * 2}

    # AdapterFusion's MT-A row (one Pfeiffer adapter and one head per task): filled per task
    table = build_table(load_spec("adapterfusion_table1", CONF_DIR), [record], model="tiny-bert")
    column = [c.id for c in table.spec.columns].index("rte")
    cell = next(row for row in table.rows if row.label == "MT-A").cells[column]
    assert cell.value == pytest.approx(100 * best["rte/validation"]["accuracy"])

    trained = task_losses(run, run.model, run.plan.method)
    model, method = reloaded(run)
    assert task_losses(run, model, method) == pytest.approx(trained, abs=1e-6)
