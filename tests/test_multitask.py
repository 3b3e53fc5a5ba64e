"""Multi-task runs: temperature sampling (Raffel et al. 2020 §3.5.2; Hyperformer's T = 10),
one-task batches, metrics per task and their mean, and a record that tables read per task."""

import math

import pytest
import torch

from peftbench.launch import compose, expand_lists
from peftbench.results.spec import load_spec
from peftbench.results.table import build_table, per_task
from peftbench.plan import plan
from peftbench.run import execute
from peftbench.config import CONF_DIR
from peftbench.train.sampling import TemperatureBatches, task_probabilities

pytestmark = pytest.mark.usefixtures("one_thread")

SIZES = [400, 100, 20]


def test_probabilities_follow_the_formula():
    # T = 1: in proportion to the data; T = 2: square roots; T → ∞: uniform
    assert task_probabilities(SIZES, 1.0) == pytest.approx([400 / 520, 100 / 520, 20 / 520])
    roots = [math.sqrt(n) for n in SIZES]
    assert task_probabilities(SIZES, 2.0) == pytest.approx([r / sum(roots) for r in roots])
    assert task_probabilities(SIZES, 1e9) == pytest.approx([1 / 3] * 3, abs=1e-6)
    ten = task_probabilities(SIZES, 10.0)
    assert ten[0] > ten[1] > ten[2] and ten[0] / ten[2] == pytest.approx(20 ** 0.1)


@pytest.mark.parametrize("temperature", [1.0, 10.0])
def test_empirical_task_frequencies_match_the_formula(temperature):
    sampler = TemperatureBatches([[5] * n for n in SIZES], batch_size=4, seed=0, temperature=temperature)
    owner = [task for task, n in enumerate(SIZES) for _ in range(n)]
    counts, draws = [0, 0, 0], 0
    for _ in range(40):
        for batch in sampler:
            tasks = {owner[i] for i in batch}
            assert len(tasks) == 1  # a batch holds one task's rows
            counts[tasks.pop()] += 1
            draws += 1
    assert draws == 40 * len(sampler) == 40 * (100 + 25 + 5)
    for count, p in zip(counts, task_probabilities(SIZES, temperature)):
        assert abs(count / draws - p) < 4 * math.sqrt(p * (1 - p) / draws)


def test_a_task_drawn_often_cycles_through_all_its_rows():
    sampler = TemperatureBatches([[5] * 8, [5] * 400], batch_size=4, seed=1, temperature=1e9)
    seen = [i for batch in sampler for i in batch if i < 8]
    assert len(seen) > 8 and set(seen) == set(range(8))  # small task: more batches than rows, all of them used


def test_the_position_resumes_mid_epoch():
    lengths = [[3] * 40, [7] * 12]
    sampler = TemperatureBatches(lengths, 4, seed=3, temperature=2.0)
    list(sampler)  # one epoch done
    epoch = list(sampler)
    state = sampler.state_dict(consumed=5)
    resumed = TemperatureBatches(lengths, 4, seed=99, temperature=2.0)
    resumed.load_state_dict({k: v.clone() if torch.is_tensor(v) else v for k, v in state.items()})
    assert list(resumed) == epoch[5:]
    assert list(resumed) == list(sampler)  # and the epochs after it agree too


def test_a_task_list_on_the_command_line_is_a_multitask_config():
    assert expand_lists(["task=[rte,mrpc]", "seed=1"]) == ["task=multi", "task.tasks=[rte,mrpc]", "seed=1"]
    assert expand_lists(["task=rte"]) == ["task=rte"]
    assert expand_lists(["method=[lora,bitfit]"]) == ["method=composed", "method.methods=[lora,bitfit]"]


def test_a_run_on_three_tasks(tmp_path):
    cfg = compose(["model=tiny-t5", "method=lora", "task=multi", "task.tasks=[rte,mrpc,sst2]", "task.temperature=10",
                   "data.source=embedded", "trainer.max_steps=4", "trainer.batch_size=4", "data.max_eval_samples=8",
                   "trainer.progress=false", f"results_dir={tmp_path}"])  # fmt: skip
    p = plan(cfg)
    assert p.multitask and p.run_id.startswith("rte+mrpc+sst2.tiny-t5.lora.s0.")
    record = execute(p)
    assert record["status"] == "complete" and record["task"] == "rte+mrpc+sst2"
    best = record["metrics"]["best"]
    assert set(best) == {"rte/validation", "mrpc/validation", "sst2/validation", "average"}
    mains = [best[f"{t}/validation"]["accuracy"] for t in ("rte", "mrpc", "sst2")]
    assert best["average"]["score"] == pytest.approx(sum(mains) / 3)
    assert record["metrics"]["main"] == {"split": "average", "metric": "score", "value": best["average"]["score"]}
    assert [part["task"] for part in record["parts"]] == ["rte", "mrpc", "sst2"]
    assert all(part["data"]["rows"]["validation"] == 8 for part in record["parts"])

    views = per_task(record)
    assert [view["task"] for view in views] == ["rte", "mrpc", "sst2"]
    for view, value in zip(views, mains):
        assert view["metrics"]["best"] == {"validation": best[view["task"] + "/validation"]}
        assert view["metrics"]["main"]["value"] == value and view["multitask"] == ["rte", "mrpc", "sst2"]

    # in a single-task table the cell is filled, and marked as trained with other tasks
    table = build_table(load_spec("lora_table2", CONF_DIR), [record], model="tiny-t5")
    rte = table.spec.columns.index(next(c for c in table.spec.columns if c.task == "rte"))
    cell = next(row for row in table.rows if row.method == "lora").cells[rte]
    assert cell.value == pytest.approx(100 * mains[0]) and any("several tasks" in c for c in cell.caveats)


def test_a_second_run_with_other_temperature_is_another_run(tmp_path):
    common = ["model=tiny-t5", "method=lora", "task=multi", "task.tasks=[rte,sst2]", "data.source=embedded",
              f"results_dir={tmp_path}"]  # fmt: skip
    assert plan(compose(common)).run_id != plan(compose([*common, "task.temperature=10"])).run_id
    assert plan(compose(common)).run_id != plan(compose([*common[:3], "task.tasks=[sst2,rte]", *common[4:]])).run_id
