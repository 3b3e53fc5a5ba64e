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

Prompts for rank classification (decoders, encoder-decoders) are ``superglue_prompts.py``'s; the
label words are the specs' ``verbalizers``.

Three sources (``tasks/sources.py``; ``load(source, data_dir)``):

- ``"dir"``: the SuperGLUE jsonl layout (``superglue_jsonl.py``; ``superglue/<Task>/train.jsonl``, ``val.jsonl`` → split
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

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

from peftbench.errors import UserError
from peftbench.tasks.base import Task, score_labels
from peftbench.tasks.ptuning_templates import TEMPLATES as PTUNING_TEMPLATES
from peftbench.tasks.sources import FIX, DataSource, wanted
from peftbench.tasks.superglue_jsonl import read_jsonl
from peftbench.tasks.superglue_metrics import multirc, record, superglue_scorer
from peftbench.tasks.superglue_prompts import COPA_QUESTIONS, PROMPTS

HUB_DATASET = "aps/super_glue"
EMBEDDED_ROOT = Path(__file__).parent / "data" / "superglue"



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


_LAYOUT_FILES = ("train.jsonl", "val.jsonl", "dev32.jsonl", "test.jsonl")
FEWGLUE = ("fewglue", "FewGLUE_32dev layout: dev32.jsonl as validation")


def _is_fewglue(folder: Path) -> bool:
    return (folder / "dev32.jsonl").is_file() and not (folder / "val.jsonl").is_file()


def _read_task_folder(name: str, spec: SuperGlueSpec, folder: Path, wanted_splits=None) -> dict[str, list[dict]]:
    """Every split whose file is in ``folder`` (of ``wanted_splits``, all when None), in the
    SuperGLUE or the FewGLUE_32dev layout."""
    if _is_fewglue(folder):
        files = (("train", "train.jsonl", True), ("validation", "dev32.jsonl", True), ("test", "test.jsonl", False))
    else:
        files = (
            ("train", "train.jsonl", True),
            ("validation", "val.jsonl", True),
            ("dev32", "dev32.jsonl", False),
            ("test", "test.jsonl", False),
        )
    splits = {}
    for split, file_name, required in (item for item in files if wanted(item[0], wanted_splits)):
        path = folder / file_name
        if not path.is_file():
            if required:
                raise UserError(
                    f"missing {path} (SuperGLUE {spec.folder} {split} split); {FIX} to a complete "
                    f"SuperGLUE copy (superglue/{spec.folder}/train.jsonl and val.jsonl) or a FewGLUE_32dev "
                    f"folder ({spec.folder}/train.jsonl and dev32.jsonl)"
                )
            continue
        examples = read_jsonl(name, spec, path, labelled=split != "test")
        rows = _rows(name, examples, split)
        if not rows:
            raise UserError(f"{path} has no rows; restore it from the original SuperGLUE data")
        splits[split] = rows
    return splits


def _hub_splits(name: str, spec: SuperGlueSpec, dataset_dict) -> dict[str, list[dict]]:
    hub_id = f"{HUB_DATASET}/{name}"
    return {split: _rows(name, hub_examples(hub_id, spec, dataset), split) for split, dataset in dataset_dict.items()}


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


def data_source(name: str, spec: SuperGlueSpec) -> DataSource:
    """SuperGLUE task ``name`` in a data folder (``superglue/<Task>/`` or FewGLUE), on the hub and shipped."""
    return DataSource(
        what=f"SuperGLUE {spec.folder}", benchmark="superglue", folder=spec.folder, files=_LAYOUT_FILES,
        hub_id=HUB_DATASET, hub_config=name,
        read_folder=partial(_read_task_folder, name, spec), read_hub=partial(_hub_splits, name, spec),
        embedded=EMBEDDED_ROOT / spec.folder if spec.embedded else None,
        subset=lambda folder: FEWGLUE if _is_fewglue(folder) else None, hint=" (or to a FewGLUE_32dev folder)",
    )  # fmt: skip


def _task(name: str, spec: SuperGlueSpec) -> Task:
    _, metric_names = superglue_scorer(name)
    source = data_source(name, spec)
    return Task(
        name=name,
        benchmark="superglue",
        label_names=spec.label_names,
        train_split="train",
        eval_splits=("validation",),
        main_metric=spec.main_metric,
        score=_scorer(name),
        load=source.load,
        has_embedded=source.embedded is not None,
        metric_names=metric_names,
        kind=spec.kind,
        verbalizers=spec.verbalizers,
        prompt=PROMPTS[name],
        ptuning_template=PTUNING_TEMPLATES.get(name),
    )


TASKS: dict[str, Task] = {name: _task(name, spec) for name, spec in SUPERGLUE_SPECS.items()}
