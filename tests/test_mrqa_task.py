"""MRQA zero-shot transfer (``mrqa_squad``): the release reader on the real SQuAD slice, T5's SQuAD
input, F1/EM against MRQA's official script, bad files, the hub's subsets, and a tiny-T5 prompt
tuning run that records SQuAD validation and an out-of-domain split, which fill the table.

The real rows are the embedded SQuAD slice (peftbench/tasks/data/README.md). No out-of-domain row
could be found offline: the TextbookQA and DROP rows below are WRITTEN BY US in the release format
(a header line, then one context per line with its qas), marked as such; they are not real data.
The official scorer's numbers are stored in ``tests/data/mrqa-official/`` (README there), from the
systems and gold files of ``tests/mrqa_systems.py``. The scorer runs live again when
``MRQA_EVAL_SCRIPT`` names a copy of ``mrqa_official_eval.py``.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from peftbench.errors import UserError
from peftbench.tasks import get_task
from peftbench.tasks.mrqa import EMBEDDED, pad_punctuation, prompt, read_release_file
from tests.mrqa_systems import (
    DEV,
    GOLDS,
    gold_files,
    prediction_file,
    sha256_text,
    sha256_unpacked,
    systems,
    validation_rows,
    write_release_file,
)

REPO = Path(__file__).resolve().parents[1]
OFFICIAL = REPO / "tests" / "data" / "mrqa-official" / "scores.json"
TASK = get_task("mrqa_squad")


# WRITTEN BY US in the release format (not real TextbookQA rows): two contexts, three questions.
WRITTEN_TEXTBOOKQA = [
    {"id": "", "context": "Igneous rock forms when magma cools. Lava is magma at the surface.",
     "qas": [{"qid": "written-tqa-1", "question": "What forms when magma cools?", "answers": ["Igneous rock"]},
             {"qid": "written-tqa-2", "question": "What is magma at the surface called?", "answers": ["Lava", "lava"]}]},
    {"id": "", "context": "The U.S. Geological Survey maps faults.",
     "qas": [{"qid": "written-tqa-3", "question": "Who maps faults?", "answers": ["The U.S. Geological Survey"]}]},
]  # fmt: skip


def data_folder(root: Path) -> Path:
    """A data root with the real SQuAD slice under mrqa/train and mrqa/dev, and the written
    TextbookQA rows beside the dev file, as download_out_of_domain_dev.sh would put the real one."""
    shutil.copytree(EMBEDDED, root / "mrqa")
    write_release_file(root / "mrqa" / "dev" / "TextbookQA.jsonl.gz", "TextbookQA", WRITTEN_TEXTBOOKQA)
    return root


# --- the reader on the real slice -------------------------------------------------------------


def test_the_shipped_slice_reads_as_the_release_file_lists_it():
    data = TASK.load("embedded")
    assert data.sample and set(data.splits) == {"train", "validation"}  # no out-of-domain rows ship
    with gzip.open(DEV, "rt", encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    assert lines[0] == {"header": {"dataset": "SQuAD", "split": "dev"}}
    questions = [qa for context in lines[1:] for qa in context["qas"]]
    assert len(questions) == len(data.splits["validation"]) == 80  # 30 + 25 + 25 (Super Bowl 50)
    for row, qa in zip(data.splits["validation"], questions):
        assert (row["group"], row["question"], row["answers"]) == (qa["qid"], qa["question"], qa["answers"])
    first = data.splits["validation"][0]
    assert first["answers"] == ["Denver Broncos"] * 3 and first["label"] == "Denver Broncos"
    assert len(data.splits["train"]) == 3 and data.splits["train"][0]["label"] == " $ 31 . 5 billion"


def test_gzipped_and_unpacked_files_read_alike(tmp_path):
    plain = tmp_path / "SQuAD.jsonl"
    plain.write_bytes(gzip.decompress(DEV.read_bytes()))
    assert read_release_file(plain) == read_release_file(DEV)


def test_the_input_is_t5s_squad_preprocessing():
    """t5/data/preprocessors.py ``squad`` at the paper's time (f0b29894): 'question: q context: c',
    each text padded by _pad_punctuation (RE2's \\W, i.e. anything but [0-9A-Za-z_], gets spaces;
    runs of RE2's \\s, [\\t\\n\\f\\r ], become one space)."""
    row = TASK.load("embedded").splits["validation"][0]
    assert prompt(row).startswith(
        "question: Which NFL team represented the AFC at Super Bowl 50 ? context: Super Bowl 50 was an American "
        "football game to determine the champion of the National Football League ( NFL ) for the 2015 season ."
    )
    assert pad_punctuation("U.S.") == "U . S . "
    assert pad_punctuation("Levi's  Stadium\n") == "Levi ' s Stadium "
    assert pad_punctuation("François") == "Fran ç ois"  # RE2's \w is ASCII (fixed in T5 in 2022, after the paper)
    assert pad_punctuation("24\u201310") == "24 \u2013 10"
    assert pad_punctuation("a\u00a0b") == "a \u00a0 b"  # a no-break space is no RE2 \s: padded, not collapsed
    assert pad_punctuation(pad_punctuation("Santa Clara, California")) == pad_punctuation("Santa Clara, California")


def test_a_long_context_keeps_its_question_on_t5(tmp_path):
    """T5 cuts an input at its end (seqio keeps the first tokens, then </s>): the question stays."""
    from peftbench.config import model_config
    from peftbench.formats import make_format
    from peftbench.models.load import load_tokenizer

    tokenizer = load_tokenizer(model_config("tiny-t5"))
    row = {**TASK.load("embedded").splits["validation"][0]}
    row["text"] = " ".join([row["text"]] * 20)
    options = {"max_length": 64, "family": "encoder_decoder", "label_smoothing": 0.0}
    (feature,) = make_format("generation", TASK, tokenizer, options).encode([row])
    full = tokenizer(prompt(row))["input_ids"]
    assert len(feature["prompt"]) == 64 and feature["prompt"] == full[:63] + [tokenizer.sep_token_id] == full[:63] + full[-1:]
    decoder = make_format("generation", TASK, tokenizer, {**options, "family": "decoder"})
    (feature,) = decoder.encode([row])  # a decoder keeps the end, where its answer follows
    assert feature["prompt"] == full[-(64 - len(feature["target"])) :]


# --- F1 and EM against mrqa_official_eval.py --------------------------------------------------


def official() -> dict:
    return json.loads(OFFICIAL.read_text(encoding="utf-8"))


def test_f1_and_em_are_the_official_scripts_on_the_texts_it_compares(tmp_path):
    """The official rule on the real dev slice: ``superglue_metrics.record`` gives the script's
    numbers on the raw answers. The task's score is the script's on T5's padded answers and
    predictions (a gold file written with padded answers), the texts T5's squad metric compares.
    The script's numbers come from the stored fixture, and the inputs are checked to be the ones
    it scored."""
    from peftbench.tasks.superglue_metrics import record

    stored, rows = official(), validation_rows()
    golds = gold_files(tmp_path)
    assert {gold: sha256_unpacked(golds[gold]) for gold in GOLDS} == {
        gold: stored["gold"][gold]["sha256_unpacked"] for gold in GOLDS
    }
    built = systems(rows)
    assert list(built) == list(stored["systems"])
    differs = 0
    for name, predictions in built.items():
        scores = stored["systems"][name]
        for gold in GOLDS:
            assert sha256_text(prediction_file(rows, predictions, gold)) == scores[gold]["sha256"], (name, gold)
        ours = record(predictions, [row["answers"] for row in rows])
        assert ours == {"f1": pytest.approx(scores["raw"]["f1"] / 100, abs=1e-12),
                        "em": pytest.approx(scores["raw"]["exact_match"] / 100, abs=1e-12)}, name  # fmt: skip
        task = TASK.score(predictions, rows)
        assert task == {"f1": pytest.approx(scores["padded"]["f1"] / 100, abs=1e-12),
                        "em": pytest.approx(scores["padded"]["exact_match"] / 100, abs=1e-12)}, name  # fmt: skip
        differs += task != ours
    assert differs  # "U.S." and "Broncos-" split into tokens on T5's side: the two texts differ


@pytest.mark.skipif(
    not os.environ.get("MRQA_EVAL_SCRIPT"),
    reason="MRQA_EVAL_SCRIPT names no copy of MRQA-Shared-Task-2019's mrqa_official_eval.py (stored scores checked instead)",
)  # fmt: skip
def test_the_official_script_gives_the_stored_scores(tmp_path):
    out = tmp_path / "scores.json"
    script = REPO / "scripts" / "reference" / "mrqa_official.py"
    subprocess.run([sys.executable, str(script), "--script", os.environ["MRQA_EVAL_SCRIPT"], "--out", str(out)],
                   capture_output=True, text=True, check=True)  # fmt: skip
    live, stored = json.loads(out.read_text(encoding="utf-8")), official()
    assert (live["gold"], live["systems"]) == (stored["gold"], stored["systems"])
    assert live["provenance"]["git_blob"] == stored["provenance"]["git_blob"]


# --- bad files -----------------------------------------------------------------------------------


def test_bad_release_files_are_one_line_each(tmp_path):
    (tmp_path / "empty" / "mrqa").mkdir(parents=True)
    with pytest.raises(UserError, match=r"missing .*train/SQuAD\.jsonl\.gz \(MRQA SQuAD train\)"):
        TASK.load("dir", tmp_path / "empty")
    root = data_folder(tmp_path / "data")
    dev = root / "mrqa" / "dev" / "TextbookQA.jsonl.gz"
    cases = [
        (b"not gzip at all", "cannot be read"),
        (gzip.compress(b'{"header": {"dataset": "TextbookQA"}}\n{"context": "c", "qas": [\n'), "is not JSON"),
        (gzip.compress(b'{"header": {}}\n{"context": "c"}\n'), "is no MRQA context"),
        (gzip.compress(b'{"context": "c", "qas": [{"qid": "q", "question": "?"}]}\n'), "a question has no answers"),
        (gzip.compress(b'{"context": "c", "qas": [{"qid": "q", "question": "?", "answers": []}]}\n'), "no gold answer strings"),
        (gzip.compress(b'{"header": {"dataset": "TextbookQA"}}\n'), "holds no questions"),
    ]
    for content, problem in cases:
        dev.write_bytes(content)
        with pytest.raises(UserError, match=problem) as raised:
            TASK.load("dir", root)
        assert "\n" not in str(raised.value) and "TextbookQA.jsonl.gz" in str(raised.value)


def test_a_bad_file_stops_the_run_before_anything_is_written(tmp_path):
    from peftbench.launch import compose
    from peftbench.plan import plan

    root = data_folder(tmp_path / "data")
    (root / "mrqa" / "dev" / "TextbookQA.jsonl.gz").write_bytes(b"garbage")
    cfg = compose(["model=tiny-t5", "method=full", "task=mrqa_squad", f"data.dir={root}", f"results_dir={tmp_path / 'results'}"])
    with pytest.raises(UserError, match="cannot be read"):
        plan(cfg)
    assert not (tmp_path / "results").exists()


# --- the hub ------------------------------------------------------------------------------------


def test_the_hubs_subsets_become_the_tasks_splits(monkeypatch):
    """mrqa-workshop/mrqa: train and validation hold the six in-domain sets, test the six
    out-of-domain ones, told apart by ``subset``. The rows here are WRITTEN BY US in its schema."""
    import datasets

    def split(*examples):
        names = ("subset", "context", "qid", "question", "answers")
        return datasets.Dataset.from_dict({name: [example[i] for example in examples] for i, name in enumerate(names)})

    hub = datasets.DatasetDict({
        "train": split(("SQuAD", "c1", "t1", "q1?", ["a1"]), ("NewsQA", "c2", "t2", "q2?", ["a2"])),
        "validation": split(("HotpotQA", "c3", "v0", "q3?", ["a3"]), ("SQuAD", "c4", "v1", "q4?", ["a4", "b4"])),
        "test": split(("DROP", "c5", "d1", "q5?", ["5"]), ("DuoRC.ParaphraseRC", "c6", "r1", "q6?", ["a6"]),
                      ("BioASQ", "c7", "b1", "q7?", ["a7"])),
    })  # fmt: skip
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *args: calls.append(args) or hub)
    data = TASK.load("hub")
    assert calls == [("mrqa-workshop/mrqa",)] and data.location == "mrqa-workshop/mrqa"
    assert {split: [row["group"] for row in rows] for split, rows in data.splits.items()} == {
        "train": ["t1"], "validation": ["v1"], "drop": ["d1"], "duorc": ["r1"], "bioasq": ["b1"],
    }  # fmt: skip
    assert data.splits["validation"][0] == {"text": "c4", "question": "q4?", "answers": ["a4", "b4"], "label": "a4", "group": "v1"}


