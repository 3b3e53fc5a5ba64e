"""GLUE server submissions: each run's test predictions as the server's TSV (``index<TAB>prediction``,
labels spelled as the task's files spell them), MNLI's three files (AX from the diagnostic set),
and ``peftbench submit glue RUN…`` zipping the eleven files, refusing in one line what the server
would refuse."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from peftbench.cli import main
from peftbench.tasks import get_task
from peftbench.tasks.glue_submission import SERVER_FILES

SHARED_GLUE = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"
EMBEDDED_GLUE = Path(__file__).resolve().parents[1] / "peftbench" / "tasks" / "data" / "glue"
# The file names the GLUE server reads, as its submission page lists them.
SERVER_NAMES = {"CoLA.tsv", "SST-2.tsv", "MRPC.tsv", "STS-B.tsv", "QQP.tsv", "MNLI-m.tsv", "MNLI-mm.tsv",
                "QNLI.tsv", "RTE.tsv", "WNLI.tsv", "AX.tsv"}  # fmt: skip


def _lines(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_task_and_split_has_its_server_file():
    assert set(SERVER_FILES.values()) == SERVER_NAMES
    for (task, split) in SERVER_FILES:
        assert split in get_task(task).submission_splits


def test_labels_are_spelled_as_the_files_spell_them(tmp_path):
    rows = [{"text": "a", "text_pair": "b", "label": None}] * 3
    rte = get_task("rte").submit(tmp_path, "test", rows, [0, 1, 0])
    assert _lines(rte) == [["index", "prediction"], ["0", "entailment"], ["1", "not_entailment"], ["2", "entailment"]]
    assert _lines(get_task("cola").submit(tmp_path, "test", rows, [1, 0, 1]))[1:] == [["0", "1"], ["1", "0"], ["2", "1"]]
    assert _lines(get_task("stsb").submit(tmp_path, "test", rows, [4.2, 0.0, 3.14159]))[1:] == [
        ["0", "4.200"], ["1", "0.000"], ["2", "3.142"]]  # fmt: skip
    mnli = get_task("mnli")
    assert [mnli.submit(tmp_path, split, rows, [2, 1, 0]).name for split in mnli.submission_splits] == [
        "MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv"]  # fmt: skip
    assert _lines(tmp_path / "AX.tsv")[1] == ["0", "contradiction"]
    with pytest.raises(ValueError, match="not a class index"):
        get_task("rte").submit(tmp_path, "test", rows, [0, 2, 0])


needs_shared = pytest.mark.skipif(not SHARED_GLUE.is_dir(), reason="../shared/data/glue is not on this machine")


@needs_shared
def test_mnli_reads_the_diagnostic_set_beside_it_as_test_ax(tmp_path):
    glue = tmp_path / "glue"
    (glue / "MNLI").mkdir(parents=True)
    header = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
    row = "0\t1\t1e\tfiction\t-\t-\t-\t-\tA man sleeps.\tA person rests.\tentailment\tentailment\n"  # written by us
    for name in ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv"):
        (glue / "MNLI" / name).write_text(header + row, encoding="utf-8")
    shutil.copytree(SHARED_GLUE / "diagnostic", glue / "diagnostic")
    splits = get_task("mnli").load("dir", tmp_path).splits
    assert len(splits["test_ax"]) == 1104 and splits["test_ax"][0] == {
        "text": "The cat sat on the mat.", "text_pair": "The cat did not sit on the mat.", "label": None}  # fmt: skip


def test_the_diagnostic_file_beside_another_task_does_not_make_its_folder_mnlis(tmp_path):
    """MNLI's test_ax lives in glue/diagnostic/: it must not mark glue/RTE as an MNLI folder."""
    (tmp_path / "diagnostic").mkdir()
    (tmp_path / "diagnostic" / "diagnostic.tsv").write_text("index\tsentence1\tsentence2\n", encoding="utf-8")
    (tmp_path / "RTE").mkdir()
    from peftbench.errors import UserError

    with pytest.raises(UserError, match="no GLUE MNLI folder"):
        get_task("mnli").load.__self__.task_folder(tmp_path / "RTE")


