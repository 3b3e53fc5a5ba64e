"""What every task provides: its data, its label space, its metrics and its main metric.

A *row* is a plain dict. Every row has ``text`` (str) and ``label`` (None where the split has no
labels, as GLUE test); the rest depends on the task's ``kind``:

- ``"classification"``: ``text_pair`` (str or None) and ``label`` an int class index (a float for
  regression). MultiRC rows add ``group``, the question they answer (its EM is per question).
- ``"multiple_choice"``: ``choices`` (list of str, each a continuation of ``text``) and ``label``
  the index of the right one (COPA; ReCoRD, whose choices are the query with each candidate
  entity filled in, adds ``choice_names`` (the entities) and ``answers`` (the gold entities)).
- ``"generation"``: ``label`` the reference text, and ``group`` the input the references share
  (E2E scores each meaning representation against all of its references).
- ``"token_classification"``: ``tokens`` (the words, list of str; ``text`` is them joined by
  spaces) and ``label`` one tag index per word (WikiANN's NER tags).
- ``"masked_lm"``: ``text`` one line of raw text (``label`` None): the text a masked language model
  learns from (``mlm``), scored by its loss on held-out text.

Rows of a cross-lingual task also carry ``language``, the language of their text (XNLI, WikiANN).

Formats (``peftbench.formats``) turn rows into model inputs: encoders read ``text``/``text_pair``
(or ``text`` with each choice) through a head; decoders and encoder-decoders read
``task.prompt(row)`` and score each ``task.verbalizers`` word (or each choice) as its continuation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence


@dataclass
class TaskData:
    """The rows of every split of a task, and where they came from.

    ``source`` is ``"dir"``, ``"hub"`` or ``"embedded"``; ``location`` is the folder, the hub id
    (``nyu-mll/glue/rte``) or the package path. ``sample`` is True when a split is a slice of
    the official split (the embedded data), so that tables never mix it into a paper's cell.
    ``subset`` names an official reduced setting of the benchmark (``"fewglue"``: FewGLUE's 32
    training examples), None for the full splits; it is part of the run id and tables match it.
    ``label_names`` is the label set the rows' labels index where the data decides it (a task with
    ``Task.declared_classes``: the CFPB complaints' Issue values of the snapshot read), and
    ``declared_classes`` the count its paper declares; both None/0 where the task names its labels.
    """

    splits: dict[str, list[dict]]
    source: str
    location: str
    sample: bool = False
    subset: str | None = None
    label_names: tuple[str, ...] | None = None
    declared_classes: int = 0

    def fingerprint(self) -> dict:
        """Rows per split and a sha256 over every row, in order (DESIGN §3, data fingerprint)."""
        import hashlib
        import json

        digest = hashlib.sha256()
        for name in sorted(self.splits):
            for row in self.splits[name]:
                digest.update(json.dumps([name, row], sort_keys=True).encode())
        found = {
            "source": self.source,
            "location": self.location,
            "sample": self.sample,
            "subset": self.subset,
            "rows": {name: len(rows) for name, rows in sorted(self.splits.items())},
            "sha256": digest.hexdigest(),
        }
        if self.label_names is not None:  # the rows' labels are indices into these
            found.update(label_names=list(self.label_names), declared_classes=self.declared_classes)
        return found


RUN_OPTIONS = ("language", "text_file")  # task config fields that only some tasks read (``Task.options``)


@dataclass(frozen=True)
class Task:
    """A benchmark task: how to read it and how to score it.

    ``score(predictions, rows)`` returns ``{metric name: float}`` with values as fractions
    (accuracy 0.866, not 86.6); tables scale them. ``predictions`` are class (or choice) indices,
    floats for a regression task (``num_labels == 1``), or texts for a generation task; ``rows``
    are the scored rows, which carry the labels and whatever else the metric groups by.
    """

    name: str
    benchmark: str
    label_names: tuple[str, ...]  # empty for regression
    train_split: str
    eval_splits: tuple[str, ...]  # e.g. ("validation",) or MNLI's matched + mismatched
    main_metric: str
    score: Callable[[Sequence, Sequence[dict]], dict[str, float]]
    load: Callable[..., TaskData]  # load(source: str, data_dir: str | None, splits=None) -> TaskData
    has_embedded: bool = False
    metric_names: tuple[str, ...] = field(default=())
    kind: str = "classification"  # classification | multiple_choice | generation
    verbalizers: tuple[str, ...] = ()  # each label as words, for formats that score label text
    prompt: Callable[[dict], str] | None = None  # the row as one input text, for those formats
    folds: int = 0  # > 0: no labelled validation split; dev scores by K-fold CV on train (RAFT)
    # submit(folder, split, rows, predictions) -> file: an unlabelled test split's predictions in the
    # benchmark's submission format (RAFT's leaderboard CSV, the GLUE server's TSV); every run with
    # rows of its ``submission_splits`` writes them
    submit: Callable | None = None
    submission_splits: tuple[str, ...] = ("test",)
    # Held-out splits with labels, scored once after training with the best weights (never used to
    # choose them): E2E's test set, which the LoRA and prefix-tuning tables report; the MRQA
    # out-of-domain dev sets and another task's dev set, scored zero-shot (mrqa.py, transfer.py).
    test_splits: tuple[str, ...] = ()
    # A regression read as text: the value each label word stands for (STS-B's "0.0" … "5.0" in
    # steps of 0.2, as T5 writes its targets); a row's label is ranked as the nearest one.
    verbalized_values: tuple[float, ...] = ()
    # P-tuning's template (prompt-token places and anchor words among the row's fields; a
    # ``ptuning_templates.PTuningTemplate``) where the paper's code has one for the task
    ptuning_template: object | None = None
    # How a pattern writes a row's choice as the answer at its [MASK] (the cloze format; P-tuning's
    # COPA pattern: first letter lower-cased, final punctuation off); None: the choice as it is
    choice_answer: Callable[[str], str] | None = None
    # A label set the data decides (the CFPB complaints: the Issue values of the snapshot read):
    # the class count the paper declares, which sizes the head and counts parameters before any
    # data is read; ``label_names`` stays empty until a run reads the rows (``with_labels``).
    declared_classes: int = 0
    # Run options the task reads from the run's task config (``RUN_OPTIONS``: ``task.language``,
    # ``task.text_file``), as (name, value) pairs holding the values it is bound to, and
    # ``configure(**values) -> Task``, the task bound to other values (its rows depend on them)
    options: tuple[tuple[str, object], ...] = ()
    configure: Callable[..., Task] | None = None

    @property
    def num_labels(self) -> int:
        return len(self.label_names) or self.declared_classes or 1

    @property
    def is_regression(self) -> bool:
        return not self.label_names and not self.declared_classes

    def with_labels(self, names: Sequence[str]) -> Task:
        """The task with the label set its data names (a ``declared_classes`` task), each label's
        word its name in lower case (for rank classification)."""
        return replace(self, label_names=tuple(names), verbalizers=tuple(name.lower() for name in names))

    @property
    def main_split(self) -> str:
        return self.eval_splits[0]


def generation_task(name: str, benchmark: str, source, score, prompt, metric_names: Sequence[str],
                    test_splits: Sequence[str] = ("test",), has_embedded: bool = True) -> Task:
    """A text-generation task as the generation benchmarks declare it (E2E, WebNLG, DART, SAMSum,
    WikiSQL, MRQA): trained on ``train``, its weights chosen on ``validation`` by the first of
    ``metric_names``, and ``test_splits`` scored once with them; ``source`` is its ``DataSource``."""
    return Task(
        name=name, benchmark=benchmark, label_names=(), train_split="train", eval_splits=("validation",),
        main_metric=metric_names[0], score=score, load=source.load, has_embedded=has_embedded,
        metric_names=tuple(metric_names), kind="generation", prompt=prompt, test_splits=tuple(test_splits),
    )  # fmt: skip


def score_labels(scorer: Callable[[Sequence, Sequence], dict[str, float]]):
    """A ``Task.score`` from a ``scorer(predictions, labels)`` that needs nothing but the labels."""

    def score(predictions: Sequence, rows: Sequence[dict]) -> dict[str, float]:
        return scorer(predictions, [row["label"] for row in rows])

    return score


def references_by_input(predictions: Sequence[str], rows: Sequence[dict]) -> tuple[list[list[str]], list[str]]:
    """A generation task's rows as an official scorer sees them: per input (``group``, in order
    of first appearance) its references (the rows' labels, in row order) and one prediction, its
    first row's (the generation format writes the same text for every row of an input)."""
    references: dict[str, list[str]] = {}
    predicted: dict[str, str] = {}
    for prediction, row in zip(predictions, rows, strict=True):
        references.setdefault(row["group"], []).append(row["label"])
        predicted.setdefault(row["group"], prediction)
    return list(references.values()), list(predicted.values())
