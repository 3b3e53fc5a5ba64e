"""In-context learning (method=icl): k solved training rows before each evaluated row, no training.

The prompts are checked piece by piece against the task's own prompt and label words, and a run's
accuracy against rank classification computed here directly with the model, one row and one label
word at a time (no batching, no padding): the run's batched scorer must pick the same labels.
"""

import pytest
import torch

from peftbench.config import model_config
from peftbench.launch import compose
from peftbench.methods import build_method
from peftbench.methods.icl import SEPARATOR
from peftbench.models.load import load_tokenizer
from peftbench.pipeline import build_model
from peftbench.plan import plan
from peftbench.run import execute
from peftbench.tasks import get_task

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def rte():
    task = get_task("rte")
    return task, task.load("embedded", None)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(model_config("tiny-gpt2"))


def _prompted(shots, rte, tokenizer, seed=0, max_length=4096):
    task, data = rte
    icl = build_method({"name": "icl", "shots": shots})
    return icl.prompt_task(task, data.splits["train"], seed, tokenizer, max_length)


def test_each_row_gets_k_solved_training_rows_then_itself(rte, tokenizer):
    task, data = rte
    solved = {f"{task.prompt(r)} {task.verbalizers[r['label']]}" for r in data.splits["train"]}
    prompted = _prompted(3, rte, tokenizer)
    draws = []
    for row in data.splits["validation"][:20]:
        parts = prompted.prompt(row).split(SEPARATOR)
        assert len(parts) == 4 and parts[-1] == task.prompt(row)
        assert all(part in solved for part in parts[:3]) and len(set(parts[:3])) == 3
        draws.append(tuple(parts[:3]))
    assert len(set(draws)) == len(draws)  # drawn afresh for every row
    assert [prompted.prompt(row) for row in data.splits["validation"][:20]] == [
        _prompted(3, rte, tokenizer).prompt(row) for row in data.splits["validation"][:20]
    ]  # the same seed draws the same rows, in a fresh method too
    other = _prompted(3, rte, tokenizer, seed=1)
    assert sum(other.prompt(row) != prompted.prompt(row) for row in data.splits["validation"][:20]) >= 18


def test_a_row_never_demonstrates_itself(rte, tokenizer):
    task, data = rte
    train = data.splits["train"][:5]
    icl = build_method({"name": "icl", "shots": 4})
    prompted = icl.prompt_task(task, train, 0, tokenizer, 4096)
    for row in train:
        parts = prompted.prompt(row).split(SEPARATOR)
        assert parts[-1] == task.prompt(row) and all(not p.startswith(task.prompt(row)) for p in parts[:-1])
        assert len(parts) == 5  # the other four


def test_demonstrations_that_do_not_fit_are_dropped_whole(rte, tokenizer):
    task, data = rte
    row = data.splits["validation"][0]
    full = _prompted(16, rte, tokenizer).prompt(row).split(SEPARATOR)
    assert len(full) == 17
    limit = 400
    cut = _prompted(16, rte, tokenizer, max_length=limit).prompt(row).split(SEPARATOR)
    assert 1 < len(cut) < 17 and cut == full[len(full) - len(cut) :]  # the last ones, whole
    longest_answer = max(len(tokenizer(" " + w)["input_ids"]) for w in task.verbalizers)
    assert len(tokenizer(SEPARATOR.join(cut))["input_ids"]) + longest_answer <= limit


def test_zero_shots_is_the_task_itself(rte, tokenizer):
    assert _prompted(0, rte, tokenizer) is rte[0]


def _rank_by_hand(model, tokenizer, prompt: str, words) -> int:
    """arg max over label words of the mean log-probability of the word's tokens after the prompt."""
    context = tokenizer(prompt)["input_ids"]
    scores = []
    for word in words:
        target = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        logits = model(input_ids=torch.tensor([context + target])).logits[0]
        logprobs = torch.log_softmax(logits[len(context) - 1 : -1].float(), dim=-1)
        scores.append(logprobs.gather(1, torch.tensor(target)[:, None]).mean().item())
    return max(range(len(words)), key=scores.__getitem__)


def test_a_run_trains_nothing_and_scores_what_the_model_ranks(tmp_path, rte):
    cfg = compose(["model=tiny-gpt2", "method=icl", "method.shots=2", "task=rte", "data.source=embedded",
                   "data.max_eval_samples=12", "task.max_length=512", "trainer.progress=false",
                   f"results_dir={tmp_path}"])  # fmt: skip
    p = plan(cfg)
    record = execute(p)
    assert record["status"] == "complete" and record["format"] == "rank_classification"
    assert record["params"]["trainable"] == 0 and record["cost"]["steps"] == 0
    part = p.parts[0]
    model, tokenizer, _ = build_model(p.model_cfg, part.task, 0, part.format, p.config["task"])
    model.eval()
    prompted = p.method.prompt_task(part.task, part.data.splits["train"], 0, tokenizer, 512)
    rows = part.data.splits["validation"]
    with torch.no_grad():
        picked = [_rank_by_hand(model, tokenizer, prompted.prompt(row), part.task.verbalizers) for row in rows]
    expected = sum(pick == row["label"] for pick, row in zip(picked, rows)) / len(rows)
    assert record["metrics"]["best"]["validation"]["accuracy"] == pytest.approx(expected)


@pytest.mark.parametrize("task", ["copa", "e2e"])
def test_runs_on_an_encoder_decoder_with_choices_and_with_generation(tmp_path, task):
    cfg = compose([f"task={task}", "model=tiny-t5", "method=icl", "method.shots=2", "data.source=embedded",
                   "data.max_eval_samples=4", "task.max_new_tokens=4", "trainer.progress=false",
                   f"results_dir={tmp_path}"])  # fmt: skip
    record = execute(plan(cfg))
    assert record["status"] == "complete" and record["params"]["trainable"] == 0
    assert record["metrics"]["main"]["metric"] in record["metrics"]["best"]["validation"]
