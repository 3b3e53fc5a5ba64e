"""The commonsense reasoning sets of AdapterFusion's 16 (Pfeiffer et al. 2021, §4.2 and Appendix
A.1), as multiple choice: WinoGrande (Sakaguchi et al., AAAI 2020), HellaSwag (Zellers et al., ACL
2019), Social IQa (Sap et al., EMNLP 2019), Cosmos QA (Huang et al., EMNLP 2019) and CommonsenseQA
(Talmor et al., NAACL 2019). AdapterFusion reports development-set accuracy (Table 1), so every
task trains on train and selects and reports on ``validation``; the test sets publish no labels
(leaderboards) and are not read.

Rows are ``base.py``'s ``multiple_choice`` kind: ``text`` the context, ``choices`` the candidate
continuations, ``label`` the right one's index. Encoders read each (``text``, choice) as a BERT
sentence pair (segment A, segment B), the multiple-choice setup of Devlin et al. (2019, §4.4):

- ``winogrande``: the sentence up to the blank, then each option followed by the rest of the
  sentence, as the authors' processor does (allenai/winogrande ``scripts/utils.py``,
  ``WinograndeProcessor``); ``answer`` "1"/"2". The XL training set (40,398): AdapterFusion's
  Table 1 puts WinoGrande among its data sets of more than 40k training instances;
- ``hellaswag``: ``ctx_a``, then ``ctx_b`` and each ending (HellaSwag's ``ctx_a``/``ctx_b`` are
  SWAG's ``sent1``/``sent2``, paired as Hugging Face's ``run_swag.py`` pairs them); ``label`` 0–3;
- ``social_iqa``: context and question, then each of answerA–C; labels 1–3 from the release's
  ``*-labels.lst`` files;
- ``cosmos_qa``: context and question, then each of answer0–3; ``label`` 0–3;
- ``commonsense_qa``: the question stem, then each of the five choices; ``answerKey`` A–E.

Prompts for rank classification (decoders, encoder-decoders) end where a choice continues:
WinoGrande's the sentence up to its blank (each option and the rest scored as the continuation),
HellaSwag's "activity: ctx_a", the question sets' "… Answer:".

Sources (``tasks/sources.py``): ``"dir"`` the release files under ``DIR/<task>/``, its release
sub-folder, or the folder itself (WinoGrande's ``winogrande_1.1/train_xl.jsonl`` and ``dev.jsonl``,
HellaSwag's ``hellaswag_{train,val}.jsonl``, Social IQa's ``socialiqa-train-dev/{train,dev}.jsonl``
with their ``-labels.lst``, Cosmos QA's ``train.csv`` and ``valid.csv``, CommonsenseQA's
``{train,dev}_rand_split.jsonl``); ``"hub"`` ``allenai/winogrande`` (``winogrande_xl``),
``Rowan/hellaswag`` (a loading script only, so its parquet export), ``allenai/social_i_qa``,
``allenai/cosmos_qa``, ``tau/commonsense_qa``; ``"embedded"`` the slices in ``data/<task>/``
(``data/README.md``: which are real and from where).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

from peftbench.errors import UserError
from peftbench.tasks.base import Task, score_labels
from peftbench.tasks.labelled_files import EMBEDDED_ROOT, decode
from peftbench.tasks.metrics import accuracy
from peftbench.tasks.sources import FIX, DataSource, release_folder, wanted

Reader = Callable[[Path], list[dict]]  # a release file → examples in the hub's layout


@dataclass(frozen=True)
class ChoiceSpec:
    """One multiple-choice set: its release, its hub copy, and how an example becomes a row."""

    what: str
    release: tuple[str, ...]  # sub-folders of the task folder where the files may sit
    files: dict[str, str]  # split → release file
    read: Reader
    row: Callable[[dict], dict]  # a hub-layout example → a row
    label_names: tuple[str, ...]  # the choices' names in the release
    prompt: Callable[[dict], str]
    hub_id: str
    hub_config: str | None = None
    hub_revision: str | None = None


def _error(path: Path, line: int, problem: str, what: str) -> UserError:
    return UserError(f"{path}:{line}: {problem}; repair the row or restore the file from the {what} release")


def _jsonl(path: Path) -> list[dict]:
    examples = []
    for number, text in enumerate(decode(path).splitlines(), start=1):
        if text.strip():
            try:
                examples.append({**json.loads(text), "_where": (path, number)})
            except json.JSONDecodeError as error:
                raise _error(path, number, f"not a JSON object ({error.msg})", path.name) from None
    return examples


def _social_iqa(path: Path) -> list[dict]:
    """``train.jsonl`` and its ``train-labels.lst`` (one label a line, "1"–"3"), as the hub has them."""
    labels_path = path.with_name(path.stem + "-labels.lst")
    if not labels_path.is_file():
        raise UserError(f"missing {labels_path} (Social IQa labels); {FIX} to the socialiqa-train-dev folder")
    examples = _jsonl(path)
    labels = [line.strip() for line in decode(labels_path).splitlines() if line.strip()]
    if len(labels) != len(examples):
        raise UserError(f"{labels_path} has {len(labels)} labels for {len(examples)} questions in {path.name}; "
                        "restore both from socialiqa-train-dev.zip")  # fmt: skip
    return [{**example, "label": label} for example, label in zip(examples, labels)]


def _cosmos_csv(path: Path) -> list[dict]:
    reader = csv.DictReader(io.StringIO(decode(path), newline=""))
    return [{**example, "_where": (path, reader.line_num)} for example in reader]


def _commonsense_qa(path: Path) -> list[dict]:
    """The release's nested ``question`` (``stem``, ``choices``) flattened as the hub has it."""
    examples = []
    for example in _jsonl(path):
        question = example.get("question", {})
        choices = question.get("choices", [])
        examples.append({
            "question": question.get("stem"), "answerKey": example.get("answerKey", ""),
            "choices": {"label": [c.get("label") for c in choices], "text": [c.get("text") for c in choices]},
            "_where": example["_where"],
        })  # fmt: skip
    return examples


