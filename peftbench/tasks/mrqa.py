"""Zero-shot domain transfer in extractive QA, as the prompt tuning paper runs it (Lester, Al-Rfou
& Constant 2021, §5 and Table 1): train on SQuAD, select checkpoints on SQuAD validation F1
(footnote 11), and score each out-of-domain development set of the MRQA 2019 shared task (Fisch et
al. 2019) once, with the selected weights.

One task, ``mrqa_squad``: ``train`` is MRQA's SQuAD training set (86,588 questions), ``validation``
MRQA's SQuAD dev set (10,507), and its held-out splits (``Task.test_splits``, scored once after
training) are the six out-of-domain dev sets: ``textbookqa`` (1,503), ``bioasq`` (1,504), ``race``
(674), ``relation_extraction`` (2,948), ``duorc`` (DuoRC ParaphraseRC, 1,501), ``drop`` (1,503),
the counts of MRQA's README. One run therefore fills a row of the paper's table, as one trained
model filled it there. The paper read SQuAD v1.1 from TensorFlow Datasets (Appendix A.3: 87,599 /
10,570 questions); MRQA keeps the questions with an answer found in a context of at most 800
tokens, so its SQuAD sets are slightly smaller (86,588 / 10,507).

A row is one question: ``text`` the context, ``question``, ``answers`` (the gold answers as
released), ``label`` the first answer in T5's text (the training target) and ``group`` the qid.

**Input format.** The paper (Appendix A.3) "used the T5 SQuAD preprocessing code" for SQuAD and
MRQA, the ``squad`` function at line 264 of ``t5/data/preprocessors.py`` that its footnote 22
links (google-research/text-to-text-transfer-transformer, e.g. at f0b29894): it writes
``question: <q> context: <c>`` and takes the first answer as the target, each text passed through
``_pad_punctuation``: a space on each side of every character outside TensorFlow's (RE2's)
``\\w`` = ``[0-9A-Za-z_]``, then runs of RE2's ``\\s`` = ``[\\t\\n\\f\\r ]`` collapsed to one space
(``pad_punctuation`` here; T5 narrowed the class to punctuation in commit 9896475, April 2022,
after the paper). The prompt reads the same on every model family; on T5 an input longer than
``task.max_length`` loses its end, as T5's pipeline cuts it (the question comes first).

**Metric.** F1 and EM as ``mrqa_official_eval.py`` computes them (MRQA-Shared-Task-2019, itself
"adapted from the SQuAD v1.1 official evaluation script"): each prediction against each gold answer
after ``normalize_answer`` (lowercase, ASCII punctuation and the articles a/an/the removed,
whitespace collapsed), the max over golds, the mean over questions. ReCoRD's script applies the same
rule, so ``superglue_metrics.record`` computes it; tests check it against the MRQA script. The
paper scores with T5's ``squad`` metric (Appendix A.1), the same rule applied to T5's preprocessed
answers: golds and predictions are compared after ``pad_punctuation``, as there ("U.S." is then
"u s" on both sides, and a prediction written either way scores the same). Main metric F1, the
paper's.

Sources (``tasks/sources.py``): ``"dir"`` the release's files as its download scripts fetch them
(``download_train.sh DIR/mrqa/train``, ``download_in_domain_dev.sh DIR/mrqa/dev``,
``download_out_of_domain_dev.sh DIR/mrqa/dev``): ``train/SQuAD.jsonl.gz``, ``dev/SQuAD.jsonl.gz``
and, where present, ``dev/TextbookQA.jsonl.gz``, ``BioASQ``, ``RACE``, ``RelationExtraction``,
``DuoRC.ParaphraseRC`` (or ``DuoRC``, the download script's name) and ``DROP``; each a header line
then one context per line with its ``qas`` (``.jsonl`` unpacked also reads). A missing
out-of-domain file leaves its split out of the run. ``"hub"``
``datasets.load_dataset("mrqa-workshop/mrqa")``: its ``train`` and ``validation`` splits hold the six
in-domain sets and its ``test`` split the six out-of-domain dev sets, told apart by the ``subset``
column (the files' header names; the whole data set downloads, as the hub has no per-set config).
``"embedded"`` real rows of the two SQuAD files in
``peftbench/tasks/data/mrqa`` (no out-of-domain rows could be found offline).
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from pathlib import Path

from peftbench.errors import UserError
from peftbench.tasks.base import generation_task
from peftbench.tasks.sources import FIX, DataSource, wanted
from peftbench.tasks.superglue_metrics import record

HUB_DATASET = "mrqa-workshop/mrqa"
EMBEDDED = Path(__file__).parent / "data" / "mrqa"
IN_DOMAIN = "SQuAD"
# split -> (the hub's ``subset`` and the release's file name, other names the file goes by)
OUT_OF_DOMAIN: dict[str, tuple[str, tuple[str, ...]]] = {
    "textbookqa": ("TextbookQA", ()),
    "bioasq": ("BioASQ", ()),
    "race": ("RACE", ()),
    "relation_extraction": ("RelationExtraction", ()),
    "duorc": ("DuoRC.ParaphraseRC", ("DuoRC",)),  # download_out_of_domain_dev.sh saves it as DuoRC
    "drop": ("DROP", ()),
}
SUFFIXES = (".jsonl.gz", ".jsonl")
RELEASE = "the MRQA 2019 release (github.com/mrqa/MRQA-Shared-Task-2019, download_*.sh)"

_NOT_WORD = re.compile(r"([^0-9A-Za-z_])")  # RE2's \W, which T5's _pad_punctuation pads
_SPACES = re.compile(r"[\t\n\f\r ]+")  # RE2's \s+


def pad_punctuation(text: str) -> str:
    """T5's ``_pad_punctuation`` (preprocessors.py before 2022): every character outside
    ``[0-9A-Za-z_]`` gets a space on each side, then whitespace runs become one space."""
    return _SPACES.sub(" ", _NOT_WORD.sub(r" \1 ", text))


def prompt(row: dict) -> str:
    """T5's ``squad`` input: ``question: <q> context: <c>``, padded, joined and collapsed."""
    joined = " ".join(["question:", pad_punctuation(row["question"]), "context:", pad_punctuation(row["text"])])
    return _SPACES.sub(" ", joined)


