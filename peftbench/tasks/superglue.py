"""The SuperGLUE tasks (Wang et al., 2019, "SuperGLUE: A Stickier Benchmark for General-Purpose
Language Understanding Systems") and the FewGLUE 32-example setting (Schick & Schütze, 2021;
FewGLUE_32dev of P-tuning, Liu et al., 2021), read from the original jsonl files, from the hub, or
from the small slices shipped in the package.

Tasks: boolq, cb, copa, multirc, record, wic, wsc. SuperGLUE's RTE is the same data as GLUE's RTE:
run it as ``task=rte`` (``peftbench.tasks.glue``); it is not registered twice.

Labels and label order are the ClassLabels of the hub dataset ``aps/super_glue`` (BoolQ, MultiRC,
WiC, WSC False=0/True=1; CB entailment=0, contradiction=1, neutral=2; COPA the chosen alternative,
choice1=0/choice2=1); test labels are None. Metrics are ``superglue_metrics.py``'s; the main metric
is the one the SuperGLUE paper reports per task: accuracy (BoolQ, COPA, WiC, WSC), F1a (MultiRC),
F1 (ReCoRD) and, for CB, the macro F1 (the paper and leaderboard show "F1/accuracy" and average the
two into the task score; both are recorded). MultiRC's EM and ReCoRD's EM are recorded beside.

Rows (see ``base.py``), with the input layout each follows:

- boolq: ``text`` = question, ``text_pair`` = passage (Clark et al. 2019's BERT baseline; P-tuning
  v2's ``task_to_keys``);
- cb: ``text`` = premise, ``text_pair`` = hypothesis;
- wic: ``text`` = ``"{word}: {sentence1}"``, ``text_pair`` = ``"{word}: {sentence2}"`` (P-tuning v2,
  ``tasks/superglue/dataset.py``, its BERT template, ``template_id == 1``);
- wsc: ``text`` = ``"{span2_text}: {text}"`` (the pronoun, then the sentence), ``text_pair`` =
  ``span1_text`` (the candidate referent) (P-tuning v2, ``template_id == 0``);
- multirc: one row per answer option; ``text`` = paragraph, ``text_pair`` = ``"{question}\\n{answer}"``
  (P-tuning v2 joins them with a space; a newline keeps the two apart for the prompt, and WordPiece
  and SentencePiece tokenizers read it as the same whitespace), ``group`` =
  ``"{paragraph idx}-{question idx}"``, unique across paragraphs;
- copa (multiple choice): ``text`` = ``"{premise} What was the cause of this?"`` or
  ``"{premise} What happened as a result?"`` (jiant's COPA questions), ``choices`` =
  ``[choice1, choice2]``;
- record (multiple choice): ``text`` = the passage with its ``@highlight`` lines made sentences (T5's
  ReCoRD preprocessor: a highlight after ``. ? ! " '`` is joined with a space, otherwise with
  ``". "``); ``choice_names`` = the passage's entities (the entity spans in passage order, each text
  once); ``choices`` = the query with ``@placeholder`` replaced by each entity; ``answers`` = the
  gold answer texts (sorted, each once, as ``aps/super_glue`` has them); ``label`` = the index of
  the first entity that is a gold answer. A train row where no entity is a gold answer is dropped
  (it cannot be trained on); eval rows keep it (scored by ``answers``).

Prompts and label words for rank classification (decoders, encoder-decoders) follow PET's patterns
(Schick & Schütze 2021, ``pet/pvp.py``) and GPT-3's (Brown et al. 2020, Appendix G); each is cited
beside its template below.

Three sources (``load(source, data_dir)``):

- ``"dir"``: the SuperGLUE jsonl layout (``superglue/<Task>/train.jsonl``, ``val.jsonl`` → split
  ``validation``, optional ``test.jsonl`` without labels) under a data root, a ``superglue`` folder,
  or the task folder itself (``<Task>`` is BoolQ, CB, COPA, MultiRC, ReCoRD, WiC or WSC). A folder
  with ``dev32.jsonl`` and no ``val.jsonl`` is the FewGLUE_32dev layout: ``train.jsonl`` (32
  examples) and ``dev32.jsonl`` → ``validation``; pass ``data.dir=…/FewGLUE_32dev`` (a data root is
  never searched for FewGLUE). Where both are there, ``validation`` is ``val.jsonl`` and
  ``dev32.jsonl`` is split ``dev32``. ``TaskData.location`` names the folder and, for FewGLUE, the
  layout.
- ``"hub"``: ``datasets.load_dataset("aps/super_glue", <task>)`` (config ``wsc``, the one that
  matches the jsonl files, not ``wsc.fixed``); its rows (MultiRC one per answer option, ReCoRD one
  per query) become the same rows as the files'. ReCoRD's entity order is that of ``entity_spans``
  where the hub has it, else the ``entities`` list as stored.
- ``"embedded"``: real slices of the original files in ``peftbench/tasks/data/superglue`` (built by
  ``scripts/make_embedded_slices.py``), read as ``"dir"`` is and marked as a sample. BoolQ's train
  set is not staged, so both its slices come from ``val.jsonl`` (without overlap); ReCoRD ships none.
"""

