"""Every kind of bad input the reliability issue names, through the real command line.

Each case: exit status 2, one line on stderr that names the problem (and the fix, after a ';'),
no traceback, and nothing written (the run-time cases, disk full and a diverging loss, write only
what they must: the failed record and the last good checkpoint).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

from tests.cli import offline_env, peftbench

TINY = ["model=tiny-bert", "task=rte", "data.source=embedded", "trainer.progress=false"]
RTE_HEADER = "index\tsentence1\tsentence2\tlabel\n"
RTE_ROW = "{i}\tA man is walking his dog in the park.\tA man is outside.\t{label}\n"


def _rte_folder(root, train=None, dev=None):
    """A GLUE RTE folder under ``root/glue/RTE`` (None leaves a file out)."""
    folder = root / "glue" / "RTE"
    folder.mkdir(parents=True)
    for name, text in (("train.tsv", train), ("dev.tsv", dev)):
        if text is not None:
            (folder / name).write_text(text)
    return root / "glue"


def _rows(n, label="entailment"):
    return RTE_HEADER + "".join(RTE_ROW.format(i=i, label=label) for i in range(n))


def _tiny_bert_folder(root, weights: bytes | None):
    """A model folder with tiny-bert's config.json (and ``weights`` as model.safetensors)."""
    from peftbench.config import model_config
    from peftbench.models.load import architecture_config

    folder = root / "model"
    folder.mkdir(parents=True)
    architecture_config(model_config("tiny-bert")).save_pretrained(folder)
    if weights is not None:
        (folder / "model.safetensors").write_bytes(weights)
    return folder


def _plan_cases(tmp):
    """(name, command line, text the one line must contain) for every plan-time refusal."""
    good_train = _rows(8)
    broken_train = good_train + "9\tonly two\n"
    return [
        ("unknown model", ["run", "model=nope"], "unknown model 'nope'"),
        ("unknown method", ["run", "method=nope"], "unknown method 'nope'"),
        ("unknown task", ["run", "task=nope"], "unknown task 'nope'"),
        ("unknown table", ["table", "nope"], "unknown table 'nope'"),
        ("unknown experiment", ["run", "experiment=nope"], "unknown experiment 'nope'"),
        ("wrong type", ["run", *TINY, "trainer.epochs=abc"], "trainer.epochs"),
        ("r = 0", ["run", *TINY, "method=lora", "method.r=0"], "method.r"),
        ("r < 0", ["run", *TINY, "method=lora", "method.r=-4"], "method.r"),
        ("r above the width", ["run", *TINY, "method=lora", "method.r=100000"], "exceeds the layer width"),
        ("negative alpha", ["run", *TINY, "method=lora", "method.alpha=-1"], "method.alpha"),
        ("zero prefix length", ["run", *TINY, "method=prefix", "method.length=0"], "method.length"),
        ("zero prompt length", ["run", *TINY, "method=prompt", "method.length=0"], "method.length"),
        ("bottleneck ≥ hidden", ["run", *TINY, "method=houlsby", "method.bottleneck=4096"], "bottleneck"),
        ("top-k above the layers", ["run", *TINY, "method=top_k", "method.k=99"], "method.k"),
        ("method undefined for the family", ["run", *TINY, "model=tiny-llama", "method=bitfit"], "has none"),
        ("generation task on an encoder", ["run", *TINY, "task=e2e"], "generates text"),
        ("missing data folder", ["run", *TINY, "data.source=dir", f"data.dir={tmp / 'nowhere'}"], "nowhere"),
        ("missing split file", ["run", *TINY, "data.source=dir", f"data.dir={_rte_folder(tmp / 'a', train=good_train)}"],
         "dev.tsv"),
        ("malformed row", ["run", *TINY, "data.source=dir",
                           f"data.dir={_rte_folder(tmp / 'b', train=broken_train, dev=_rows(4))}"],
         "train.tsv:10"),
        ("label outside the label set", ["run", *TINY, "data.source=dir",
                                         f"data.dir={_rte_folder(tmp / 'c', train=good_train, dev=_rows(2, 'maybe'))}"],
         "'maybe'"),
        ("empty split", ["run", *TINY, "data.source=dir", f"data.dir={_rte_folder(tmp / 'd', train=good_train, dev=RTE_HEADER)}"],
         "no rows"),
        ("model folder without weights", ["run", *TINY, "model.random_init=false",
                                          f"model.path={_tiny_bert_folder(tmp / 'e', None)}"], "no *.safetensors"),
        ("corrupt safetensors", ["run", *TINY, "model.random_init=false",
                                 f"model.path={_tiny_bert_folder(tmp / 'f', b'not a safetensors file at all')}"],
         "model.safetensors"),
        ("unwritable results folder", ["run", *TINY, f"results_dir={tmp / 'file' / 'results'}"], "not writable"),
        ("sample limit below 1", ["run", *TINY, "data.max_train_samples=0"], "≥ 1"),
        ("frozen bf16 without bf16", ["run", *TINY, "trainer.precision=fp32", "trainer.frozen_bf16=true"], "frozen_bf16"),
        ("in-context learning on an encoder", ["run", *TINY, "method=icl"], "not defined for encoder"),
        ("in-context learning on a head", ["run", *TINY, "model=tiny-gpt2", "task.format=classification", "method=icl"],
         "method icl needs"),
        ("negative shots", ["run", *TINY, "model=tiny-gpt2", "method=icl", "method.shots=-1"], "method.shots"),
        ("multi-task without its tasks", ["run", *TINY, "model=tiny-t5", "task=multi"], "task=[rte,mrpc,sst2]"),
        ("multi-task mixing heads and text", ["run", *TINY, "method=ptuning", "task=[rte,sst2]"], "mix the two"),
        ("sweep with one bad job", ["run", "-m", *TINY, "method=lora", "method.r=1,0"], "method.r"),
    ]


