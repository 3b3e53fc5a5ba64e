"""``peftbench score TASK --predictions FILE [--references FILE]``: a task's official metric on
any predictions file, printed as JSON with four decimals (as the official scorers print).

- ``e2e``: the E2E NLG Challenge scorer (``tasks/e2e_metrics.py``) on its own input formats:
  references as plain text grouped by blank lines or csv/tsv with an MR column; predictions one
  per line, or csv/tsv.
- A registered task: predictions one per line, as label names (``entailment``) or class indices
  (floats for STS-B; for NER, a sentence's tags separated by spaces: ``B-PER I-PER O``); references one label per line, or, without ``--references``, the task's
  validation rows from ``--data-dir`` / ``$PEFTBENCH_DATA`` / the embedded slice — the only way
  to score MultiRC and ReCoRD, whose metrics group answers by question.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from peftbench.errors import UserError

E2E_NAMES = {"bleu": "BLEU", "nist": "NIST", "meteor": "METEOR", "rouge_l": "ROUGE_L", "cider": "CIDEr"}


def score_file(task_name: str, predictions: Path, references: Path | None, data_dir: str | None) -> dict:
    for path in (predictions, references):
        if path is not None and not path.is_file():
            raise UserError(f"no file {path}; pass an existing predictions/references file")
    if task_name == "e2e":
        from peftbench.tasks.e2e_metrics import score_files

        if references is None:
            raise UserError("e2e needs --references FILE (the official scorer's references: text or csv/tsv)")
        scores = score_files(references, predictions)
        return {E2E_NAMES[name]: round(value, 4) for name, value in scores.items()}
    from peftbench.tasks import get_task

    task = get_task(task_name)
    if task.kind == "masked_lm":
        raise UserError(f"task {task.name} is scored by the model's own loss on held-out text, not from a predictions "
                        "file; its runs record accuracy, loss and perplexity")  # fmt: skip
    rows = _label_rows(task, references) if references else _validation_rows(task, data_dir)
    values = [_parse_prediction(task, line, n) for n, line in enumerate(_lines(predictions), start=1)]
    if len(values) != len(rows):
        raise UserError(f"{predictions} has {len(values)} predictions for {len(rows)} references; give one per line")
    if task.kind == "token_classification":
        for number, (tags, row) in enumerate(zip(values, rows), start=1):
            if len(tags) != len(row["label"]):
                raise UserError(f"line {number}: {len(tags)} tags for a sentence of {len(row['label'])} words; give one tag per word")
    try:
        scores = task.score(values, rows)
    except KeyError as missing:
        raise UserError(
            f"task {task.name} scores with each row's {missing} (its question groups), which a labels file lacks; "
            "omit --references to score against the task's validation rows"
        ) from None
    return {name: round(value, 4) for name, value in scores.items()}


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _parse_prediction(task, text: str, line: int):
    if task.kind == "generation":
        return text
    if task.kind == "token_classification":
        return [_parse_prediction(replace(task, kind="classification"), tag, line) for tag in text.split()]
    if task.is_regression:
        try:
            return float(text)
        except ValueError:
            raise UserError(f"line {line}: {text!r} is not a number; {task.name} predictions are scores") from None
    if text in task.label_names:
        return task.label_names.index(text)
    names = ", ".join(task.label_names) if task.kind == "classification" else "choice indices"
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"line {line}: {text!r} is not a label of {task.name} ({names}) or an index") from None
    if task.kind == "classification" and not 0 <= value < task.num_labels:
        raise UserError(f"line {line}: class {value} is out of range for {task.name} ({names})")
    return value


def _label_rows(task, references: Path) -> list[dict]:
    return [{"label": _parse_prediction(task, text, n)} for n, text in enumerate(_lines(references), start=1)]


def _validation_rows(task, data_dir: str | None) -> list[dict]:
    from peftbench.tasks.sources import load_task

    rows = load_task(task, "auto", data_dir, splits=(task.main_split,)).splits.get(task.main_split)
    if not rows or rows[0]["label"] is None:
        raise UserError(f"task {task.name} has no labelled {task.main_split} rows there; pass --references FILE")
    return rows