from __future__ import annotations

import json
import os
import re
import string
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

from peftbench.errors import UserError
from peftbench.tasks.base import Task, TaskData, score_labels
from peftbench.tasks.superglue_metrics import multirc, record, superglue_scorer

HUB_DATASET = "aps/super_glue"
EMBEDDED_ROOT = Path(__file__).parent / "data" / "superglue"
DATA_DIR_FIX = "pass data.dir=… or set PEFTBENCH_DATA"
RESTORE = "repair the line or restore the file from the original SuperGLUE data"

# jiant's COPA questions (jiant/tasks/lib/copa.py, _QUESTION_DICT).
COPA_QUESTIONS = {"cause": "What was the cause of this?", "effect": "What happened as a result?"}
# GPT-3's COPA connectives (Brown et al. 2020, Appendix G; PET's CopaPVP uses the same).
COPA_CONNECTIVES = {"cause": "because", "effect": "so"}


@dataclass(frozen=True)
class SuperGlueSpec:
    """One SuperGLUE task: its folder, label space, main metric, and how its rows are read."""

    folder: str  # the task folder of the SuperGLUE (and FewGLUE) distribution
    label_names: tuple[str, ...]  # aps/super_glue's ClassLabel names, in order; () for ReCoRD
    main_metric: str
    fields: tuple[str, ...]  # the fields every example needs (hub layout)
    kind: str = "classification"
    verbalizers: tuple[str, ...] = ()
    embedded: bool = True


SUPERGLUE_SPECS: dict[str, SuperGlueSpec] = {
    "boolq": SuperGlueSpec(
        folder="BoolQ", label_names=("False", "True"), main_metric="accuracy",
        fields=("question", "passage"), verbalizers=("No", "Yes"),
    ),
    "cb": SuperGlueSpec(
        folder="CB", label_names=("entailment", "contradiction", "neutral"), main_metric="f1",
        fields=("premise", "hypothesis"), verbalizers=("true", "false", "neither"),
    ),
    "copa": SuperGlueSpec(
        folder="COPA", label_names=("choice1", "choice2"), main_metric="accuracy",
        fields=("premise", "choice1", "choice2", "question"), kind="multiple_choice",
    ),
    "multirc": SuperGlueSpec(
        folder="MultiRC", label_names=("False", "True"), main_metric="f1a",
        fields=("paragraph", "question", "answer", "idx"), verbalizers=("No", "Yes"),
    ),
    "record": SuperGlueSpec(
        folder="ReCoRD", label_names=(), main_metric="f1",
        fields=("passage", "query", "entities", "answers"), kind="multiple_choice", embedded=False,
    ),
    "wic": SuperGlueSpec(
        folder="WiC", label_names=("False", "True"), main_metric="accuracy",
        fields=("word", "sentence1", "sentence2"), verbalizers=("No", "Yes"),
    ),
    "wsc": SuperGlueSpec(
        folder="WSC", label_names=("False", "True"), main_metric="accuracy",
        fields=("text", "span1_text", "span2_text"), verbalizers=("No", "Yes"),
    ),
}


# --- rows -----------------------------------------------------------------------------------------
# Every source first yields examples in the hub's layout (aps/super_glue's columns, ``label`` an int
# or None); one converter per task turns such an example into a row.


def highlights_as_sentences(passage: str) -> str:
    """A ReCoRD passage with its ``@highlight`` lines made sentences, as T5's ReCoRD preprocessor
    does (t5/data/preprocessors.py, ``record``)."""
    passage = re.sub(r"(\.|\?|\!|\"|\')\n@highlight\n", r"\1 ", passage)
    return re.sub(r"\n@highlight\n", ". ", passage)