def _index(raw, names: tuple[str, ...]) -> int | None:
    """A label as the release spells it ("2", 3, "B") → the choice index; "" / -1 (no label) → None."""
    raw = "" if raw is None else str(raw).strip()
    if raw in ("", "-1"):
        return None
    if raw not in names:
        raise ValueError(f"label {raw!r} is not one of {', '.join(names)}")
    return names.index(raw)


def _winogrande(example: dict) -> dict:
    sentence = example["sentence"]
    blank = sentence.index("_")
    rest = "_ " + sentence[blank + 1 :].strip()
    return {
        "text": sentence[:blank],
        "choices": [rest.replace("_", example[f"option{i}"]) for i in (1, 2)],
        "label": _index(example["answer"], ("1", "2")),
    }


def _hellaswag(example: dict) -> dict:
    return {
        "text": example["ctx_a"],
        "choices": [f"{example['ctx_b']} {ending}".strip() for ending in example["endings"]],
        "label": _index(example["label"], ("0", "1", "2", "3")),
        "activity": example["activity_label"],
    }


def _social(example: dict) -> dict:
    return {
        "text": f"{example['context']} {example['question']}",
        "choices": [example[f"answer{letter}"] for letter in "ABC"],
        "label": _index(example["label"], ("1", "2", "3")),
    }


def _cosmos(example: dict) -> dict:
    return {
        "text": f"{example['context']} {example['question']}",
        "choices": [example[f"answer{i}"] for i in range(4)],
        "label": _index(example["label"], ("0", "1", "2", "3")),
    }


def _csqa(example: dict) -> dict:
    letters = tuple(example["choices"]["label"])
    if letters != ("A", "B", "C", "D", "E"):
        raise ValueError(f"choices {letters} are not A–E")
    return {"text": example["question"], "choices": list(example["choices"]["text"]),
            "label": _index(example["answerKey"], letters)}  # fmt: skip


def _blank_prompt(row: dict) -> str:
    """The sentence up to the blank; "Complete the sentence:" where the blank opens it (a prompt
    must have a token before the first scored one)."""
    return row["text"].rstrip() or "Complete the sentence:"


def _activity_prompt(row: dict) -> str:
    return f"{row['activity']}: {row['text']}"


def _question_prompt(row: dict) -> str:
    return f"{row['text']}\nAnswer:"