def score(predictions: list[str], rows: list[dict]) -> dict[str, float]:
    """MRQA's F1 and EM (max over golds, mean over questions) on T5's padded texts."""
    golds = [[pad_punctuation(answer) for answer in row["answers"]] for row in rows]
    return record([pad_punctuation(prediction) for prediction in predictions], golds)


def _row(context: str, question: str, answers: list[str], qid: str) -> dict:
    return {"text": context, "question": question, "answers": list(answers), "label": pad_punctuation(answers[0]),
            "group": qid}  # fmt: skip


def _read_folder(folder: Path, wanted_splits=None) -> dict[str, list[dict]]:
    splits = {}
    for split, subfolder in (("train", "train"), ("validation", "dev")):
        if wanted(split, wanted_splits):
            path = _release_file(folder / subfolder, IN_DOMAIN, ())
            if path is None:
                raise UserError(
                    f"missing {folder / subfolder / (IN_DOMAIN + SUFFIXES[0])} (MRQA SQuAD {split}); "
                    f"{FIX} to the folder holding mrqa/train and mrqa/dev from {RELEASE}"
                )
            splits[split] = read_release_file(path)
    for split, (name, aliases) in OUT_OF_DOMAIN.items():
        path = _release_file(folder / "dev", name, aliases) if wanted(split, wanted_splits) else None
        if path is not None:
            splits[split] = read_release_file(path)
    return splits


def _release_file(folder: Path, name: str, aliases: tuple[str, ...]) -> Path | None:
    for stem in (name, *aliases):
        for suffix in SUFFIXES:
            if (folder / (stem + suffix)).is_file():
                return folder / (stem + suffix)
    return None


def read_release_file(path: Path) -> list[dict]:
    """The questions of one MRQA file: an optional header line, then one context object per line
    (``context``, ``qas`` of ``qid``, ``question``, ``answers``), as ``mrqa_official_eval.py`` reads it."""
    opener = gzip.open if path.name.endswith(".gz") else open
    rows: list[dict] = []
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    rows += _questions(path, number, line)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as error:
        raise UserError(f"{path} cannot be read ({error}); download it again from {RELEASE}") from None
    if not rows:
        raise UserError(f"{path} holds no questions; download it again from {RELEASE}")
    return rows


def _questions(path: Path, number: int, line: str) -> list[dict]:
    try:
        example = json.loads(line)
    except json.JSONDecodeError as error:
        raise UserError(f"{path}:{number} is not JSON ({error.msg}); download the file again from {RELEASE}") from None
    if number == 1 and isinstance(example, dict) and "header" in example:
        return []
    where = f"{path}:{number}"
    if not isinstance(example, dict) or not isinstance(example.get("context"), str) or not isinstance(example.get("qas"), list):
        raise UserError(f"{where} is no MRQA context (a 'context' string and a 'qas' list); download the file again from {RELEASE}")
    rows = []
    for qa in example["qas"]:
        missing = [key for key in ("qid", "question", "answers") if not isinstance(qa, dict) or key not in qa]
        if missing:
            raise UserError(f"{where}: a question has no {', '.join(missing)}; download the file again from {RELEASE}")
        answers = qa["answers"]
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
            raise UserError(f"{where}: question {qa['qid']} has no gold answer strings; download the file again from {RELEASE}")
        rows.append(_row(example["context"], qa["question"], answers, qa["qid"]))
    return rows


def _hub_splits(dataset_dict) -> dict[str, list[dict]]:
    """The hub's ``subset`` column sorted into the task's splits: SQuAD of ``train`` and
    ``validation``, each out-of-domain set of ``test``."""
    wanted_subsets = {"train": {IN_DOMAIN: "train"}, "validation": {IN_DOMAIN: "validation"},
                      "test": {name: split for split, (name, _) in OUT_OF_DOMAIN.items()}}  # fmt: skip
    splits: dict[str, list[dict]] = {}
    for hub_split, subsets in wanted_subsets.items():
        data = dataset_dict[hub_split]
        kept = [i for i, subset in enumerate(data["subset"]) if subset in subsets]
        for example in data.select(kept):
            row = _row(example["context"], example["question"], example["answers"], example["qid"])
            splits.setdefault(subsets[example["subset"]], []).append(row)
    return splits


SOURCE = DataSource(
    what="MRQA SQuAD", benchmark="mrqa", folder=None,
    files=(f"train/{IN_DOMAIN}{SUFFIXES[0]}", f"dev/{IN_DOMAIN}{SUFFIXES[0]}"),
    hub_id=HUB_DATASET, hub_config=None, read_folder=_read_folder, read_hub=_hub_splits, embedded=EMBEDDED,
)  # fmt: skip
TASKS = {"mrqa_squad": generation_task("mrqa_squad", "mrqa", SOURCE, score, prompt, ("f1", "em"), tuple(OUT_OF_DOMAIN))}