def _classification_row(text: str, text_pair: str, label) -> dict:
    return {"text": text, "text_pair": text_pair, "label": label}


def _record_row(example: dict) -> dict:
    names = list(example["entities"])
    answers = list(example["answers"])
    gold = [i for i, name in enumerate(names) if name in answers]
    return {
        "text": highlights_as_sentences(example["passage"]),
        "choices": [example["query"].replace("@placeholder", name) for name in names],
        "choice_names": names,
        "answers": answers,
        "label": gold[0] if gold else None,
    }


ROW_BUILDERS: dict[str, Callable[[dict], dict]] = {
    "boolq": lambda ex: _classification_row(ex["question"], ex["passage"], ex["label"]),
    "cb": lambda ex: _classification_row(ex["premise"], ex["hypothesis"], ex["label"]),
    "wic": lambda ex: _classification_row(
        f"{ex['word']}: {ex['sentence1']}", f"{ex['word']}: {ex['sentence2']}", ex["label"]
    ),
    "wsc": lambda ex: _classification_row(f"{ex['span2_text']}: {ex['text']}", ex["span1_text"], ex["label"]),
    "multirc": lambda ex: {
        **_classification_row(ex["paragraph"], f"{ex['question']}\n{ex['answer']}", ex["label"]),
        "group": f"{ex['idx']['paragraph']}-{ex['idx']['question']}",
    },
    "copa": lambda ex: {
        "text": f"{ex['premise']} {COPA_QUESTIONS[ex['question']]}",
        "choices": [ex["choice1"], ex["choice2"]],
        "label": ex["label"],
    },
    "record": _record_row,
}


def _rows(name: str, examples: list[dict], split: str) -> list[dict]:
    rows = [ROW_BUILDERS[name](example) for example in examples]
    if name == "record" and split == "train":
        rows = [row for row in rows if row["label"] is not None]
    return rows


# --- prompts for rank classification --------------------------------------------------------------
# Each reads the row's own fields (the rows above keep every part the template needs).


def _boolq_prompt(row: dict) -> str:
    # PET BoolQPVP pattern 0: "p. Question: q? Answer: [MASK]." with No/Yes.
    return f"{row['text_pair']}\nQuestion: {row['text']}?\nAnswer:"


def _cb_prompt(row: dict) -> str:
    # PET CbPVP pattern 4 (GPT-3's ANLI/CB format): "p question: h true, false or neither? answer:".
    return f"{row['text']}\nQuestion: {row['text_pair']} True, False or Neither?\nAnswer:"


def _wic_prompt(row: dict) -> str:
    # PET WicPVP pattern 1: "s1 s2 Does w have the same meaning in both sentences? [MASK]" with No/Yes.
    word, _, sentence1 = row["text"].partition(": ")
    sentence2 = row["text_pair"].partition(": ")[2]
    return f"{sentence1}\n{sentence2}\nQuestion: Does {word} have the same meaning in both sentences?\nAnswer:"


def _wsc_prompt(row: dict) -> str:
    # PET WscPVP pattern 2 ("Question: In the passage above, what does the pronoun '*p*' refer to?"),
    # asked as a yes/no question about the given referent, as SuperGLUE's WSC labels are.
    pronoun, _, sentence = row["text"].partition(": ")
    return (
        f"{sentence}\nQuestion: In the passage above, does the pronoun \"{pronoun}\" refer to "
        f"{row['text_pair']}?\nAnswer:"
    )


def _multirc_prompt(row: dict) -> str:
    # PET MultiRcPVP pattern 1: "p. Question: q? Is the correct answer "a"? [MASK]." with No/Yes.
    question, _, answer = row["text_pair"].partition("\n")
    return f"{row['text']}\nQuestion: {question}\nIs the correct answer \"{answer}\"?\nAnswer:"


def _copa_prompt(row: dict) -> str:
    # GPT-3 (Appendix G) and PET CopaPVP: the premise without its final punctuation, then
    # "because" (cause) or "so" (effect); each choice is scored as the continuation.
    for kind, question in COPA_QUESTIONS.items():
        if row["text"].endswith(" " + question):
            premise = row["text"][: -len(question) - 1]
            return f"{premise.rstrip(string.punctuation)} {COPA_CONNECTIVES[kind]}"
    raise ValueError(f"not a COPA row: {row['text']!r}")