SPECS: dict[str, ChoiceSpec] = {
    "winogrande": ChoiceSpec(
        what="WinoGrande", release=("winogrande_1.1", ""), files={"train": "train_xl.jsonl", "validation": "dev.jsonl"},
        read=_jsonl, row=_winogrande, label_names=("option1", "option2"), prompt=_blank_prompt,
        hub_id="allenai/winogrande", hub_config="winogrande_xl",
    ),
    "hellaswag": ChoiceSpec(
        what="HellaSwag", release=("data", ""),
        files={"train": "hellaswag_train.jsonl", "validation": "hellaswag_val.jsonl"}, read=_jsonl, row=_hellaswag,
        label_names=("ending0", "ending1", "ending2", "ending3"), prompt=_activity_prompt, hub_id="Rowan/hellaswag",
        hub_revision="refs/convert/parquet",
    ),
    "social_iqa": ChoiceSpec(
        what="Social IQa", release=("socialiqa-train-dev", ""), files={"train": "train.jsonl", "validation": "dev.jsonl"},
        read=_social_iqa, row=_social, label_names=("answerA", "answerB", "answerC"), prompt=_question_prompt,
        hub_id="allenai/social_i_qa",
    ),
    "cosmos_qa": ChoiceSpec(
        what="Cosmos QA", release=("data", ""), files={"train": "train.csv", "validation": "valid.csv"},
        read=_cosmos_csv, row=_cosmos, label_names=("answer0", "answer1", "answer2", "answer3"),
        prompt=_question_prompt, hub_id="allenai/cosmos_qa",
    ),
    "commonsense_qa": ChoiceSpec(
        what="CommonsenseQA", release=("",), files={"train": "train_rand_split.jsonl", "validation": "dev_rand_split.jsonl"},
        read=_commonsense_qa, row=_csqa, label_names=("A", "B", "C", "D", "E"), prompt=_question_prompt,
        hub_id="tau/commonsense_qa",
    ),
}  # fmt: skip


def _rows(spec: ChoiceSpec, examples: list[dict], where: str) -> list[dict]:
    """Rows of labelled examples; an example the release labels wrongly is one line naming it."""
    rows = []
    for number, example in enumerate(examples):
        try:
            row = spec.row(example)
        except (KeyError, ValueError) as error:
            path, line = example.get("_where", (where, number))
            raise _error(Path(path), line, f"not a {spec.what} example ({error})", spec.what) from None
        if row["label"] is None:
            path, line = example.get("_where", (where, number))
            raise _error(Path(path), line, "no label in a labelled split", spec.what)
        rows.append(row)
    return rows


def _read_folder(spec: ChoiceSpec, folder: Path, wanted_splits=None) -> dict[str, list[dict]]:
    release = release_folder(folder, spec.release, (spec.files["train"], *spec.files.values()), spec.what)
    splits = {}
    for split, name in spec.files.items():
        if wanted(split, wanted_splits):
            path = release / name
            if not path.is_file():
                raise UserError(f"missing {path} ({spec.what} {split} split); {FIX} to a complete {spec.what} release")
            splits[split] = _rows(spec, spec.read(path), str(path))
    return splits


def _read_hub(spec: ChoiceSpec, dataset_dict) -> dict[str, list[dict]]:
    """The hub's train and validation splits (its test split has no labels)."""
    return {split: _rows(spec, [dict(example) for example in dataset], f"{spec.hub_id} {split}")
            for split, dataset in dataset_dict.items() if split in spec.files}  # fmt: skip


def data_source(name: str, spec: ChoiceSpec) -> DataSource:
    embedded = EMBEDDED_ROOT / name
    return DataSource(
        what=spec.what, benchmark=name, folder=None, files=tuple(spec.files.values()), hub_id=spec.hub_id,
        hub_config=spec.hub_config, hub_revision=spec.hub_revision, read_folder=partial(_read_folder, spec),
        read_hub=partial(_read_hub, spec), embedded=embedded if embedded.is_dir() else None,
        hint=f" ({', '.join(sub for sub in spec.release if sub) or 'the release files'})",
    )  # fmt: skip


def _task(name: str, spec: ChoiceSpec) -> Task:
    source = data_source(name, spec)
    return Task(
        name=name,
        benchmark=name,
        label_names=spec.label_names,
        train_split="train",
        eval_splits=("validation",),
        main_metric="accuracy",
        score=score_labels(accuracy),
        load=source.load,
        has_embedded=source.embedded is not None,
        metric_names=("accuracy",),
        kind="multiple_choice",
        prompt=spec.prompt,
    )


TASKS: dict[str, Task] = {name: _task(name, spec) for name, spec in SPECS.items()}
