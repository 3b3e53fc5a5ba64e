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
