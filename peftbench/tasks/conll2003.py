"""CoNLL-2003 English named entity recognition (Tjong Kim Sang & De Meulder, CoNLL 2003,
"Introduction to the CoNLL-2003 Shared Task: Language-Independent Named Entity Recognition"):
Reuters news sentences tagged with PER, ORG, LOC and MISC.

One task, ``conll2003``: trained on ``eng.train``, its weights chosen on the development file
``eng.testa`` (``validation``), the test file ``eng.testb`` (``test``, the shared task's reported
split) scored once with them. A row is a sentence: ``tokens`` and ``label``, one tag index per word
in the hub's order ``TAGS`` (IOB2). It runs in the ``token_classification`` format (encoders). The
metric is the entity-level F1 (main), precision and recall of the shared task's ``conlleval``
(``conlleval.py``).

Sources (``tasks/sources.py``):

- ``"dir"``: the release's files under ``DIR/conll2003/`` or ``DIR`` itself: ``eng.train``,
  ``eng.testa``, ``eng.testb``, one word a line as ``<word> <POS> <chunk> <NE>`` (four fields
  separated by single spaces), a blank line after each sentence, a ``-DOCSTART- -X- …`` line (and
  its blank line) before each article. Documents are not rows: their marker lines are skipped, as
  the hub's loading script ``conll2003.py`` skips them. The release tags in IOB1 (an entity opens
  with ``I-``; ``B-`` only where it follows one of its type); a row's tags are the same chunks in
  IOB2 (``conlleval.iob2``), as the hub's copy holds them, so that both sources share one label set
  and conlleval scores the same entities either way.
- ``"hub"``: ``datasets.load_dataset("eriktks/conll2003")`` (the former ``conll2003``), read at
  ``refs/convert/parquet`` (its main branch holds a loading script, which ``datasets`` >= 4
  refuses): its ``tokens`` and ``ner_tags``.
- ``"embedded"``: the first articles of the three release files in ``peftbench/tasks/data/conll2003/``
  (real rows, see ``data/README.md``).
"""

from __future__ import annotations

from pathlib import Path

from peftbench.errors import UserError
from peftbench.tasks.base import Task
from peftbench.tasks.conlleval import iob2, tag_scores
from peftbench.tasks.sources import DataSource, read_split_files

TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
HUB_ID = "eriktks/conll2003"
EMBEDDED = Path(__file__).parent / "data" / "conll2003"
FILES = {"train": "eng.train", "validation": "eng.testa", "test": "eng.testb"}
DOCUMENT = "-DOCSTART-"
RESTORE = "restore it from the CoNLL-2003 release (eng.train, eng.testa, eng.testb)"


def read_sentences(path: Path) -> list[dict]:
    """The sentences of one release file, in file order (a last sentence without its blank line too)."""
    rows, tokens, tags = [], [], []

    def close() -> None:
        if tokens:
            labels = iob2(tags)
            rows.append({"text": " ".join(tokens), "tokens": list(tokens), "label": [TAGS.index(t) for t in labels]})
            tokens.clear()
            tags.clear()

    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                close()
                continue
            fields = line.split(" ")
            if fields[0] == DOCUMENT:
                close()
                continue
            if len(fields) != 4:
                raise UserError(f"{path}:{number}: {len(fields)} fields, not 4 (word POS chunk NE); {RESTORE}")
            if fields[3] not in TAGS:
                raise UserError(f"{path}:{number}: tag {fields[3]!r} is not one of {', '.join(TAGS)}; {RESTORE}")
            tokens.append(fields[0])
            tags.append(fields[3])
    close()
    return rows


def _read_folder(folder: Path, splits=None) -> dict[str, list[dict]]:
    return read_split_files(folder, FILES, splits, read_sentences, "CoNLL-2003", "conll2003/", RESTORE)


def _hub_splits(dataset_dict) -> dict[str, list[dict]]:
    splits = {}
    for split, dataset in dataset_dict.items():
        names = tuple(dataset.features["ner_tags"].feature.names)
        if names != TAGS:
            raise ValueError(f"{HUB_ID} tags are {names}, peftbench expects {TAGS}")
        splits[split] = [{"text": " ".join(tokens), "tokens": list(tokens), "label": list(tags)}
                         for tokens, tags in zip(dataset["tokens"], dataset["ner_tags"], strict=True)]  # fmt: skip
    return splits


SOURCE = DataSource(
    what="CoNLL-2003", benchmark="conll2003", folder=None, files=tuple(FILES.values()), hub_id=HUB_ID,
    hub_config=None, hub_revision="refs/convert/parquet", read_folder=_read_folder, read_hub=_hub_splits,
    embedded=EMBEDDED,
)  # fmt: skip

TASKS: dict[str, Task] = {
    "conll2003": Task(
        name="conll2003", benchmark="conll2003", label_names=TAGS, train_split="train", eval_splits=("validation",),
        main_metric="f1", score=tag_scores(TAGS), load=SOURCE.load, has_embedded=True,
        metric_names=("f1", "precision", "recall"), kind="token_classification", test_splits=("test",),
    )  # fmt: skip
}
