"""Composition: the demo defaults, experiment presets with per-task values, run identity."""

import pytest

from peftbench.config import identity
from peftbench.errors import UserError
from peftbench.launch import compose, jobs
from peftbench.plan import plan


def test_the_defaults_are_the_demo():
    cfg = compose([])
    assert (cfg.model.name, cfg.method.name, cfg.task.name) == ("minilm-l6", "lora", "sst2")
    p = plan(cfg)
    data = p.parts[0].data
    assert data.source == "embedded" and len(data.splits["validation"]) == 872


def test_experiment_preset_takes_per_task_values():
    rte = plan(compose(["experiment=lora_table2_roberta_base", "task=rte"])).config
    assert rte["model"]["name"] == "roberta-base"
    assert (rte["trainer"]["lr"], rte["trainer"]["epochs"], rte["trainer"]["batch_size"]) == (5e-4, 80, 32)
    assert (rte["method"]["r"], rte["method"]["alpha"], rte["task"]["max_length"]) == (8, 8, 512)
    mrpc = plan(compose(["experiment=lora_table2_roberta_base", "task=mrpc"])).config
    assert (mrpc["trainer"]["lr"], mrpc["trainer"]["epochs"]) == (4e-4, 30)
    override = plan(compose(["experiment=lora_table2_roberta_base", "task=rte", "trainer.epochs=2"])).config
    assert override["trainer"]["epochs"] == 2


def test_experiment_preset_refuses_a_task_it_does_not_cover():
    with pytest.raises(UserError, match="no value for task 'wnli'"):
        plan(compose(["experiment=lora_table2_roberta_base", "task=wnli"]))


def test_identity_leaves_out_what_does_not_change_the_result():
    cfg = plan(compose(["experiment=lora_table2_roberta_base", "task=rte"])).config
    ident = identity(cfg)
    assert "results_dir" not in ident and "per_task" not in ident and "experiment" not in ident
    assert "progress" not in ident["trainer"] and "lr" in ident["trainer"]
    assert "dir" not in ident["data"] and ident["seed"] == cfg["seed"]


def test_a_sweep_expands_to_its_cartesian_product():
    expanded = jobs(["method=lora", "method.r=1,2", "seed=1,2,3"])
    assert len(expanded) == 6
    assert ["method=lora", "method.r=2", "seed=3"] in expanded


def test_options_added_later_keep_old_run_ids_at_their_defaults_and_change_them_otherwise():
    base = plan(compose(["task=rte", "data.source=embedded"]))
    same = plan(compose(["task=rte", "data.source=embedded", "trainer.group_by_length=true", "trainer.compile=true"]))
    other = plan(compose(["task=rte", "data.source=embedded", "trainer.group_by_length=false"]))
    assert "group_by_length" not in identity(base.config)["trainer"]
    assert same.run_id == base.run_id and other.run_id != base.run_id
