"""SAMSum (``peftbench/tasks/samsum.py``): the release's JSON files, the LoRA paper's input, ROUGE
as ROUGE-1.5.5 defines it, and a run that scores validation and, once, test."""

from __future__ import annotations

import json

import pytest

from peftbench.errors import UserError
from peftbench.tasks import get_task

TASK = get_task("samsum")


def test_the_shipped_files_are_the_releases_first_dialogues():
    data = TASK.load("embedded", None)
    assert {split: len(rows) for split, rows in data.splits.items()} == {"train": 5, "validation": 5, "test": 5}
    first = data.splits["train"][0]
    assert first["group"] == "13818513" and first["text"].startswith("Amanda: I baked  cookies. Do you want some?\r\n")
    assert first["label"] == "Amanda baked cookies and will bring Jerry some tomorrow."
    assert data.sample


def test_the_prompt_joins_the_utterances_by_newlines_then_a_blank_line():
    row = {"text": "A: Hi\r\nB: Hello!\r\n\r\nA: Bye", "label": "", "group": "1"}
    assert TASK.prompt(row) == "A: Hi\nB: Hello!\nA: Bye\n\n"
    bare = {"text": "A: Hi\nB: Hello!", "label": "", "group": "2"}  # a few released dialogues use \n
    assert TASK.prompt(bare) == "A: Hi\nB: Hello!\n\n"


def _rows(*summaries):
    return [{"text": "", "label": summary, "group": str(i)} for i, summary in enumerate(summaries)]


def test_rouge_by_hand():
    # reference "the cat sat on the mat" (6 tokens), prediction "the cat on the mat" (5): unigram overlap 5
    # -> P 1, R 5/6, F 10/11; bigrams 3 of 4 and of 5 -> F 2/3; the longest common subsequence is the
    # whole prediction -> ROUGE-L = ROUGE-1
    scores = TASK.score(["the cat on the mat"], _rows("the cat sat on the mat"))
    assert scores == pytest.approx({"rouge1": 10 / 11, "rouge2": 2 / 3, "rougeL": 10 / 11})


def test_rouge_stems_lowercases_and_averages_over_dialogues():
    scores = TASK.score(["Cats running", "nothing alike"], _rows("cat runs", "the cat sat"))
    # Porter stems: cats -> cat, running/runs -> run: the first pair matches fully, the second not at all
    assert scores == pytest.approx({"rouge1": 0.5, "rouge2": 0.5, "rougeL": 0.5})


def test_a_folder_holds_the_release_files(tmp_path):
    folder = tmp_path / "samsum"
    folder.mkdir()
    dialogue = [{"id": "7", "summary": "S.", "dialogue": "A: x\r\nB: y"}]
    for name in ("train.json", "val.json"):
        (folder / name).write_text(json.dumps(dialogue), encoding="utf-8")
    data = TASK.load("dir", tmp_path)
    assert set(data.splits) == {"train", "validation"}  # test is optional
    assert data.splits["validation"] == [{"text": "A: x\r\nB: y", "label": "S.", "group": "7"}]
    (folder / "val.json").write_text('[{"id": "7", "dialogue": "A: x"}]', encoding="utf-8")
    with pytest.raises(UserError, match="dialogue 0 has no summary"):
        TASK.load("dir", tmp_path)
    (folder / "val.json").write_text("[{", encoding="utf-8")
    with pytest.raises(UserError, match="is not JSON"):
        TASK.load("dir", tmp_path)


def test_the_hub_copy_gives_the_same_rows(monkeypatch):
    import datasets

    split = datasets.Dataset.from_dict({"id": ["7"], "dialogue": ["A: x\r\nB: y"], "summary": ["S."]})
    monkeypatch.setattr(datasets, "load_dataset", lambda *args: datasets.DatasetDict({"train": split, "test": split}))
    data = TASK.load("hub", None)
    assert data.splits["test"] == [{"text": "A: x\r\nB: y", "label": "S.", "group": "7"}]


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-t5"])
def test_a_run_scores_validation_and_test_once(tmp_path, model):
    from peftbench.launch import compose
    from peftbench.plan import plan
    from peftbench.run import execute

    cfg = compose([f"model={model}", "task=samsum", "method=lora", f"results_dir={tmp_path}", "trainer.max_steps=1",
                   "trainer.batch_size=2", "trainer.progress=false", "task.max_length=96", "task.max_new_tokens=4"])  # fmt: skip
    record = execute(plan(cfg))
    assert record["status"] == "complete" and record["format"] == "generation"
    for split in ("validation", "test"):
        assert set(record["metrics"]["best"][split]) == {"rouge1", "rouge2", "rougeL"}
