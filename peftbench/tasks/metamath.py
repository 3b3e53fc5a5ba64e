"""MetaMathQA → GSM8K: HF peft's method_comparison benchmark (huggingface/peft@5d602fdb,
``method_comparison/MetaMathQA``), the table ``peft_method_comparison``.

Training: MetaMathQA (Yu et al., ICLR 2024, arXiv 2309.12284; 395,000 augmented GSM8K and MATH
questions with worked answers), without the rows whose ``f"{query} {response}"`` is longer than
1,300 characters (peft's ``data.py``, ``CHAR_LIMIT``: they would not fit 768 tokens). Validation:
50 rows of GSM8K's training set (Cobbe et al. 2021, arXiv 2110.14168), chosen as peft chooses them
(``np.random.seed(0)``, a shuffle of the row indices, the first 50). Test: GSM8K's 1,319 test rows,
scored once with the chosen weights. The model reads ``"Question: {query} Think step by step.\\nAnswer:"``
(peft's ``query_template``) and writes the worked answer; accuracy compares final answers as peft's
``get_accuracy`` does (``tasks/gsm8k_answer.py``).

A row: ``text`` the question, ``label`` the worked answer (MetaMathQA's ``response``, GSM8K's
``answer`` ending in ``#### N``), ``group`` the row's index in its file.

Sources: ``"dir"`` the releases' files, ``DIR/metamathqa/MetaMathQA-395K.json`` (the hub
repository's file: a JSON list of ``query``, ``response``, ``type``, ``original_question``) and
``DIR/gsm8k/{train,test}.jsonl`` (openai/grade-school-math, ``grade_school_math/data``: one
``{"question", "answer"}`` per line); ``"hub"`` ``datasets.load_dataset("meta-math/MetaMathQA")``
and ``load_dataset("openai/gsm8k", "main")``, as peft's ``data.py``; ``"embedded"`` GSM8K's first
64 training and 40 test rows (real, byte for byte) and 8 MetaMathQA rows **written by us** in the
release's format (no copy of the file could be found offline; ``peftbench/tasks/data/README.md``):
enough to exercise the code, never a result.

Where peftbench differs from peft's script: the generation format puts a space between "Answer:"
and the answer it trains on and decodes (peft concatenates them), and batches are length-grouped.
"""

from __future__ import annotations

import json
from pathlib import Path

from peftbench.errors import UserError
from peftbench.tasks import gsm8k_answer
from peftbench.tasks.base import Task, TaskData
from peftbench.tasks.sources import FIX, DataSource, read_json, wanted

QUERY_TEMPLATE = "Question: {query} Think step by step.\nAnswer:"
CHAR_LIMIT = 1300  # peft's data.py: longer query + response pairs are left out of training
VALID_SIZE = 50  # peft's data.py: GSM8K training rows that choose the weights
DATA = Path(__file__).parent / "data"
METAMATH_FILE = "MetaMathQA-395K.json"


def prompt(row: dict) -> str:
    return QUERY_TEMPLATE.format(query=row["text"])


def score(predictions: list[str], rows: list[dict]) -> dict[str, float]:
    return {"accuracy": gsm8k_answer.accuracy(predictions, [row["label"] for row in rows])}


def _rows(pairs) -> list[dict]:
    return [{"text": question, "label": answer, "group": str(index)} for index, (question, answer) in enumerate(pairs)]


def _metamath_folder(folder: Path, splits=None) -> dict[str, list[dict]]:
    path = folder / METAMATH_FILE
    if not path.is_file():
        raise UserError(f"missing {path} (MetaMathQA); {FIX} to the folder holding metamathqa/{METAMATH_FILE}")
    records = read_json(path, "download it again from the hub repository meta-math/MetaMathQA")
    if not isinstance(records, list) or not all(isinstance(r, dict) and {"query", "response"} <= set(r) for r in records):
        raise UserError(f"{path} is not a list of query/response rows; download it again from meta-math/MetaMathQA")
    return {"train": _within_limit([(r["query"], r["response"]) for r in records])}


def _metamath_hub(dataset_dict) -> dict[str, list[dict]]:
    train = dataset_dict["train"]
    return {"train": _within_limit(zip(train["query"], train["response"]))}


def _within_limit(pairs) -> list[dict]:
    """MetaMathQA rows whose ``f"{query} {response}"`` has at most ``CHAR_LIMIT`` characters."""
    return _rows((query, response) for query, response in pairs if len(f"{query} {response}") <= CHAR_LIMIT)


def _gsm8k_folder(folder: Path, splits=None) -> dict[str, list[dict]]:
    found = {}
    for split in ("train", "test"):
        path = folder / f"{split}.jsonl"
        if not path.is_file():
            raise UserError(f"missing {path} (GSM8K {split}); {FIX} to the folder holding gsm8k/{split}.jsonl")
        try:
            records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            raise UserError(f"{path} is not JSON lines ({error.msg}); restore it from openai/grade-school-math") from None
        found[split] = _rows((record["question"], record["answer"]) for record in records)
    return found


def _gsm8k_hub(dataset_dict) -> dict[str, list[dict]]:
    return {split: _rows(zip(dataset_dict[split]["question"], dataset_dict[split]["answer"])) for split in ("train", "test")}


METAMATH = DataSource(
    what="MetaMathQA", benchmark="metamathqa", folder=None, files=(METAMATH_FILE,), hub_id="meta-math/MetaMathQA",
    hub_config=None, read_folder=_metamath_folder, read_hub=_metamath_hub, embedded=DATA / "metamathqa",
)  # fmt: skip
GSM8K = DataSource(
    what="GSM8K", benchmark="gsm8k", folder=None, files=("train.jsonl", "test.jsonl"), hub_id="openai/gsm8k",
    hub_config="main", read_folder=_gsm8k_folder, read_hub=_gsm8k_hub, embedded=DATA / "gsm8k",
)  # fmt: skip


def validation_rows(train: list[dict]) -> list[dict]:
    """The GSM8K training rows peft validates on: ``np.random.seed(0)``, ``np.random.shuffle`` of the
    row indices, the first ``VALID_SIZE`` (the legacy generator, drawn here without the global state)."""
    import numpy as np

    indices = np.arange(len(train))
    np.random.RandomState(0).shuffle(indices)
    return [train[index] for index in indices[:VALID_SIZE]]


def load(source: str, directory=None, splits=None) -> TaskData:
    """MetaMathQA's rows for training and GSM8K's for validation and test, from one source."""
    gsm8k = GSM8K.load(source, directory)
    found = {"validation": validation_rows(gsm8k.splits["train"]), "test": gsm8k.splits["test"]}
    if wanted("train", splits):
        metamath = METAMATH.load(source, directory)
        found["train"] = metamath.splits["train"]
        sample, location = metamath.sample or gsm8k.sample, f"{metamath.location} + {gsm8k.location}"
    else:
        sample, location = gsm8k.sample, gsm8k.location
    return TaskData(found, source, location, sample=sample)


TASKS = {
    "metamathqa": Task(
        name="metamathqa", benchmark="peft_method_comparison", label_names=(), train_split="train",
        eval_splits=("validation",), main_metric="accuracy", score=score, load=load, has_embedded=True,
        metric_names=("accuracy",), kind="generation", prompt=prompt, test_splits=("test",),
    ),
}  # fmt: skip