def _record_prompt(row: dict) -> str:
    # PET RecordPVP and GPT-3: the passage, then the query with each entity filled in (the choices).
    return f"{row['text']}\n"


PROMPTS: dict[str, Callable[[dict], str]] = {
    "boolq": _boolq_prompt, "cb": _cb_prompt, "copa": _copa_prompt, "multirc": _multirc_prompt,
    "record": _record_prompt, "wic": _wic_prompt, "wsc": _wsc_prompt,
}


# --- scoring --------------------------------------------------------------------------------------


def _score_multirc(predictions: Sequence, rows: Sequence[dict]) -> dict[str, float]:
    return multirc(predictions, [row["label"] for row in rows], question_ids=[row["group"] for row in rows])


def _score_record(predictions: Sequence, rows: Sequence[dict]) -> dict[str, float]:
    """Each predicted choice index becomes its entity, scored against the row's gold answers."""
    entities = []
    for prediction, row in zip(predictions, rows, strict=True):
        index = int(prediction)
        if not 0 <= index < len(row["choice_names"]):
            raise ValueError(f"ReCoRD prediction {index} is not a choice of a row with {len(row['choice_names'])}")
        entities.append(row["choice_names"][index])
    return record(entities, [row["answers"] for row in rows])


def _scorer(name: str) -> Callable[[Sequence, Sequence[dict]], dict[str, float]]:
    if name == "multirc":
        return _score_multirc
    if name == "record":
        return _score_record
    return score_labels(superglue_scorer(name)[0])


# --- loading --------------------------------------------------------------------------------------


def load_superglue(name: str, source: str, data_dir: str | os.PathLike | None = None) -> TaskData:
    """The splits of SuperGLUE task ``name`` from ``source`` ("dir", "hub" or "embedded").

    ``data_dir`` (for "dir"; default ``$PEFTBENCH_DATA``) may be the data root holding
    ``superglue/<Task>/``, the ``superglue`` folder, a ``FewGLUE_32dev`` folder, or the task
    folder itself.
    """
    spec = SUPERGLUE_SPECS[name]
    if source == "dir":
        folder = _task_folder(spec, data_dir)
        splits, layout = _read_task_folder(name, spec, folder)
        if layout == "fewglue":
            return TaskData(splits=splits, source="dir", location=f"{folder} (FewGLUE_32dev layout: dev32.jsonl as validation)",
                            subset="fewglue")  # fmt: skip
        return TaskData(splits=splits, source="dir", location=str(folder))
    if source == "hub":
        return _load_from_hub(name, spec)
    if source == "embedded":
        if not spec.embedded:
            raise UserError(
                f"SuperGLUE {name} ships no embedded slice; {DATA_DIR_FIX} (e.g. to a FewGLUE_32dev folder), "
                "or pass data.source=hub"
            )
        folder = EMBEDDED_ROOT / spec.folder
        splits, _ = _read_task_folder(name, spec, folder)
        return TaskData(splits=splits, source="embedded", location=str(folder), sample=True)
    raise UserError(f"unknown data source {source!r} for SuperGLUE {name}; use dir, hub or embedded")


_LAYOUT_FILES = ("train.jsonl", "val.jsonl", "dev32.jsonl", "test.jsonl")


def _task_folder(spec: SuperGlueSpec, data_dir: str | os.PathLike | None) -> Path:
    """The task folder under a data root, under a ``superglue`` (or FewGLUE) folder, or ``data_dir``."""
    data_dir = data_dir or os.environ.get("PEFTBENCH_DATA")
    if not data_dir:
        raise UserError(f"no data folder given for SuperGLUE {spec.folder}; {DATA_DIR_FIX}")
    given = Path(data_dir).expanduser()
    for folder in (given / "superglue" / spec.folder, given / spec.folder):
        if folder.is_dir():
            return folder
    if any((given / file_name).is_file() for file_name in _LAYOUT_FILES):
        return given
    raise UserError(
        f"no SuperGLUE {spec.folder} folder at {given} (looked for {given / 'superglue' / spec.folder}, "
        f"{given / spec.folder} and the files themselves); {DATA_DIR_FIX} to the folder holding "
        f"superglue/{spec.folder} (or to a FewGLUE_32dev folder)"
    )