# --- a run, and the table it fills ------------------------------------------------------------


def record_dir(tmp_path: Path) -> Path:
    (folder,) = [p for p in (tmp_path / "results").iterdir() if not p.name.startswith(".")]
    return folder


@pytest.mark.usefixtures("one_thread")
def test_a_prompt_tuning_run_records_squad_validation_and_an_out_of_domain_split(tmp_path):
    """Prompt tuning generates on T5 (its prompt goes in at the encoder): one run scores SQuAD
    validation, then the out-of-domain split once, and fills both cells of the paper's row."""
    from peftbench.launch import compose
    from peftbench.plan import plan
    from peftbench.results.spec import load_spec
    from peftbench.results.table import build_table
    from peftbench.run import execute

    root = data_folder(tmp_path / "data")
    cfg = compose(["model=tiny-t5", "method=prompt", "method.vocab_top=0", "task=mrqa_squad", f"data.dir={root}",
                   f"results_dir={tmp_path / 'results'}", "trainer.max_steps=1", "trainer.batch_size=2", "trainer.progress=false", "data.max_eval_samples=8",
                   "task.max_length=64", "task.max_new_tokens=4"])  # fmt: skip
    record = execute(plan(cfg))
    assert record["status"] == "complete" and record["format"] == "generation"
    best = record["metrics"]["best"]
    assert set(best) == {"validation", "textbookqa"} and all(set(best[s]) == {"f1", "em"} for s in best)
    history = [json.loads(line) for line in (record_dir(tmp_path) / "history.jsonl").read_text().splitlines()]
    assert [entry["phase"] for entry in history].count("test") == 1 and "textbookqa" in history[-1]["metrics"]
    assert record["data"]["rows"]["textbookqa"] == 3 and record["data"]["rows"]["validation"] == 8

    spec = load_spec("prompt_tuning_domain_transfer", REPO / "conf")
    table = build_table(spec, [record], model="tiny-t5")
    row = next(r for r in table.rows if r.label == "Prompt tuning")
    cells = dict(zip([c.id for c in spec.columns], row.cells))
    assert cells["squad"].n == cells["textbookqa"].n == 1
    assert cells["squad"].value == pytest.approx(100 * best["validation"]["f1"])
    assert cells["textbookqa"].value == pytest.approx(100 * best["textbookqa"]["f1"])
    assert all(cells[c].n == 0 for c in ("bioasq", "race", "relation_extraction", "duorc", "drop"))


