"""WikiANN named entity recognition (Pan et al., ACL 2017, "Cross-lingual Name Tagging and Linking
for 282 Languages"), in the balanced train / dev / test splits of Rahimi, Li & Cohn (ACL 2019,
"Massively Multilingual Transfer for NER") for 176 languages: Wikipedia sentences tagged with
PER, ORG and LOC in IOB2. XTREME's PAN-X and MAD-X's NER evaluation use these splits.

One task, ``wikiann``, bound to ``task.language`` (one of ``LANGUAGES``, Rahimi et al.'s codes;
default ``en``) by ``cross_lingual.py``'s zero-shot protocol: trained on English train, its weights
chosen on English dev, the target language's test sentences scored once (held-out split ``test``).
A row is a sentence: ``tokens`` and ``label``, one tag index per word in the hub's order ``TAGS``.
It runs in the ``token_classification`` format (encoders). The metric is the entity-level F1
(main), precision and recall of conlleval / seqeval (``conlleval.py``).

Sources (``tasks/sources.py``):

- ``"dir"``: Rahimi et al.'s files for a language (its ``<lang>.tar.gz`` of ``panx_dataset``
  unpacked) under ``DIR/wikiann/<lang>/``, ``DIR/<lang>/`` or ``DIR`` itself: ``train``, ``dev`` and
  ``test``, one word a line as ``<lang>:<word><TAB><tag>``, a blank line after each sentence, read
  as the hub's former loading script ``wikiann.py`` reads them (the word is what follows the first
  colon; a line without a tag is tagged ``O``).
- ``"hub"``: ``datasets.load_dataset("unimelb-nlp/wikiann", <language>)`` (its ``tokens`` and
  ``ner_tags``; the English config for train and validation, the target's for test).
- ``"embedded"``: real sentences of the English and Spanish files in ``peftbench/tasks/data/wikiann/``
  (one per split), see ``data/README.md``.
"""

from __future__ import annotations

from functools import lru_cache, partial
from pathlib import Path

from peftbench.errors import UserError
from peftbench.tasks.base import Task
from peftbench.tasks.conlleval import tag_scores
from peftbench.tasks.cross_lingual import SOURCE_LANGUAGE, checked_language, transfer_load
from peftbench.tasks.sources import DataSource, read_split_files

TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
HUB_ID = "unimelb-nlp/wikiann"
EMBEDDED = Path(__file__).parent / "data" / "wikiann"
SHIPPED = ("en", "es")
FILES = {"train": "train", "validation": "dev", "test": "test"}
LANGUAGES = (
    "ace", "af", "als", "am", "an", "ang", "ar", "arc", "arz", "as", "ast", "ay", "az", "ba", "bar", "bat-smg", "be",
    "be-x-old", "bg", "bh", "bn", "bo", "br", "bs", "ca", "cbk-zam", "cdo", "ce", "ceb", "ckb", "co", "crh", "cs", "csb",
    "cv", "cy", "da", "de", "diq", "dv", "el", "eml", "en", "eo", "es", "et", "eu", "ext", "fa", "fi", "fiu-vro", "fo",
    "fr", "frr", "fur", "fy", "ga", "gan", "gd", "gl", "gn", "gu", "hak", "he", "hi", "hr", "hsb", "hu", "hy", "ia", "id",
    "ig", "ilo", "io", "is", "it", "ja", "jbo", "jv", "ka", "kk", "km", "kn", "ko", "ksh", "ku", "ky", "la", "lb", "li",
    "lij", "lmo", "ln", "lt", "lv", "map-bms", "mg", "mhr", "mi", "min", "mk", "ml", "mn", "mr", "ms", "mt", "mwl", "my",
    "mzn", "nap", "nds", "ne", "nl", "nn", "no", "nov", "oc", "or", "os", "pa", "pdc", "pl", "pms", "pnb", "ps", "pt",
    "qu", "rm", "ro", "ru", "rw", "sa", "sah", "scn", "sco", "sd", "sh", "si", "simple", "sk", "sl", "so", "sq", "sr",
    "su", "sv", "sw", "szl", "ta", "te", "tg", "th", "tk", "tl", "tr", "tt", "ug", "uk", "ur", "uz", "vec", "vep", "vi",
    "vls", "vo", "wa", "war", "wuu", "xmf", "yi", "yo", "zea", "zh", "zh-classical", "zh-min-nan", "zh-yue",
)  # fmt: skip


def read_sentences(path: Path, language: str) -> list[dict]:
    """The sentences of one split file, in file order (a last sentence without its blank line too)."""
    rows, tokens, tags = [], [], []

    def close() -> None:
        if tokens:
            rows.append({"text": " ".join(tokens), "tokens": list(tokens), "label": list(tags), "language": language})
            tokens.clear()
            tags.clear()

    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line in ("", "\n"):
                close()
                continue
            fields = line.rstrip("\n").split("\t")
            tag = fields[-1] if len(fields) > 1 else "O"
            if tag not in TAGS:
                raise UserError(f"{path}:{number}: tag {tag!r} is not one of {', '.join(TAGS)}; restore the file from the WikiANN release")
            tokens.append(":".join(fields[0].split(":")[1:]))
            tags.append(TAGS.index(tag))
    close()
    return rows


def _read_folder(language: str, folder: Path, splits=None) -> dict[str, list[dict]]:
    return read_split_files(folder, FILES, splits, partial(read_sentences, language=language), f"WikiANN {language}",
                            f"wikiann/{language}/", "restore it from the WikiANN release")


def _hub_splits(language: str, dataset_dict) -> dict[str, list[dict]]:
    splits = {}
    for split, dataset in dataset_dict.items():
        names = tuple(dataset.features["ner_tags"].feature.names)
        if names != TAGS:
            raise ValueError(f"{HUB_ID}/{language} tags are {names}, peftbench expects {TAGS}")
        splits[split] = [
            {"text": " ".join(tokens), "tokens": list(tokens), "label": list(tags), "language": language}
            for tokens, tags in zip(dataset["tokens"], dataset["ner_tags"], strict=True)
        ]
    return splits


def data_source(language: str) -> DataSource:
    return DataSource(
        what=f"WikiANN {language}", benchmark="wikiann", folder=language, files=tuple(FILES.values()),
        hub_id=HUB_ID, hub_config=language,
        read_folder=partial(_read_folder, language), read_hub=partial(_hub_splits, language),
        embedded=EMBEDDED / language if language in SHIPPED else None,
    )  # fmt: skip


@lru_cache(maxsize=None)
def wikiann(language: str = SOURCE_LANGUAGE) -> Task:
    """WikiANN NER trained on English and tested in ``language``."""
    checked_language(language, LANGUAGES, "WikiANN")
    english, target = data_source(SOURCE_LANGUAGE), data_source(language)
    return Task(
        name="wikiann", benchmark="wikiann", label_names=TAGS, train_split="train", eval_splits=("validation",),
        main_metric="f1", score=tag_scores(TAGS), load=transfer_load(english, english if language == SOURCE_LANGUAGE else target),
        has_embedded=language in SHIPPED, metric_names=("f1", "precision", "recall"), kind="token_classification",
        test_splits=("test",), options=(("language", language),), configure=wikiann,
    )  # fmt: skip


TASKS: dict[str, Task] = {"wikiann": wikiann()}