def _check_one_line(result, mentions, after_start=False):
    """Status 2 and one error line; a refusal at run time (``after_start``) may follow the run's
    own progress lines, so there the error is the last line and the only one."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    if after_start:
        lines = [line for line in lines if line.startswith("error")]
        assert result.stderr.strip().splitlines()[-1] == lines[-1]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert mentions in lines[0], lines[0]
    assert ";" in lines[0], f"the line names no fix: {lines[0]}"
    return lines[0]


# Cases also run as a real process (interpreter start, exit status, no traceback); the others run
# ``peftbench.cli.main``, the command's entry point, in this process: the same code from argv to
# the exit status, without three seconds of imports per case.
IN_A_REAL_PROCESS = {"unknown model", "wrong type", "malformed row", "sweep with one bad job"}


def _in_process(argv: list[str], cwd, capsys, monkeypatch) -> subprocess.CompletedProcess:
    from peftbench.cli import main

    monkeypatch.chdir(cwd)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(argv)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, exited.value.code, captured.out, captured.err)


def test_every_plan_time_refusal(tmp_path, capsys, monkeypatch):
    """One table, the real command, in a folder whose only contents are the inputs themselves."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "file").write_text("a file, not a folder\n")
    cases = _plan_cases(inputs)
    assert len(cases) >= 20
    work = tmp_path / "work"
    work.mkdir()
    before = sorted(p.relative_to(inputs) for p in inputs.rglob("*"))
    failures = []
    for name, argv, mentions in cases:
        if argv[0] == "run":
            argv = [*argv, f"results_dir={work / 'results'}"] if not any(a.startswith("results_dir=") for a in argv) else argv
        results = [_in_process(argv, work, capsys, monkeypatch)]
        if name in IN_A_REAL_PROCESS:
            results.append(peftbench(*argv, cwd=work))
        try:
            for result in results:
                _check_one_line(result, mentions)
        except AssertionError as error:
            failures.append(f"{name}: {error}")
        assert list(work.iterdir()) == [], f"{name}: wrote {list(work.iterdir())}"
    assert sorted(p.relative_to(inputs) for p in inputs.rglob("*")) == before
    assert not failures, "\n".join(failures)


def _limited_file_size(limit: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_disk_full_during_a_write_keeps_what_was_written_whole(tmp_path):
    """A write that hits the file-size limit (EFBIG, as ENOSPC on a full disk) is one line and
    status 2; every file left is whole, no temporary file is left behind."""
    results = tmp_path / "results"
    argv = ["run", *TINY, "trainer.max_steps=2", f"results_dir={results}"]
    result = subprocess.run(
        [sys.executable, "-m", "peftbench", *argv], cwd=tmp_path, env=offline_env(),
        capture_output=True, text=True, timeout=300, preexec_fn=_limited_file_size(20_000),
    )  # fmt: skip
    line = _check_one_line(result, "no space", after_start=True)
    (run_dir,) = results.iterdir()
    assert str(run_dir) in line
    assert not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "failed" and "no space" in record["error"]


def test_diverging_loss_stops_the_run_keeps_the_last_good_checkpoint_and_says_why(tmp_path):
    results = tmp_path / "results"
    argv = ["run", *TINY, "method=full", "trainer.lr=1e30", "trainer.max_grad_norm=0", "trainer.log_every=1",
            "trainer.checkpoint_every_steps=1", "trainer.batch_size=4", f"results_dir={results}"]  # fmt: skip
    result = peftbench(*argv, cwd=tmp_path)
    line = _check_one_line(result, "not finite", after_start=True)
    (run_dir,) = results.iterdir()
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "failed" and "not finite" in record["error"]
    from peftbench.train.checkpoint import Checkpoints

    kept = Checkpoints(run_dir / "checkpoints" / "train").steps()
    step = int(line.split("at step ")[1].split(";")[0])
    assert kept and max(kept) < step, (kept, step)


def test_an_update_that_overflows_float_stops_the_run_in_one_line(tmp_path):
    """lr 1e38: Adam's update overflows float32 (the fused kernel writes inf into the weights at
    step 1); step 2's loss is NaN, and the check before the epoch's checkpoint (64 rows, batch 32)
    stops the run there, before anything diverged is saved."""
    results = tmp_path / "results"
    argv = ["run", *TINY, "method=full", "trainer.lr=1e38", "trainer.max_grad_norm=0", f"results_dir={results}"]
    result = peftbench(*argv, cwd=tmp_path)
    line = _check_one_line(result, "loss is not finite at step 2", after_start=True)
    assert "no checkpoint was kept" in line
    (run_dir,) = results.iterdir()
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "failed" and "lower trainer.lr" in record["error"]
