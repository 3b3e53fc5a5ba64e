"""SuperGLUE's jsonl files (and FewGLUE's, which share the format), line by line, as examples in
the hub's layout: ``aps/super_glue``'s columns, ``label`` the ClassLabel index or None.

The files nest what the hub flattens: a MultiRC line is a passage with questions with answer
options (one example per option), a ReCoRD line a passage with entity spans and queries (one
example per query; the entities are the span texts in passage order, each once), WSC keeps its
spans under ``target``. A line that is not what the format says is one error naming the file and
line (``UserError``).
"""

from __future__ import annotations

import json
from pathlib import Path

from peftbench.errors import UserError
from peftbench.tasks.superglue_prompts import COPA_QUESTIONS

RESTORE = "repair the line or restore the file from the original SuperGLUE data"


class _Line:
    """One jsonl line being read: its fields, with errors that name the file and line."""

    def __init__(self, path: Path, number: int):
        self.path, self.number = path, number

    def error(self, what: str) -> UserError:
        return UserError(f"{self.path}:{self.number}: {what}; {RESTORE}")

    def get(self, obj, key: str, kind: type | tuple[type, ...] = str):
        if not isinstance(obj, dict) or key not in obj:
            raise self.error(f"no field {key!r}")
        value = obj[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
            raise self.error(f"field {key!r} is {value!r}, not {names}")
        return value


def read_jsonl(name: str, spec, path: Path, labelled: bool) -> list[dict]:
    """The examples of one SuperGLUE jsonl file, in the hub's layout (blank lines skipped)."""
    examples = []
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            line = _Line(path, number)
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as error:
                raise line.error(f"not a JSON object ({error.msg}, column {error.colno})") from None
            if not isinstance(obj, dict):
                raise line.error("not a JSON object")
            examples.extend(_examples(name, spec, obj, line, labelled))
    return examples


def _label(spec, obj: dict, line: _Line, labelled: bool, key: str = "label") -> int | None:
    """A file label as aps/super_glue has it: the class index (None in a test file without labels)."""
    if key not in obj:
        if labelled:
            raise line.error(f"no field {key!r} in a labelled split")
        return None
    raw = obj[key]
    if spec.label_names == ("False", "True"):
        if isinstance(raw, bool) or raw in (0, 1) and isinstance(raw, int):
            return int(raw)
        raise line.error(f"label {raw!r} is not true or false")
    if spec.folder == "COPA":
        if isinstance(raw, int) and not isinstance(raw, bool) and raw in (0, 1):
            return raw
        raise line.error(f"label {raw!r} is not 0 or 1 (choice1 or choice2)")
    if raw not in spec.label_names:
        raise line.error(f"label {raw!r} is not one of {', '.join(spec.label_names)}")
    return spec.label_names.index(raw)


def _examples(name: str, spec, obj: dict, line: _Line, labelled: bool) -> list[dict]:
    """The hub-layout examples of one jsonl line (MultiRC: one per answer option; ReCoRD: per query)."""
    if name == "multirc":
        passage = line.get(obj, "passage", dict)
        paragraph, paragraph_idx = line.get(passage, "text"), line.get(obj, "idx", int)
        examples = []
        for question in line.get(passage, "questions", list):
            text, question_idx = line.get(question, "question"), line.get(question, "idx", int)
            for answer in line.get(question, "answers", list):
                idx = {"paragraph": paragraph_idx, "question": question_idx, "answer": line.get(answer, "idx", int)}
                examples.append({
                    "paragraph": paragraph, "question": text, "answer": line.get(answer, "text"), "idx": idx,
                    "label": _label(spec, answer, line, labelled),
                })
        return examples
    if name == "record":
        passage = line.get(obj, "passage", dict)
        text = line.get(passage, "text")
        spans = sorted(
            ((line.get(e, "start", int), line.get(e, "end", int)) for e in line.get(passage, "entities", list)),
            key=lambda span: span[0],
        )
        entities = list(dict.fromkeys(text[start : end + 1] for start, end in spans))  # end is inclusive
        examples = []
        for qa in line.get(obj, "qas", list):
            if labelled and "answers" not in qa:
                raise line.error("a query has no field 'answers' in a labelled split")
            answers = sorted({line.get(answer, "text") for answer in qa.get("answers", [])})
            examples.append({
                "passage": text, "query": line.get(qa, "query"), "entities": entities, "answers": answers,
                "idx": {"passage": obj.get("idx"), "query": qa.get("idx")},
            })
        return examples
    if name == "wsc":
        target = line.get(obj, "target", dict)
        example = {"text": line.get(obj, "text")}
        example.update({key: line.get(target, key) for key in ("span1_text", "span2_text")})
    else:
        example = {key: line.get(obj, key) for key in spec.fields}
    if name == "copa" and example["question"] not in COPA_QUESTIONS:
        raise line.error(f"question {example['question']!r} is not cause or effect")
    example["label"] = _label(spec, obj, line, labelled)
    return [example]
