"""`peftbench score`: the official metrics on predictions files."""

import json
from pathlib import Path

import pytest

from peftbench.cli import main

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
    from peftbench.tasks import get_task

    rows = get_task("rte").load("embedded", None).splits["validation"]
    (tmp_path / "p.txt").write_text("\n".join(str(row["label"]) for row in rows[:-1]) + f"\n{1 - rows[-1]['label']}\n")
    scores = _score(capsys, "rte", "--predictions", str(tmp_path / "p.txt"))
    assert scores == {"accuracy": round((len(rows) - 1) / len(rows), 4)}


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.parametrize("task, folder, validation", [("boolq", "superglue/BoolQ", "val.jsonl"),
                                                     ("qnli", "glue/QNLI", "dev.tsv")])  # fmt: skip
def test_a_data_folder_needs_only_the_file_it_scores(capsys, tmp_path, task, folder, validation):
    """Scoring reads the validation file alone: a folder without the train file (BoolQ's and QNLI's
    are not staged in ../shared/data) scores, through the real command line's entry point."""
    source = SHARED / folder / validation
    if not source.is_file():
        pytest.skip(f"{source} is not here")
    copy = tmp_path / folder
    copy.mkdir(parents=True)
    (copy / validation).write_bytes(source.read_bytes())
    from peftbench.tasks import get_task

    rows = get_task(task).load("dir", str(tmp_path), ("validation",)).splits["validation"]
    assert set(get_task(task).load("dir", str(tmp_path), ("validation",)).splits) == {"validation"}
    (tmp_path / "p.txt").write_text("".join(f"{row['label']}\n" for row in rows[:-2]) + "".join(f"{1 - row['label']}\n" for row in rows[-2:]))
    scores = _score(capsys, task, "--predictions", str(tmp_path / "p.txt"), "--data-dir", str(tmp_path))
    assert scores == {"accuracy": round((len(rows) - 2) / len(rows), 4)}


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
