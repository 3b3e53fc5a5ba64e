"""AdapterFusion over MT-A (Pfeiffer et al. 2021, Table 1's "Fusion w/ MT-A" column): stage 1 is one
multi-task task_routing run (a Pfeiffer adapter per task); fusion on a target task fuses its modules,
bit-identical and frozen, records them, and fills the table's F. w/ MT-A row (not F. w/ ST-A)."""

import pytest
import torch
from safetensors.torch import load_file

from peftbench.config import CONF_DIR
from peftbench.errors import UserError
from peftbench.results.spec import load_spec
from peftbench.results.table import build_table
from tests.helpers import finished_run, planned

pytestmark = pytest.mark.usefixtures("one_thread")

TASKS = ["rte", "mrpc"]
SHORT = ["trainer.max_steps=3", "trainer.batch_size=4", "trainer.lr=0.05"]
FUSE = ["method=adapter_fusion", "method.adapter_training=multitask", "task=rte"]


@pytest.fixture(scope="module")
def mt_a_then_fusion(tmp_path_factory):
    results = tmp_path_factory.mktemp("mt_a")
    mt_a = finished_run(results, "tiny-bert", "method=task_routing", "task=multi", "task.tasks=[rte,mrpc]", *SHORT)
    fusion = finished_run(results, "tiny-bert", *FUSE, "method.adapter_tasks=[mrpc,rte]", *SHORT)
    return results, mt_a, fusion


def test_the_fused_adapters_are_the_mt_a_modules_frozen_and_bit_identical(mt_a_then_fusion):
    _, mt_a, fusion = mt_a_then_fusion
    record = fusion.record
    assert record["status"] == "complete"
    mt_a_id = mt_a.record["run_id"]
    assert record["fused"] == [{"task": "mrpc", "run_id": mt_a_id, "module": 1},
                               {"task": "rte", "run_id": mt_a_id, "module": 0}]  # fmt: skip

    stage_one = load_file(str(mt_a.folder / "method.safetensors"))
    saved = load_file(str(fusion.folder / "method.safetensors"))
    own = set(fusion.plan.method.parameter_names(fusion.model))
    compared = 0
    for n, expert in enumerate([1, 0]):  # fused adapter n is MT-A's module of task adapter_tasks[n]
        for name, value in stage_one.items():
            if f".experts.{expert}." not in name:
                continue
            fused = name.replace(f".experts.{expert}.", f".adapters.{n}.")
            assert torch.equal(saved[fused], value), fused  # after fusion training: untouched
            assert fused not in own and not fusion.model.get_parameter(fused).requires_grad
            compared += 1
    assert compared == 2 * 2 * 4  # 2 fused modules; tiny-bert: 2 layers, one Pfeiffer adapter each, down/up weight and bias
    d, sites = 32, 2
    assert record["params"]["trainable_method"] == sites * (3 * d * d + 2 * d)  # Ψ = Q, K (biases), V


def test_a_fusion_over_mt_a_fills_its_row_and_not_the_st_a_one(mt_a_then_fusion):
    _, mt_a, fusion = mt_a_then_fusion
    table = build_table(load_spec("adapterfusion_table1", CONF_DIR), [mt_a.record, fusion.record], model="tiny-bert")
    column = [c.id for c in table.spec.columns].index("rte")
    cells = {row.label: row.cells[column].value for row in table.rows}
    best = fusion.record["metrics"]["best"]["validation"]["accuracy"]
    assert cells["F. w/ MT-A"] == pytest.approx(100 * best)
    assert cells["F. w/ ST-A"] is None
    assert cells["MT-A"] == pytest.approx(100 * mt_a.record["metrics"]["best"]["rte/validation"]["accuracy"])


def test_a_single_task_fusion_record_without_the_option_still_fills_st_a():
    from peftbench.results.table import matches

    old = {"name": "adapter_fusion", "adapter_method": "pfeiffer", "adapter_tasks": ["rte", "mrpc"]}
    assert matches(old, {"adapter_method": "pfeiffer", "adapter_training": "single"})
    assert not matches(old, {"adapter_method": "pfeiffer", "adapter_training": "multitask"})


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["method.adapter_tasks=[rte,sst2]"], "no complete multi-task task_routing run of tiny-bert"),
        (["method.adapter_tasks=[rte,mrpc]", "method.adapter_method=houlsby"], "with method.module=houlsby"),
        (["method.adapter_runs=[a,b]"], "name one run id"),
        (["method.adapter_runs=[nope]"], "no complete run 'nope'"),
        (["method.adapter_tasks=[rte,mrpc]", "method.adapter_training=both"], "must be one of single, multitask"),
    ],
)
def test_bad_mt_a_fusion_inputs_are_refused_before_anything_is_written(mt_a_then_fusion, overrides, message):
    results, _, _ = mt_a_then_fusion
    before = sorted(p.name for p in results.iterdir())
    with pytest.raises(UserError, match=message):
        planned(results, "tiny-bert", *FUSE, *overrides)
    assert sorted(p.name for p in results.iterdir()) == before


def test_a_single_task_run_named_as_mt_a_is_refused(mt_a_then_fusion):
    results, _, fusion = mt_a_then_fusion
    with pytest.raises(UserError, match="is a adapter_fusion run of tiny-bert"):
        planned(results, "tiny-bert", *FUSE, f"method.adapter_runs=[{fusion.record['run_id']}]")
