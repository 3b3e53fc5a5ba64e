"""``peftbench reproduce TABLE``: the runs a table needs, planned (``--dry-run``) or launched, and the
table shows the cells they fill. Tiny models stand in for the papers' backbones (``--model``)."""

from __future__ import annotations

import functools

import pytest

from peftbench.cli import main
from peftbench.config import CONF_DIR, available
from peftbench.results.spec import list_tables, load_spec
from peftbench.tasks import get_task

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"encoder": "tiny-bert", "decoder": "tiny-gpt2", "encoder_decoder": "tiny-t5"}
# every run as short as a run can be: one step, a few rows scored, short generations
QUICK = ["seed=0", "trainer.max_steps=1", "trainer.batch_size=4", "data.max_eval_samples=8", "trainer.progress=false",
         "task.num_beams=1", "task.max_new_tokens=4"]  # fmt: skip


def _command(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(list(argv))
        code = 0
    except SystemExit as exited:
        code = exited.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_dry_run_lists_every_run_of_a_row_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, _ = _command(capsys, "reproduce", "lora_table2", "--dry-run", "--rows", "RoBERTa-base LoRA",
                            f"results_dir={tmp_path / 'results'}")  # fmt: skip
    assert code == 0 and list(tmp_path.iterdir()) == []
    lines = out.splitlines()
    runs = [line for line in lines if "peftbench run " in line]
    assert lines[0].startswith("lora_table2: 40 runs") and len(runs) == 40  # 8 tasks × the paper's 5 seeds
    for task in ("sst2", "rte", "stsb"):
        planned = [line for line in runs if f"task={task} " in line]
        assert len(planned) == 5 and all(line.startswith("to run  ") and "FLOP " in line for line in planned)
        assert all("experiment=lora_table2_roberta_base model=roberta-base" in line for line in planned)
    mnli = [line for line in runs if "task=mnli " in line]  # no MNLI is shipped and the hub is off here
    assert len(mnli) == 5 and all(line.startswith("cannot plan (") and "data.dir=" in line for line in mnli)


def test_a_row_with_a_preset_per_task_runs_each_tasks_own(tmp_path, capsys):
    """Prefix tuning's PREFIX(0.1%) row maps E2E, WebNLG and DART to their presets (each data set's
    row of the paper's Table 6): the E2E cells are prefix_e2e's run, the nine WebNLG cells
    prefix_webnlg's and the DART cells prefix_dart's (whose training file is not shipped)."""
    code, out, _ = _command(capsys, "reproduce", "prefix_table1_acl", "--dry-run", "--rows", "GPT-2 M Prefix(0.1%)",
                            f"results_dir={tmp_path / 'results'}")  # fmt: skip
    assert code == 0 and not (tmp_path / "results").exists()
    runs = {line.split("peftbench run ")[1].split()[2]: line for line in out.splitlines() if "peftbench run " in line}
    assert set(runs) == {"task=e2e", "task=webnlg", "task=dart"}
    for task in ("e2e", "webnlg", "dart"):
        assert f"peftbench run experiment=prefix_{task} model=gpt2-medium task={task} " in runs[f"task={task}"]
    assert runs["task=webnlg"].startswith("to run  ") and runs["task=dart"].startswith("cannot plan (task dart has no 'train' rows")
    assert all(line.endswith(" seed=101") for line in runs.values())  # no seed count in the spec: the script's seed
    unreachable = [line for line in out.splitlines() if line.startswith("unreachable")]
    assert len(unreachable) == 3 and all("webnlg" not in line for line in unreachable)  # MoverScore, BERTScore, BLEURT


def test_unreachable_cells_say_why(capsys):
    code, out, _ = _command(capsys, "reproduce", "lora_table2", "--dry-run", "--rows", "RoBERTa-base Adpt-D*",
                            "--columns", "rte")  # fmt: skip
    assert code == 0
    assert "unreachable  RoBERTa-base Adpt-D 0.3M × rte: its match names adapter_drop, which no houlsby config has" in out
    code, out, _ = _command(capsys, "reproduce", "houlsby_table1", "--dry-run", "--rows", "Adapters (64)",
                            "--columns", "rte")  # fmt: skip
    assert "rte's test split is scored by the benchmark's server, not by a run" in out


def test_a_seed_copy_plans_the_run_a_fresh_composition_plans(tmp_path):
    """The dry run composes a row's config once and copies it per seed: each copy plans to the run
    that composing the run's own overrides plans to."""
    from peftbench.launch import compose
    from peftbench.plan import plan
    from peftbench.reproduce import _runs, work_out

    overrides = [f"results_dir={tmp_path}"]
    reproduction = work_out("lora_table2", rows=["RoBERTa-base LoRA"], columns=["rte"], overrides=overrides)
    (sweep,) = reproduction.sweeps
    assert [job.overrides[-1] for job in sweep.jobs] == [f"seed={seed}" for seed in range(5)]  # the paper's 5
    ids = {plan(config()).run_id for _, config in _runs(sweep, overrides)}
    assert ids == {plan(compose(job.overrides)).run_id for job in sweep.jobs} and len(ids) == 5


def test_launching_takes_the_plans_the_reproduction_made(tmp_path, monkeypatch, capsys):
    """reproduce plans every run to list it; launching them executes those plans, not new ones."""
    from peftbench import plan as planning

    planned = []
    make_plan = planning.Planner._plan
    monkeypatch.setattr(planning.Planner, "_plan", lambda self, cfg, config: planned.append(config["seed"]) or make_plan(self, cfg, config))
    monkeypatch.chdir(tmp_path)
    code, _, err = _command(capsys, "reproduce", "lora_table2", "--rows", "RoBERTa-base LoRA", "--columns", "rte",
                            "--model", "tiny-roberta", f"results_dir={tmp_path / 'results'}", *QUICK[1:], "seed=0,1")  # fmt: skip
    assert code == 0, err[-2000:]
    assert sorted(planned) == [0, 1]  # each of the two runs planned once
    assert len([p for p in (tmp_path / "results").iterdir() if not p.name.startswith(".")]) == 2


def test_bad_names_are_one_line(capsys):
    code, _, err = _command(capsys, "reproduce", "lora_table2", "--dry-run", "--rows", "nope*")
    assert code == 2 and err.startswith("error: --rows 'nope*' names no row of table lora_table2")
    code, _, err = _command(capsys, "reproduce", "nope")
    assert code == 2 and "unknown table 'nope'" in err
    code, _, err = _command(capsys, "reproduce", "lora_table2", "--model", "gpt2=tiny-bert", "--dry-run")
    assert code == 2 and "has no gpt2 rows" in err


def _a_row_to_fill(name):
    """The first row a tiny model of its backbone's family can stand in for, with the columns it
    can fill offline: cells reproduce can reach whose task ships rows of the column's split."""
    from peftbench.config import model_config
    from peftbench.models.anatomy import anatomy_of
    from peftbench.models.load import model_type
    from peftbench.reproduce import _unreachable

    spec = load_spec(name, CONF_DIR)
    for row in (row for row in spec.rows if row.model in available("model")):
        tiny = TINY[anatomy_of(model_type(model_config(row.model))).family]
        columns = [c.id for c in spec.columns if not _unreachable(row, tiny, c) and _ships(c.task, c.split)]
        if columns:
            return spec, row, columns, tiny
    return spec, None, [], None


@functools.cache
def _ships(task_name: str, split: str) -> bool:
    """Whether the package ships rows of the task's split and rows to train on (MRQA ships SQuAD,
    no out-of-domain set; DART ships dev and test rows, no training file)."""
    task = get_task(task_name)
    splits = task.load("embedded").splits if task.has_embedded else {}
    return split in splits and task.train_split in splits


@pytest.mark.slow
@pytest.mark.parametrize("name", list_tables(CONF_DIR))
def test_reproduce_fills_a_row_of_every_table_on_a_tiny_model(tmp_path, monkeypatch, capsys, name):
    """For each spec, one row that a tiny model can stand in for: `reproduce --model` launches its
    runs, and `table --model` shows those cells filled. A spec with no such row says why in every
    cell of its dry run."""
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    spec, row, columns, tiny = _a_row_to_fill(name)
    if row is None:  # every cell is a task, model or method peftbench lacks, or data not here, each named with why
        from peftbench.reproduce import work_out

        reproduction = work_out(name, overrides=[f"results_dir={results}"])
        reasons = [why for _, _, why in reproduction.unreachable]
        reasons += [job.why for job in reproduction.jobs if job.state != "complete"]
        assert reasons and all(reasons)
        return
    substitute = f"{row.model}={tiny}"
    argv = ["--rows", row.label, *(a for c in columns for a in ("--columns", c)), "--model", substitute]
    code, out, err = _command(capsys, "reproduce", name, *argv, f"results_dir={results}", *QUICK)
    assert code == 0, err[-3000:]
    code, out, err = _command(capsys, "table", name, "--results", str(results), "--model", substitute, "--format", "csv")
    import csv
    import io

    cells = {r["column"]: r for r in csv.DictReader(io.StringIO(out)) if r["row"] == row.label}
    assert all(cells[column]["ours"] != "" for column in columns), (row.label, {c: cells[c]["ours"] for c in columns})
    code, out, _ = _command(capsys, "reproduce", name, *argv, "--dry-run", f"results_dir={results}", *QUICK)
    assert "0 to run" in out.splitlines()[0], out  # a second time: everything is complete