def _read_task_folder(name: str, spec: SuperGlueSpec, folder: Path) -> tuple[dict[str, list[dict]], str]:
    """Every split whose file is in ``folder``, and the layout (``"superglue"`` or ``"fewglue"``)."""
    fewglue = (folder / "dev32.jsonl").is_file() and not (folder / "val.jsonl").is_file()
    if fewglue:
        files = (("train", "train.jsonl", True), ("validation", "dev32.jsonl", True), ("test", "test.jsonl", False))
    else:
        files = (
            ("train", "train.jsonl", True),
            ("validation", "val.jsonl", True),
            ("dev32", "dev32.jsonl", False),
            ("test", "test.jsonl", False),
        )
    splits = {}
    for split, file_name, required in files:
        path = folder / file_name
        if not path.is_file():
            if required:
                raise UserError(
                    f"missing {path} (SuperGLUE {spec.folder} {split} split); {DATA_DIR_FIX} to a complete "
                    f"SuperGLUE copy (superglue/{spec.folder}/train.jsonl and val.jsonl) or a FewGLUE_32dev "
                    f"folder ({spec.folder}/train.jsonl and dev32.jsonl)"
                )
            continue
        examples = _read_jsonl(name, spec, path, labelled=split != "test")
        rows = _rows(name, examples, split)
        if not rows:
            raise UserError(f"{path} has no rows; restore it from the original SuperGLUE data")
        splits[split] = rows
    return splits, "fewglue" if fewglue else "superglue"


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


def _read_jsonl(name: str, spec: SuperGlueSpec, path: Path, labelled: bool) -> list[dict]:
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


def _label(spec: SuperGlueSpec, obj: dict, line: _Line, labelled: bool, key: str = "label") -> int | None:
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


def _examples(name: str, spec: SuperGlueSpec, obj: dict, line: _Line, labelled: bool) -> list[dict]:
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


def _load_from_hub(name: str, spec: SuperGlueSpec) -> TaskData:
    import datasets

    hub_id = f"{HUB_DATASET}/{name}"
    not_found = getattr(getattr(datasets, "exceptions", None), "DatasetNotFoundError", None)
    errors = tuple(e for e in (ConnectionError, not_found, _hf_hub_http_error()) if e is not None)
    try:
        dataset_dict = datasets.load_dataset(HUB_DATASET, name)
    except errors as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(
            f"cannot load {hub_id} from the Hugging Face hub ({reason}); to read local SuperGLUE files instead, "
            f"{DATA_DIR_FIX}"
        ) from error
    splits = {
        split: _rows(name, hub_examples(hub_id, spec, dataset), split) for split, dataset in dataset_dict.items()
    }
    return TaskData(splits=splits, source="hub", location=hub_id)


def _hf_hub_http_error():
    try:
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError:  # older huggingface_hub
        return None
    return HfHubHTTPError


def hub_examples(hub_id: str, spec: SuperGlueSpec, dataset) -> list[dict]:
    """The examples of one hub split, ``label`` an int or None (the hub marks test labels -1)."""
    if spec.label_names:
        hub_label_names = tuple(getattr(dataset.features["label"], "names", ()))
        if hub_label_names != spec.label_names:
            raise ValueError(f"{hub_id} labels are {hub_label_names}, peftbench expects {spec.label_names}")
    examples = []
    for example in dataset:
        example = dict(example)
        if spec.label_names:
            example["label"] = None if example["label"] == -1 else example["label"]
        elif "entity_spans" in example:  # ReCoRD: the spans in passage order, each text once
            spans = example["entity_spans"]
            texts = spans["text"] if isinstance(spans, dict) else [span["text"] for span in spans]
            example["entities"] = list(dict.fromkeys(texts))
        examples.append(example)
    return examples


# --- the tasks ------------------------------------------------------------------------------------


def _task(name: str, spec: SuperGlueSpec) -> Task:
    _, metric_names = superglue_scorer(name)
    return Task(
        name=name,
        benchmark="superglue",
        label_names=spec.label_names,
        train_split="train",
        eval_splits=("validation",),
        main_metric=spec.main_metric,
        score=_scorer(name),
        load=partial(load_superglue, name),
        has_embedded=spec.embedded,
        metric_names=metric_names,
        kind=spec.kind,
        verbalizers=spec.verbalizers,
        prompt=PROMPTS[name],
    )


TASKS: dict[str, Task] = {name: _task(name, spec) for name, spec in SUPERGLUE_SPECS.items()}
