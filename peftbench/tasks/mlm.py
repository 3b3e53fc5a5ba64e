"""Masked language modelling on raw text (task ``mlm``): what MAD-X trains a language adapter on
(Pfeiffer et al., EMNLP 2020, "MAD-X: An Adapter-Based Framework for Multi-Task Cross-Lingual
Transfer": language adapters trained with BERT's masked-LM objective on Wikipedia text of each
language), read as AdapterHub's and transformers' ``run_mlm.py`` reads a text file
(adapter-hub/adapters ``examples/pytorch/language-modeling/run_mlm.py``).

**Layout.** A UTF-8 text file is read as datasets' ``text`` builder reads ``--train_file x.txt``:
one row per line (a document or paragraph per line; a blank line is a row too). The
``masked_lm`` format then reads the rows as ``run_mlm.py`` does without ``--line_by_line``, the way
its language-adapter example runs it: each row tokenised with its special tokens, the rows of each
group of 1,000 concatenated and cut into blocks of ``task.max_length`` tokens, the remainder of a
group dropped (``formats/masked_lm.py``). Without a validation file, the held-out split is
``run_mlm.py``'s: the first ``validation_split_percentage`` (5) percent of the rows
(``train[:5%]``, the boundary rounded as datasets rounds it), the rest is train.

**Metric.** On the held-out text, the masked tokens' mean cross-entropy ``loss`` (over every masked
token of the split, not per batch) and ``perplexity`` = exp(loss), as ``run_mlm.py`` reports them,
and the masked-token ``accuracy`` of its ``compute_metrics`` (the main metric: the trainer keeps the
evaluation where it is highest). The masks of the held-out text are drawn once per evaluation from
a fixed seed, so every evaluation and every run scores the same masked positions.

Options: ``task.language`` (default ``en``) names the text's language (the shipped slice, the hub
config, the data folder), ``task.text_file=PATH`` a text file to read instead of any source.

Sources (``tasks/sources.py``):

- ``task.text_file=PATH``: that file; the held-out split is its first 5 percent of lines.
- ``"dir"``: ``train.txt`` and, where present, ``validation.txt`` (``run_mlm.py``'s ``--train_file``
  and ``--validation_file``) under ``DIR/mlm/<language>/``, ``DIR/<language>/`` or ``DIR`` itself.
- ``"hub"``: ``datasets.load_dataset("wikimedia/wikipedia", "20231101.<language>")``, one article a
  row (its ``text``), the held-out split cut from its only split as above.
- ``"embedded"``: real Wikipedia text in English and Spanish (Wikicorpus 1.0) in
  ``peftbench/tasks/data/mlm/<language>/``, see ``data/README.md``.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache, partial
from pathlib import Path
from typing import Sequence

from peftbench.errors import UserError
from peftbench.tasks.base import Task, TaskData
from peftbench.tasks.sources import DataSource, wanted

HUB_ID = "wikimedia/wikipedia"
HUB_SNAPSHOT = "20231101"
EMBEDDED = Path(__file__).parent / "data" / "mlm"
SHIPPED = ("en", "es")
FILES = {"train": "train.txt", "validation": "validation.txt"}
VALIDATION_PERCENTAGE = 5  # run_mlm.py's validation_split_percentage
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[a-z]+)*")  # a Wikipedia language code: en, de, zh-min-nan


def read_lines(path: Path, language: str) -> list[dict]:
    """One row per line of a UTF-8 text file (``str.splitlines``, as datasets' ``text`` builder)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not UTF-8 text (byte {error.start}); convert it to UTF-8") from None
    return [{"text": line, "label": None, "language": language} for line in text.splitlines()]


def held_out(rows: list[dict]) -> dict[str, list[dict]]:
    """``run_mlm.py``'s split of one text: ``train[:5%]`` is validation, ``train[5%:]`` train."""
    cut = int(round(VALIDATION_PERCENTAGE * len(rows) / 100.0))
    return {"train": rows[cut:], "validation": rows[:cut]}


def _read_folder(language: str, folder: Path, splits=None) -> dict[str, list[dict]]:
    """``train.txt`` and ``validation.txt`` (of the splits wanted), else the held-out split of ``train.txt``."""
    train, validation = folder / FILES["train"], folder / FILES["validation"]
    if validation.is_file() and not wanted("train", splits):
        return {"validation": read_lines(validation, language)}
    if not train.is_file():
        raise UserError(f"missing {train} (the text to learn from); pass data.dir=… to the folder holding mlm/{language}/train.txt, "
                        "or task.text_file=PATH")  # fmt: skip
    rows = read_lines(train, language)
    if not validation.is_file():
        return held_out(rows)
    return {"train": rows, **({"validation": read_lines(validation, language)} if wanted("validation", splits) else {})}


def _hub_splits(language: str, dataset_dict) -> dict[str, list[dict]]:
    return held_out([{"text": text, "label": None, "language": language} for text in dataset_dict["train"]["text"]])


def data_source(language: str) -> DataSource:
    return DataSource(
        what=f"the {language} text", benchmark="mlm", folder=language, files=tuple(FILES.values()),
        hub_id=HUB_ID, hub_config=f"{HUB_SNAPSHOT}.{language}",
        read_folder=partial(_read_folder, language), read_hub=partial(_hub_splits, language),
        embedded=EMBEDDED / language if language in SHIPPED else None,
    )  # fmt: skip


def _text_file_load(path: str, language: str):
    """The ``load`` of ``task.text_file``: the file, whatever the data source."""

    def load(kind: str, directory=None, splits=None) -> TaskData:
        file = Path(path).expanduser()
        if not file.is_file():
            raise UserError(f"task.text_file={path}: no such file; give the path of a UTF-8 text file")
        return TaskData(held_out(read_lines(file, language)), "dir", str(file))

    return load


def score(predictions: Sequence[tuple[float, int, int]], rows: Sequence[dict]) -> dict[str, float]:
    """The held-out text's masked-token ``accuracy``, mean ``loss`` and ``perplexity``, from each
    block's (summed negative log-likelihood, masked tokens, correctly predicted masked tokens);
    the rows (lines of text) are cut into blocks, so they do not pair with the predictions."""
    nll = sum(prediction[0] for prediction in predictions)
    masked = sum(prediction[1] for prediction in predictions)
    correct = sum(prediction[2] for prediction in predictions)
    loss = nll / masked if masked else math.nan
    try:
        perplexity = math.exp(loss)
    except OverflowError:  # run_mlm.py's guard
        perplexity = math.inf
    return {"accuracy": correct / masked if masked else 0.0, "loss": loss, "perplexity": perplexity}


@lru_cache(maxsize=None)
def mlm(language: str = "en", text_file: str | None = None) -> Task:
    """Masked language modelling on ``language`` text (or on ``text_file``)."""
    if not _LANGUAGE.fullmatch(language):
        raise UserError(f"task.language={language!r} is not a Wikipedia language code; use one such as en, de, sw or qu")
    source = data_source(language)
    return Task(
        name="mlm", benchmark="mlm", label_names=(), train_split="train", eval_splits=("validation",),
        main_metric="accuracy", score=score, load=_text_file_load(text_file, language) if text_file else source.load,
        has_embedded=text_file is None and language in SHIPPED, metric_names=("accuracy", "loss", "perplexity"),
        kind="masked_lm", options=(("language", language), ("text_file", text_file)), configure=mlm,
    )  # fmt: skip


TASKS: dict[str, Task] = {"mlm": mlm()}
