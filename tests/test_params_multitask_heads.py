"""`peftbench params` on a multi-task run counts every task's head (models/heads.py gives each task
its own, with that task's outputs), as the run itself counts them."""

import json

import pytest

from peftbench.cli import main
from tests.helpers import finished_run

pytestmark = pytest.mark.usefixtures("one_thread")


def _params(capsys, *overrides) -> dict:
    main(["params", *overrides, "--json"])
    return json.loads(capsys.readouterr().out)


def test_every_tasks_head_is_counted_with_its_own_outputs(capsys):
    tasks = {"rte": 2, "stsb": 1, "mrpc": 2}  # classes; STS-B regresses: one output
    counts = _params(capsys, "model=roberta-base", "method=task_routing", "task=multi", "task.tasks=[rte,stsb,mrpc]")
    assert counts["head"] == sum(768 * 768 + 768 + 768 * n + n for n in tasks.values())  # RoBERTa's dense + out_proj
    single = _params(capsys, "model=roberta-base", "method=pfeiffer", "task=rte")
    assert counts["trainable_method"] == 3 * single["trainable_method"]  # a Pfeiffer adapter per task
    assert counts["trainable"] == counts["trainable_method"] + counts["head"]
    assert counts["total"] == counts["backbone"] + counts["head"] + counts["trainable_method"]


def test_the_counts_from_configs_are_the_runs_own(capsys, tmp_path):
    overrides = ["method=task_routing", "task=multi", "task.tasks=[rte,stsb]"]
    run = finished_run(tmp_path, "tiny-bert", *overrides, "trainer.max_steps=1", "trainer.batch_size=4")
    counts = _params(capsys, "model=tiny-bert", *overrides)
    assert counts["head"] == (32 * 2 + 2) + (32 * 1 + 1)  # tiny-bert: width 32; rte's two outputs, stsb's one
    recorded = run.record["params"]
    assert {k: counts[k] for k in ("trainable", "trainable_method", "head", "total")} == \
        {k: recorded[k] for k in ("trainable", "trainable_method", "head", "total")}  # fmt: skip
