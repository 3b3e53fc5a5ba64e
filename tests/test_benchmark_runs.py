"""Every SuperGLUE and RAFT task runs end to end on a tiny model of each family, in that family's
format, and leaves a complete record with the task's metric names."""

import json

import pytest

from peftbench.launch import compose
from peftbench.plan import plan
from peftbench.run import execute
from peftbench.tasks import get_task
from peftbench.tasks.raft import BENCHMARK_TASKS
from tests.test_superglue_tasks import RECORD_LINE, write_task

pytestmark = pytest.mark.usefixtures("one_thread")

SUPERGLUE = ("boolq", "cb", "copa", "multirc", "record", "wic", "wsc")
FAMILIES = {"tiny-bert": "encoder", "tiny-gpt2": "decoder", "tiny-t5": "encoder_decoder"}
SHORT = ["trainer.max_steps=1", "trainer.batch_size=4", "data.max_eval_samples=8", "trainer.progress=false",
         "task.max_length=64", "method=lora"]  # fmt: skip


def _run(results, model: str, task: str, *extra: str) -> dict:
    cfg = compose([f"model={model}", f"task={task}", f"results_dir={results}", *SHORT, *extra])
    return execute(plan(cfg))


def _expected_format(task: str, model: str) -> str:
    if FAMILIES[model] != "encoder":
        return "rank_classification"
    return "multiple_choice" if get_task(task).kind == "multiple_choice" else "classification"


@pytest.mark.parametrize("model", FAMILIES)
@pytest.mark.parametrize("task", SUPERGLUE)
def test_superglue_task_runs(tmp_path, model, task):
    extra = ["data.source=embedded"]
    if task == "record":  # no ReCoRD file is small enough to ship: a hand-made one in the original layout
        write_task(tmp_path / "data", "record", [RECORD_LINE] * 2, [RECORD_LINE])
        extra = [f"data.dir={tmp_path / 'data'}"]
    record = _run(tmp_path / "results", model, task, *extra)
    assert record["status"] == "complete" and record["format"] == _expected_format(task, model)
    assert tuple(record["metrics"]["best"]["validation"]) == get_task(task).metric_names


@pytest.mark.parametrize("model", FAMILIES)
@pytest.mark.parametrize("task", BENCHMARK_TASKS)
def test_raft_task_runs_one_fold(tmp_path, model, task):
    record = _run(tmp_path, model, task, "data.source=embedded", "data.fold=2")
    assert record["status"] == "complete" and record["format"] == _expected_format(task, model)
    assert record["run_id"].startswith(f"{task}.{model}.lora.s0.f2.")
    assert record["data"]["rows"]["train"] == 40  # 4 of the 5 folds of 50
    assert tuple(record["metrics"]["best"]["validation"]) == ("macro_f1",)


def test_folds_partition_the_rows_across_runs(tmp_path):
    """The five folds of a RAFT task validate on disjoint rows that together cover all 50."""
    from peftbench.launch import compose

    seen = []
    for fold in range(5):
        (part,) = plan(compose(["model=tiny-gpt2", "task=raft_overruling", "data.source=embedded", f"data.fold={fold}"])).parts
        data = part.data
        assert len(data.splits["train"]) == 40 and "fold" in data.location
        seen += [row["id"] for row in data.splits["validation"]]
    assert len(seen) == len(set(seen)) == 50


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-t5"])
def test_e2e_runs_and_scores_the_five_metrics(tmp_path, model):
    record = _run(tmp_path, model, "e2e", "data.source=embedded", "task.num_beams=2", "task.max_new_tokens=6",
                  "data.max_eval_samples=20")  # fmt: skip
    assert record["status"] == "complete" and record["format"] == "generation"
    assert tuple(record["metrics"]["best"]["validation"]) == ("bleu", "nist", "meteor", "rouge_l", "cider")
    # E2E's test set, as the LoRA and prefix-tuning tables report it: scored once, with the best
    # weights, after training; validation alone chose them (the last evaluation has no test)
    assert tuple(record["metrics"]["best"]["test"]) == ("bleu", "nist", "meteor", "rouge_l", "cider")
    assert "test" not in record["metrics"]["last"] and record["data"]["rows"]["test"] == 30
    history = [json.loads(line) for line in (tmp_path / record["run_id"] / "history.jsonl").read_text().splitlines()]
    assert [entry["phase"] for entry in history][-1] == "test" and all("test" not in e["metrics"] for e in history[:-1])
    assert history[-1]["metrics"]["test"] == record["metrics"]["best"]["test"]


def test_raft_run_writes_the_leaderboard_submission(tmp_path):
    """A run with RAFT's unlabelled test rows leaves data/<task>/predictions.csv (ID,Label) from the best weights."""
    import csv
    import gzip
    import shutil

    from peftbench.tasks.raft import EMBEDDED_ROOT

    folder = tmp_path / "raft" / "overruling"
    folder.mkdir(parents=True)
    shutil.copy(EMBEDDED_ROOT / "overruling" / "task.json", folder)
    (folder / "train.csv").write_bytes(gzip.decompress((EMBEDDED_ROOT / "overruling" / "train.csv.gz").read_bytes()))
    (folder / "test_unlabeled.csv").write_text("Sentence,ID\nwe overrule smith.,50\nthe motion is denied.,51\n")
    record = _run(tmp_path / "results", "tiny-bert", "raft_overruling", f"data.dir={tmp_path}")
    with open(record["submission"], newline="") as handle:
        rows = list(csv.reader(handle))
    assert record["submission"].endswith("submission/overruling/predictions.csv")
    assert rows[0] == ["ID", "Label"] and [r[0] for r in rows[1:]] == ["50", "51"]
    assert {r[1] for r in rows[1:]} <= {"overruling", "not overruling"}