def test_one_run_fills_the_whole_row_and_reproduce_plans_one_run_per_seed(tmp_path, capsys):
    """Hand-built records (three seeds of one mrqa_squad run, every split scored) fill all seven
    cells of the prompt tuning row; ``reproduce`` plans exactly those three runs per row."""
    from peftbench.cli import main
    from peftbench.results.spec import load_spec
    from peftbench.results.table import build_table

    spec = load_spec("prompt_tuning_domain_transfer", REPO / "conf")
    splits = [c.split for c in spec.columns]
    records = [{
        "schema": 1, "run_id": f"r{seed}", "status": "complete", "finished": "2026-01-01T00:00:00+00:00",
        "model": "t5-xxl-lm-adapt", "method": "prompt", "task": "mrqa_squad", "seed": seed,
        "method_config": {"name": "prompt", "length": 100}, "params": {"trainable_method": 409600},
        "metrics": {"best": {split: {"f1": 0.5 + i / 100 + seed / 1000, "em": 0.1} for i, split in enumerate(splits)}},
        "data": {"sample": False, "subset": None}, "config": {"paper": None, "data": {"train_samples": None}},
    } for seed in range(3)]  # fmt: skip
    row = next(r for r in build_table(spec, records).rows if r.label == "Prompt tuning")
    assert [cell.n for cell in row.cells] == [3] * 7
    assert [round(cell.value, 6) for cell in row.cells] == [round(100 * (0.5 + i / 100 + 0.001), 6) for i in range(7)]
    assert row.params == 409600

    capsys.readouterr()
    for row, extra in (("Model tuning", []), ("Prompt tuning", ["method.vocab_top=0"])):  # tiny-t5: WordPiece ids
        main(["reproduce", "prompt_tuning_domain_transfer", "--dry-run", "--rows", row, "--model", "tiny-t5",
              f"results_dir={tmp_path}", *extra])  # fmt: skip
        out = capsys.readouterr().out
        runs = [line for line in out.splitlines() if "peftbench run " in line]
        assert out.startswith("prompt_tuning_domain_transfer: 3 runs") and "unreachable" not in out
        assert all("task=mrqa_squad" in line and line.startswith("to run") for line in runs), out
    assert all("method=prompt method.length=100" in line for line in runs) and list(tmp_path.iterdir()) == []