@needs_shared
@pytest.mark.usefixtures("one_thread")
def test_a_run_with_the_real_test_file_writes_the_server_file(tmp_path):
    rte = tmp_path / "data" / "glue" / "RTE"
    rte.mkdir(parents=True)
    for name in ("train.tsv", "dev.tsv"):
        shutil.copy(EMBEDDED_GLUE / "RTE" / name, rte / name)
    test_lines = (SHARED_GLUE / "RTE" / "test.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[:21]
    (rte / "test.tsv").write_text("".join(test_lines), encoding="utf-8")  # header + the first 20 real test rows
    from peftbench.launch import compose
    from peftbench.plan import plan
    from peftbench.run import execute

    run = ["model=tiny-bert", "task=rte", "method=lora", f"data.dir={tmp_path / 'data'}", "trainer.max_steps=1",
           "trainer.batch_size=4", "trainer.progress=false", "task.max_length=64"]  # fmt: skip
    record = execute(plan(compose([*run, f"results_dir={tmp_path / 'results'}"])))
    written = Path(record["submission"])
    assert written.name == "RTE.tsv" and written.parent.name == "submission"
    lines = _lines(written)
    assert lines[0] == ["index", "prediction"] and [line[0] for line in lines[1:]] == [str(i) for i in range(20)]
    assert {line[1] for line in lines[1:]} <= {"entailment", "not_entailment"}

    # trainer.submission=false: the same run (id, metrics) without the test predictions
    skipped = execute(plan(compose([*run, "trainer.submission=false", f"results_dir={tmp_path / 'without'}"])))
    assert skipped["run_id"] == record["run_id"] and skipped["metrics"] == record["metrics"]
    assert skipped["submission"] is None
    assert not (tmp_path / "without" / record["run_id"] / "submission").exists()


def _run(results: Path, name: str, files: list[str], status: str = "complete") -> Path:
    folder = results / name
    (folder / "submission").mkdir(parents=True)
    (folder / "record.json").write_text(json.dumps({"status": status, "task": name}), encoding="utf-8")
    for file in files:
        (folder / "submission" / file).write_text("index\tprediction\n0\t1\n", encoding="utf-8")
    return folder


def _submit(capsys, *argv) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        main(["submit", "glue", *argv])
    return done.value.code, capsys.readouterr().err


def test_submit_zips_the_eleven_files_at_the_root(tmp_path, capsys):
    runs = [_run(tmp_path, "mnli", ["MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv"])]
    runs += [_run(tmp_path, name, [file]) for name, file in (
        ("cola", "CoLA.tsv"), ("sst2", "SST-2.tsv"), ("mrpc", "MRPC.tsv"), ("stsb", "STS-B.tsv"), ("qqp", "QQP.tsv"),
        ("qnli", "QNLI.tsv"), ("rte", "RTE.tsv"), ("wnli", "WNLI.tsv"))]  # fmt: skip
    out = tmp_path / "glue.zip"
    main(["submit", "glue", *map(str, runs), "--out", str(out)])
    with zipfile.ZipFile(out) as archive:
        assert set(archive.namelist()) == SERVER_NAMES
        assert archive.read("AX.tsv") == b"index\tprediction\n0\t1\n"
    code, err = _submit(capsys, *map(str, runs), "--out", str(out))  # never over an existing file
    assert code == 2 and "exists" in err and len(err.splitlines()) == 1


def test_submit_refuses_what_the_server_would_before_writing(tmp_path, capsys):
    out = tmp_path / "glue.zip"
    rte = _run(tmp_path, "rte", ["RTE.tsv"])
    code, err = _submit(capsys, str(rte), "--out", str(out))
    assert code == 2 and "missing CoLA.tsv" in err and "--partial" in err and len(err.splitlines()) == 1
    code, err = _submit(capsys, str(rte), str(_run(tmp_path / "again", "rte", ["RTE.tsv"])), "--out", str(out))
    assert code == 2 and "RTE.tsv comes from two runs" in err
    code, err = _submit(capsys, str(_run(tmp_path, "cola", ["CoLA.tsv"], status="running")), "--out", str(out))
    assert code == 2 and "not complete" in err
    code, err = _submit(capsys, str(_run(tmp_path, "boolq", [])), "--out", str(out))
    assert code == 2 and "no GLUE test predictions" in err
    code, err = _submit(capsys, str(tmp_path / "nowhere"), "--out", str(out))
    assert code == 2 and "not a run folder" in err
    damaged = _run(tmp_path, "sst2", ["SST-2.tsv"])
    (damaged / "record.json").write_text('{"status": "comp', encoding="utf-8")  # cut short
    code, err = _submit(capsys, str(damaged), "--out", str(out))
    assert code == 2 and "damaged" in err and len(err.splitlines()) == 1
    assert not out.exists()
    main(["submit", "glue", str(rte), "--out", str(out), "--partial"])
    with zipfile.ZipFile(out) as archive:
        assert archive.namelist() == ["RTE.tsv"]
