"""The command line as a user meets it: help, listing, refusals, a run, its skip, a sweep, a table."""

import json
import subprocess
import sys

import pytest

from peftbench.cli import main
from tests.cli import peftbench

TINY = ["model=tiny-bert", "task=rte", "data.source=embedded", "trainer.progress=false"]


def test_help_and_list_import_no_ml_stack():
    code = (
        "import sys; from peftbench.cli import build_parser, main; build_parser().format_help(); "
        "main(['list', 'methods']); "
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'peft', 'accelerate') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "lora" in result.stdout and "bitfit" in result.stdout


@pytest.mark.parametrize("what, expected", [("methods", "lora"), ("tasks", "mnli"), ("models", "roberta-base"), ("tables", "lora_table2")])
def test_list(tmp_path, what, expected):
    result = peftbench("list", what, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout.split()


@pytest.mark.parametrize(
    "overrides, mentions",
    [
        (["method=nope"], "unknown method 'nope'"),
        (["task=nope"], "unknown task 'nope'"),
        (["model=nope"], "unknown model 'nope'"),
        (["method=lora", "method.r=0"], "method.r"),
        (["method=lora", "method.alpha=-1"], "method.alpha"),
        (["method=lora", "method.r=100000"], "exceeds the layer width"),
        (["method=lora", "method.targets=[attn.nope]"], "unknown roles"),
        (["task=rte", "data.dir=/nonexistent"], "/nonexistent"),
        (["trainer.epochs=abc"], "trainer.epochs"),
        (["trainer.lr=0"], "trainer.lr"),
        (["model=tiny-llama", "method=bitfit"], "has none"),
        (["task=mnli"], "nyu-mll/glue"),  # no embedded MNLI, no data.dir: the hub, unreachable offline
        (["-m", "method=lora", "method.r=1,0"], "method.r"),  # one bad job refuses the whole sweep
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, overrides, mentions):
    """In-process through the command's entry point (the same ``main`` the console script calls)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PEFTBENCH_DATA", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", *overrides, f"results_dir={tmp_path / 'results'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert mentions in lines[0]
    assert list(tmp_path.iterdir()) == [], "nothing may be written"


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [(["frob"], "invalid choice: 'frob'"), (["table"], "required: name"), (["list", "nothing"], "invalid choice")],
)
def test_command_line_mistakes_are_one_line_naming_the_help(tmp_path, argv, mentions):
    result = peftbench(*argv, cwd=tmp_path)
    (line,) = result.stderr.splitlines()
    assert result.returncode == 2 and line.startswith("error: ") and mentions in line and "--help`" in line
    assert list(tmp_path.iterdir()) == []


def test_unknown_table_exits_2(tmp_path):
    result = peftbench("table", "nope", cwd=tmp_path)
    assert result.returncode == 2 and "nope" in result.stderr and "Traceback" not in result.stderr


def test_run_writes_a_complete_record_then_skips_and_tables_it(tmp_path):
    results = tmp_path / "results"
    first = peftbench("run", *TINY, "trainer.epochs=2", f"results_dir={results}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (run_dir,) = [p for p in results.iterdir() if not p.name.startswith(".")]
    assert run_dir.name.startswith("rte.tiny-bert.lora.s0.")
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "complete"
    assert record["run_id"] == run_dir.name
    assert set(record["metrics"]["best"]) == {"validation"}
    assert record["metrics"]["main"]["metric"] == "accuracy"
    assert 0 <= record["metrics"]["main"]["value"] <= 1
    assert record["params"]["trainable"] == record["params"]["trainable_method"] + record["params"]["head"]
    assert record["data"]["source"] == "embedded" and record["data"]["sample"] is True
    assert record["data"]["rows"]["train"] == 64
    assert record["cost"]["samples_per_s"] > 0 and record["cost"]["peak_memory_mb"] > 0
    assert record["env"]["packages"]["torch"].startswith("2.13")
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in history] == [1, 2]
    assert (run_dir / "method.safetensors").stat().st_size > 0
    assert "method:" in (run_dir / "config.yaml").read_text()
    assert "| rte (sample data) | tiny-bert | lora" in first.stdout

    stamp = (run_dir / "record.json").stat().st_mtime_ns
    again = peftbench("run", *TINY, "trainer.epochs=2", f"results_dir={results}", cwd=tmp_path)
    assert again.returncode == 0 and "skipped" in again.stderr
    assert (run_dir / "record.json").stat().st_mtime_ns == stamp

    table = peftbench("table", "lora_table2", "--results", str(results), "--model", "tiny-bert", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    ours = 100 * record["metrics"]["main"]["value"]
    assert f"{ours:.1f}" in table.stdout and "86.6" in table.stdout


def test_result_changing_override_is_a_new_run_and_display_ones_are_not(tmp_path):
    results = tmp_path / "results"
    base = [*TINY, "trainer.max_steps=2", f"results_dir={results}"]
    assert peftbench("run", *base, cwd=tmp_path).returncode == 0
    display = peftbench("run", *base, "trainer.eval_batch_size=7", "trainer.log_every=3", cwd=tmp_path)
    assert "skipped" in display.stderr
    assert peftbench("run", *base, "seed=1", cwd=tmp_path).returncode == 0
    assert len([p for p in results.iterdir() if not p.name.startswith(".")]) == 2


def test_sweep_runs_every_job(tmp_path):
    results = tmp_path / "results"
    result = peftbench(
        "run", "-m", "method=lora", "method.r=1,2", *TINY, "trainer.max_steps=2", f"results_dir={results}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads((p / "record.json").read_text()) for p in results.iterdir() if not p.name.startswith(".")]
    assert sorted(r["method_config"]["r"] for r in records) == [1, 2]
    assert all(r["status"] == "complete" for r in records)
