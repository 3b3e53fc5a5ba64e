"""`peftbench score`: the official metrics on predictions files."""

import json
import os
import shutil
from pathlib import Path

import pytest

from peftbench.cli import main
from peftbench.errors import UserError
from peftbench.tasks import get_task, task_names
from peftbench.tasks.sources import DataSource

EXAMPLE = Path(__file__).parent / "data" / "e2e-metrics-example"


def _score(capsys, *args) -> dict:
    main(["score", *args])
    return json.loads(capsys.readouterr().out)


@pytest.mark.skipif(not __import__("shutil").which("java"), reason="METEOR 1.5 and the PTB tokenizer need Java")
def test_e2e_prints_the_official_scorers_numbers(capsys):
    scores = _score(capsys, "e2e", "--references", str(EXAMPLE / "devel-conc.txt"),
                    "--predictions", str(EXAMPLE / "baseline-output.txt"))  # fmt: skip
    # tuetschek/e2e-metrics measure_scores.py on its own example inputs
    assert scores == {"BLEU": 0.7203, "NIST": 7.8212, "METEOR": 0.4801, "ROUGE_L": 0.791, "CIDEr": 2.3039}


def test_labels_by_name_or_index(capsys, tmp_path):
    (tmp_path / "p.txt").write_text("1\nnegative\n1\n0\n")
    (tmp_path / "r.txt").write_text("positive\nnegative\nnegative\nnegative\n")
    scores = _score(capsys, "sst2", "--predictions", str(tmp_path / "p.txt"), "--references", str(tmp_path / "r.txt"))
    assert scores == {"accuracy": 0.75}


def test_against_the_tasks_own_validation_rows(capsys, tmp_path):
    rows = get_task("rte").load("embedded", None).splits["validation"]
    (tmp_path / "p.txt").write_text("\n".join(str(row["label"]) for row in rows[:-1]) + f"\n{1 - rows[-1]['label']}\n")
    scores = _score(capsys, "rte", "--predictions", str(tmp_path / "p.txt"))
    assert scores == {"accuracy": round((len(rows) - 1) / len(rows), 4)}


SHARED = Path(os.environ.get("PEFTBENCH_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.mark.parametrize("task, staged", [("boolq", "superglue/BoolQ/val.jsonl"), ("qnli", "glue/QNLI/dev.tsv")])
def test_the_shared_data_root_scores_a_task_whose_train_file_is_not_staged(capsys, tmp_path, task, staged):
    """``peftbench score boolq --predictions F --data-dir ../shared/data``: the root holds BoolQ's and
    QNLI's validation and test files but no train file (MANIFEST.md), and scoring reads only the
    validation file; through the real command line's entry point."""
    if not (SHARED / staged).is_file():
        pytest.skip(f"{SHARED / staged} is not here")
    rows = get_task(task).load("dir", str(SHARED), ("validation",)).splits["validation"]
    wrong = 2
    (tmp_path / "p.txt").write_text("".join(f"{row['label']}\n" for row in rows[:-wrong])
                                    + "".join(f"{1 - row['label']}\n" for row in rows[-wrong:]))  # fmt: skip
    scores = _score(capsys, task, "--predictions", str(tmp_path / "p.txt"), "--data-dir", str(SHARED))
    assert scores == {"accuracy": round((len(rows) - wrong) / len(rows), 4)}


def _data_source(task) -> DataSource | None:
    """The task's DataSource: its ``load`` is the source's method or a partial over it."""
    owner = getattr(task.load, "__self__", None)
    sources = [owner, *getattr(task.load, "args", ())]
    return next((source for source in sources if isinstance(source, DataSource)), None)


def _scored_from_folders() -> list[str]:
    """Tasks with a labelled split to score (not RAFT's, which scores by folds of train) and an
    embedded release slice to make a folder of."""
    tasks = [get_task(name) for name in task_names()]
    scored = [task for task in tasks if task.kind != "masked_lm"]  # mlm: scored by the model's loss, not from a file
    return [task.name for task in scored if task.has_embedded and not task.folds and _data_source(task)]


def _needed(root: Path, home: Path, task, split: str) -> set[Path]:
    """The files under ``home`` that reading ``split`` from the data root needs: every file or folder
    whose removal leaves that split's rows unchanged is removed (greedily), the rest is returned."""
    def rows():
        try:
            return task.load("dir", str(root), (split,)).splits.get(split)
        except UserError:
            return None

    expected = rows()
    assert expected, f"{task.name}: no {split} rows in its embedded slice"
    pending = sorted(home.iterdir())
    while pending:
        entry = pending.pop()
        moved = entry.with_name(entry.name + ".away")
        entry.rename(moved)
        if rows() == expected:
            shutil.rmtree(moved) if moved.is_dir() else moved.unlink()
            continue
        moved.rename(entry)
        if entry.is_dir():
            pending.extend(sorted(entry.iterdir()))
    return {path.relative_to(home) for path in home.rglob("*") if path.is_file()}


@pytest.mark.parametrize("name", _scored_from_folders())
def test_every_task_scores_from_a_folder_holding_only_the_scored_splits_file(capsys, tmp_path, name):
    """A data folder made of the task's embedded release files, less every file reading the scored
    split does not need: what is left is the scored split's own file (or files), none of which the
    training split needs too, unless the release keeps both in one file (single-file releases split
    by a column or a proportion). Then ``peftbench score TASK --data-dir`` scores from that folder
    (E2E's command reads references files, not a data folder)."""
    task, source = get_task(name), _data_source(get_task(name))
    score_root, train_root = tmp_path / "score", tmp_path / "train"
    for root in (score_root, train_root):
        shutil.copytree(source.embedded, root / source.home)
    needed = _needed(score_root, score_root / source.home, task, task.main_split)
    shared_with_training = set()
    if task.train_split in task.load("embedded").splits:  # DART ships no training file
        shared_with_training = needed & _needed(train_root, train_root / source.home, task, task.train_split)
    assert not shared_with_training or len(needed) == 1, f"{name} reads {sorted(map(str, needed))} to score"

    if task.name == "e2e":
        return
    rows = task.load("dir", str(score_root), (task.main_split,)).splits[task.main_split]
    predictions = [" ".join(row["label"].split()) if task.kind == "generation" else row["label"] for row in rows]
    if task.kind == "token_classification":  # one sentence's tags a line (CoNLL-2003)
        lines = [" ".join(task.label_names[tag] for tag in tags) for tags in predictions]
    else:
        lines = predictions
    (tmp_path / "p.txt").write_text("".join(f"{line}\n" for line in lines))
    scores = _score(capsys, name, "--predictions", str(tmp_path / "p.txt"), "--data-dir", str(score_root))
    assert scores == {metric: round(value, 4) for metric, value in task.score(predictions, rows).items()}


@pytest.mark.parametrize(
    "predictions, references, message",
    [
        ("1\n0\n", "positive\n", "2 predictions for 1 references"),
        ("great\n", "positive\n", "'great' is not a label of sst2"),
        ("3\n", "positive\n", "class 3 is out of range"),
        (None, "positive\n", "no file"),
    ],
)
def test_bad_files_exit_2_with_one_line(capsys, tmp_path, predictions, references, message):
    if predictions is not None:
        (tmp_path / "p.txt").write_text(predictions)
    (tmp_path / "r.txt").write_text(references)
    with pytest.raises(SystemExit) as exit_info:
        main(["score", "sst2", "--predictions", str(tmp_path / "p.txt"), "--references", str(tmp_path / "r.txt")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
