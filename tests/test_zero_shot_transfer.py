"""Zero-shot transfer between QQP and MRPC (``qqp_to_mrpc``, ``mrpc_to_qqp``; Lester et al. 2021,
Table 2): the rows each direction reads, the spec's numbers against the paper's prose, and
``peftbench reproduce`` filling the table from tiny-T5 runs.

MRPC's rows are the real slice the package ships. No QQP file is staged offline: the QQP rows
below are WRITTEN BY US in the layout download_glue_data.py writes (header ``id qid1 qid2
question1 question2 is_duplicate``); they are not real QQP data.
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

from peftbench.errors import UserError
from peftbench.results.spec import load_spec
from peftbench.tasks import get_task
from peftbench.tasks.glue import EMBEDDED_ROOT

REPO = Path(__file__).resolve().parents[1]
QQP_HEADER = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"
# WRITTEN BY US (not real QQP rows): (question1, question2, is_duplicate)
WRITTEN_QQP = [
    ("How do I learn Python fast?", "What is the quickest way to learn Python?", "1"),
    ("Why is the sky blue?", "Why do cats purr?", "0"),
    ("What is the capital of France?", "Which city is the capital of France?", "1"),
    ("How tall is Mount Everest?", "How deep is the Pacific Ocean?", "0"),
    ("Is coffee bad for you?", "Is drinking coffee unhealthy?", "1"),
    ("What do pandas eat?", "Where do pandas live?", "0"),
]


def _qqp_file(path: Path, rows, with_labels: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if with_labels:
        lines = [QQP_HEADER] + [f"{i}\t{2 * i}\t{2 * i + 1}\t{q1}\t{q2}\t{label}" for i, (q1, q2, label) in enumerate(rows)]
    else:
        lines = ["id\tquestion1\tquestion2"] + [f"{i}\t{q1}\t{q2}" for i, (q1, q2, _) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def data_root(tmp_path: Path, mrpc_rows: int = 64) -> Path:
    """glue/MRPC: the header and first ``mrpc_rows`` rows of the shipped real slice's files;
    glue/QQP: the rows written above, and a test file."""
    root = tmp_path / "data"
    (root / "glue" / "MRPC").mkdir(parents=True)
    for name in ("train.tsv", "dev.tsv"):
        lines = (EMBEDDED_ROOT / "MRPC" / name).read_bytes().splitlines(keepends=True)
        (root / "glue" / "MRPC" / name).write_bytes(b"".join(lines[: 1 + mrpc_rows]))
    _qqp_file(root / "glue" / "QQP" / "train.tsv", WRITTEN_QQP[:4])
    _qqp_file(root / "glue" / "QQP" / "dev.tsv", WRITTEN_QQP[4:])
    _qqp_file(root / "glue" / "QQP" / "test.tsv", WRITTEN_QQP, with_labels=False)
    return root


def test_each_direction_trains_and_selects_on_its_source_and_holds_out_the_targets_validation(tmp_path):
    root = data_root(tmp_path)
    mrpc = get_task("mrpc").load("dir", root).splits
    qqp = get_task("qqp").load("dir", root).splits
    forward = get_task("qqp_to_mrpc")
    data = forward.load("dir", root)
    assert set(data.splits) == {"train", "validation", "mrpc_validation"}  # QQP's unlabelled test is not read
    assert data.splits["train"] == qqp["train"] and data.splits["validation"] == qqp["validation"]
    assert data.splits["mrpc_validation"] == mrpc["validation"] and len(mrpc["validation"]) == 64
    assert str(root / "glue" / "QQP") in data.location and f"mrpc_validation: {root / 'glue' / 'MRPC'}" in data.location
    assert (forward.train_split, forward.eval_splits, forward.test_splits) == ("train", ("validation",), ("mrpc_validation",))
    assert forward.prompt is get_task("qqp").prompt and forward.verbalizers == ("No", "Yes")  # QQP's reading
    assert forward.submit is None and forward.main_metric == "accuracy" and forward.metric_names == ("accuracy", "f1")
    assert forward.benchmark == "glue_transfer" and forward.label_names == ("not_duplicate", "duplicate")
    backward = get_task("mrpc_to_qqp").load("dir", root)
    assert set(backward.splits) == {"train", "validation", "qqp_validation"}
    assert backward.splits["qqp_validation"] == qqp["validation"] and backward.splits["train"] == mrpc["train"]
    assert not get_task("mrpc_to_qqp").has_embedded  # QQP ships no slice: a folder or the hub


def test_a_missing_target_or_source_is_one_line(tmp_path):
    root = data_root(tmp_path)
    shutil.rmtree(root / "glue" / "MRPC")
    with pytest.raises(UserError, match="no GLUE MRPC folder"):
        get_task("qqp_to_mrpc").load("dir", root)
    with pytest.raises(UserError, match="GLUE QQP ships no embedded slice"):
        get_task("qqp_to_mrpc").load("embedded")


def test_the_hub_gives_each_task_from_its_own_config(monkeypatch):
    import datasets

    def config(name):  # WRITTEN BY US in nyu-mll/glue's schema
        first, second = ("question1", "question2") if name == "qqp" else ("sentence1", "sentence2")
        names = ["not_duplicate", "duplicate"] if name == "qqp" else ["not_equivalent", "equivalent"]
        features = datasets.Features({first: datasets.Value("string"), second: datasets.Value("string"),
                                      "label": datasets.ClassLabel(names=names), "idx": datasets.Value("int32")})  # fmt: skip
        split = datasets.Dataset.from_dict({first: [f"{name} a"], second: [f"{name} b"], "label": [1], "idx": [0]}, features=features)
        return datasets.DatasetDict({"train": split, "validation": split, "test": split})

    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda hub_id, name: calls.append((hub_id, name)) or config(name))
    data = get_task("mrpc_to_qqp").load("hub")
    assert calls == [("nyu-mll/glue", "mrpc"), ("nyu-mll/glue", "qqp")]
    assert data.splits["qqp_validation"] == [{"text": "qqp a", "text_pair": "qqp b", "label": 1}]
    assert set(data.splits) == {"train", "validation", "qqp_validation"}


def test_the_spec_is_the_papers_table_2_and_its_prose():
    """Table 2 as read from the text copy (conf/table/prompt_tuning_qqp_mrpc.yaml says where), held
    to what §5 says of it: QQP → MRPC, prompt tuning beats model tuning by "+3.2 accuracy and +3.1
    F1"; MRPC → QQP, "a small improvement in accuracy and a small drop in F1"."""
    spec = load_spec("prompt_tuning_qqp_mrpc", REPO / "conf")
    assert (spec.source.arxiv, spec.source.version, spec.source.table, spec.statistic, spec.seeds) == ("2104.08691", "v2", "2", "mean", 3)
    assert [(c.task, c.split, c.metric) for c in spec.columns] == [
        ("qqp_to_mrpc", "mrpc_validation", "accuracy"), ("qqp_to_mrpc", "mrpc_validation", "f1"),
        ("mrpc_to_qqp", "qqp_validation", "accuracy"), ("mrpc_to_qqp", "qqp_validation", "f1"),
    ]  # fmt: skip
    model, prompt = spec.rows
    assert (model.method, prompt.method, prompt.match) == ("full", "prompt", {"length": 100})
    assert model.model == prompt.model == "t5-xxl-lm-adapt"
    gain = {c: round(prompt.paper[c] - model.paper[c], 1) for c in prompt.paper}
    assert (gain["qqp_mrpc_acc"], gain["qqp_mrpc_f1"]) == (3.2, 3.1)
    assert 0 < gain["mrpc_qqp_acc"] < 1 and -2 < gain["mrpc_qqp_f1"] < 0
    for row in (model, prompt):  # the larger of each pair is the bold one, as printed
        for column in prompt.paper:
            assert (column in row.bold) == (row.paper[column] == max(model.paper[column], prompt.paper[column]))
    assert model.paper_spread == {"qqp_mrpc_acc": "0.9", "qqp_mrpc_f1": "2.1", "mrpc_qqp_acc": "1.3", "mrpc_qqp_f1": "1.2"}
    assert prompt.paper_spread == {"qqp_mrpc_acc": "0.1", "qqp_mrpc_f1": "0.3", "mrpc_qqp_acc": "0.8", "mrpc_qqp_f1": "0.3"}


