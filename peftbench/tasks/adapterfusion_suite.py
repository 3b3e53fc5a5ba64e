"""SICK and UKP Argument, the two sentence-pair classification sets of AdapterFusion's 16 (Pfeiffer
et al. 2021, §4.2 and Appendix A.1) that are neither GLUE, SuperGLUE nor ``classification.py``'s.
Each is a ``FileSpec`` of ``labelled_files.py``; AdapterFusion reports development-set accuracy
(Table 1), so runs select and report on ``validation`` and score the labelled test split once.

- ``sick``: SICK (Marelli et al., LREC 2014), "a NLI dataset with relatedness scores" (A.1): the
  release's ``SICK.txt`` (tab-separated, a header, CRLF line ends), ``sentence_A`` → ``text``,
  ``sentence_B`` → ``text_pair``, ``entailment_label`` (ENTAILMENT / NEUTRAL / CONTRADICTION) as
  the hub's labels entailment=0, neutral=1, contradiction=2; ``SemEval_set`` TRAIN / TRIAL / TEST
  → train (4,439) / validation (495) / test (4,906), the SemEval-2014 Task 1 splits the hub copy
  has too. Hub: ``RobZamp/sick`` (a loading script only, so its parquet export is loaded).
- ``argument``: the UKP Sentential Argument Mining Corpus (Stab et al., EMNLP 2018), "a three-way
  classification task to predict whether a document provides arguments for, against or none for a
  given topic" (A.1): eight tab-separated files, one per topic (``abortion.tsv`` …
  ``school_uniforms.tsv``), with ``topic``, ``retrievedUrl``, ``archivedUrl``, ``sentenceHash``,
  ``sentence``, ``annotation`` and ``set``. The released files lack the sentences (copyright):
  UKP's completion pipeline fetches them and writes the completed files (``data/complete/``),
  which this reads. Rows: ``topic`` → ``text``, ``sentence`` → ``text_pair``, labels in UKP's
  order NoArgument=0, Argument_against=1, Argument_for=2 (UKP's BERT classifier,
  acl2019-BERT-argument-classification-and-clustering ``train.py``, ``UKPProcessorTopicSentence``);
  splits from the ``set`` column (train / val / test; AdapterFusion does not say which split it
  used, and this is the corpus' own). There is no public hub copy: pass ``data.dir`` to the folder
  holding the completed files.

SICK ships a real slice of ``SICK.txt`` (``data/README.md``); Argument ships none, and its tests
read rows written by us in the corpus' layout.
"""

from __future__ import annotations

from peftbench.tasks.base import Task
from peftbench.tasks.labelled_files import ColumnSplit, FileSpec, make_task

UKP_TOPICS = ("abortion", "cloning", "death_penalty", "gun_control", "marijuana_legalization", "minimum_wage",
              "nuclear_energy", "school_uniforms")  # fmt: skip

SPECS: dict[str, FileSpec] = {
    "sick": FileSpec(
        what="SICK", files=("SICK.txt",), text="sentence_A", text_pair="sentence_B", label="entailment_label",
        label_names=("entailment", "neutral", "contradiction"), label_of=lambda raw: raw.strip().lower(),
        split=ColumnSplit("SemEval_set", {"TRAIN": "train", "TRIAL": "validation", "TEST": "test"}),
        question="Does the first sentence imply the second? Yes, no, or maybe?", verbalizers=("yes", "maybe", "no"),
        delimiter="\t", release=("SICK", ""), hub_id="RobZamp/sick", hub_revision="refs/convert/parquet",
        hub_columns={"entailment_label": "label"}, embedded="sick",
    ),
    "argument": FileSpec(
        what="UKP Sentential Argument Mining Corpus", files=tuple(f"{topic}.tsv" for topic in UKP_TOPICS),
        text="topic", text_pair="sentence", label="annotation",
        label_names=("NoArgument", "Argument_against", "Argument_for"),
        split=ColumnSplit("set", {"train": "train", "val": "validation", "test": "test"}),
        question="Is the sentence an argument for the topic, against it, or no argument?",
        verbalizers=("no argument", "against", "for"), delimiter="\t", release=("data/complete", "complete", ""),
    ),
}  # fmt: skip

TASKS: dict[str, Task] = {name: make_task(name, name, None, spec) for name, spec in SPECS.items()}