@pytest.mark.usefixtures("one_thread")
def test_reproduce_fills_the_prompt_tuning_row_from_tiny_t5_runs(tmp_path, monkeypatch, capsys):
    from peftbench.cli import main

    monkeypatch.chdir(tmp_path)
    root, results = data_root(tmp_path, mrpc_rows=8), tmp_path / "results"
    argv = ["prompt_tuning_qqp_mrpc", "--rows", "Prompt tuning", "--model", "tiny-t5", f"data.dir={root}",
            f"results_dir={results}", "seed=0", "trainer.max_steps=1", "trainer.batch_size=4", "trainer.progress=false",
            "data.max_eval_samples=8", "task.max_length=48", "method.vocab_top=0"]  # fmt: skip (tiny-t5: WordPiece ids)
    capsys.readouterr()
    main(["reproduce", *argv, "--dry-run"])
    out = capsys.readouterr().out
    assert out.startswith("prompt_tuning_qqp_mrpc: 2 runs — 0 complete, 2 to run") and "unreachable" not in out
    main(["reproduce", *argv])
    capsys.readouterr()
    main(["table", "prompt_tuning_qqp_mrpc", "--results", str(results), "--model", "tiny-t5", "--format", "csv"])
    cells = {r["column"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out)) if r["row"] == "Prompt tuning"}
    assert set(cells) == {"qqp_mrpc_acc", "qqp_mrpc_f1", "mrpc_qqp_acc", "mrpc_qqp_f1"}
    assert all(cell["ours"] != "" and cell["n"] == "1" for cell in cells.values()), cells
    assert {cell["split"] for cell in cells.values()} == {"mrpc_validation", "qqp_validation"}
