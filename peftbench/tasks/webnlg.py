"""WebNLG Challenge 2017 (Gardent, Shimorina, Narayan and Perez-Beltrachini, 2017, "The WebNLG
Challenge: Generating Text from RDF Data"): sets of 1 to 7 DBpedia triples to text, 6,940
training inputs with 18,102 texts, 872 dev inputs, 1,862 test inputs; the training categories
(Airport, Astronaut, Building, City, ComicsCharacter, Food, Monument, SportsTeam, University,
WrittenWork) are the *seen* ones, and 891 test inputs come from five *unseen* categories
(Artist, Athlete, CelestialBody, MeanOfTransportation, Politician). Prefix-tuning (Li and Liang,
2021, Table 2 of the ACL version) reports BLEU, METEOR and TER on the seen, unseen and all test
inputs, as the challenge's scripts compute them (``tasks/webnlg_metrics.py``).

Splits: ``train``, ``validation`` (the dev set), ``test`` (all 1,862 inputs), and ``test_seen`` /
``test_unseen``, its inputs of the seen and of the unseen categories, as the challenge's
``evaluation.py`` splits them (``old_categories`` / ``new_categories``, by each entry's category).
Runs choose their weights on validation and score the three test splits once with them.

A row is one (input, text) pair: ``text`` the triples linearised as prefix-tuning's code does,
``label`` the text, ``group`` the input (``{size}triples/{category}/{eid}``, the XML file and the
entry's id in it), so that an input's texts are scored together as its references, in the
release's order. Training rows are the texts the release marks ``good`` (18,025 of 18,102), as
prefix-tuning trains (``LineByLineWebNLGTextDataset``); dev and test rows are all of them, as it
decodes (``read_webnlg_files``) and as the challenge scores.

**Input** (XiangLi1999/PrefixTuning, ``transformers/src/transformers/data/datasets/
language_modeling.py``, ``LineByLineWebNLGTextDataset``): every triple of the entry's
``modifiedtripleset`` as ``" | " + subject + " : " + property + " : " + object``, the strings as
released (underscores, quotes, camelCase properties kept), concatenated; the model reads
``" " + triples + " <|endoftext|>"`` (GPT-2's BOS token, prefix-tuning's separator; a tokenizer
without it reads it as text) and writes the text. prefix-tuning decodes with the same string
except for the first entry of the file, whose leading ``" | "`` its decoding loop drops
(``run_generation.py``, ``read_webnlg_files``: ``if i > 0``, ``i`` the entry's index); that slip
is not reproduced. Prefix-tuning writes ``Error`` for an empty output before scoring; here an
empty output is scored as empty.

Sources (``tasks/sources.py``): ``"dir"`` prefix-tuning's ``data/webnlg_challenge_2017/``:
``train.json``, ``dev.json``, ``test.json``, the challenge XML converted by the WebNLG
corpus-reader (``{"entries": [{"1": {"category", "size", "xml_id", "modifiedtripleset",
"lexicalisations", …}}, …]}``), under ``DIR/webnlg_challenge_2017/`` or in the folder itself (a
missing ``test.json`` is allowed); ``"hub"`` ``datasets.load_dataset("webnlg-challenge/web_nlg",
"webnlg_challenge_2017", revision="refs/convert/parquet")``: the repository's main branch holds a
loading script, which ``datasets`` 4 and later refuse, and the hub's parquet export of it is the
same rows (as WikiSQL's); ``"embedded"`` slices of the three files in
``peftbench/tasks/data/webnlg`` (``peftbench/tasks/data/README.md``).
"""

from __future__ import annotations

from pathlib import Path

from peftbench.errors import UserError
from peftbench.tasks.base import generation_task, references_by_input
from peftbench.tasks.sources import FIX, DataSource, read_json, wanted

HUB_DATASET, HUB_CONFIG = "webnlg-challenge/web_nlg", "webnlg_challenge_2017"
HUB_REVISION = "refs/convert/parquet"  # the parquet export of the script repository
EMBEDDED = Path(__file__).parent / "data" / "webnlg"
FILES = (("train", "train.json"), ("validation", "dev.json"), ("test", "test.json"))
# evaluation.py's new_categories; the other ten (its old_categories) are the training categories
UNSEEN = frozenset({"Artist", "Athlete", "CelestialBody", "MeanOfTransportation", "Politician"})
TEST_SPLITS = ("test_seen", "test_unseen", "test")
_HALVES = {"test_seen": False, "test_unseen": True}  # split → whether it holds the unseen categories


def linearise(triples: list[tuple[str, str, str]]) -> str:
    """``" | s : p : o"`` for each triple, concatenated (``LineByLineWebNLGTextDataset``)."""
    return "".join(f" | {subject} : {relation} : {obj}" for subject, relation, obj in triples)


def prompt(row: dict) -> str:
    return f" {row['text']} <|endoftext|>"


def _read_folder(folder: Path, wanted_splits=None) -> dict[str, list[dict]]:
    splits = {}
    for split, name in FILES:
        asked = [s for s in ((split,) if split != "test" else TEST_SPLITS) if wanted(s, wanted_splits)]
        if not asked:
            continue
        path = folder / name
        if not path.is_file():
            if split == "test":
                continue
            raise UserError(f"missing {path} (WebNLG 2017 {split}); {FIX} to prefix-tuning's data/webnlg_challenge_2017")
        entries = _read_file(path)
        splits.update(_splits(split, entries, asked))
    return splits


def _read_file(path: Path) -> list[dict]:
    """The corpus-reader's entries, each a (category, size, eid, triples, lexicalisations) dict."""
    data = read_json(path, "restore it from the WebNLG release")
    items = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise UserError(f'{path} holds no "entries" list; give the WebNLG corpus-reader\'s JSON (prefix-tuning\'s data)')
    entries = []
    for number, item in enumerate(items, start=1):
        entry = next(iter(item.values()), None) if isinstance(item, dict) and len(item) == 1 else None
        missing = [key for key in ("category", "size", "xml_id", "modifiedtripleset", "lexicalisations")
                   if not isinstance(entry, dict) or key not in entry]  # fmt: skip
        if missing:
            raise UserError(f"{path}: entry {number} has no {', '.join(missing)}; restore the file from the WebNLG release")
        try:
            entries.append({
                "category": entry["category"], "size": str(entry["size"]), "eid": entry["xml_id"],
                "triples": [(t["subject"], t["property"], t["object"]) for t in entry["modifiedtripleset"]],
                "lexicalisations": [(lex["lex"], lex["comment"]) for lex in entry["lexicalisations"]],
            })  # fmt: skip
        except (KeyError, TypeError) as error:
            raise UserError(
                f"{path}: entry {number} has a triple or text without {error}; restore the file from the WebNLG release"
            ) from None
    return entries


def _splits(split: str, entries: list[dict], asked: list[str]) -> dict[str, list[dict]]:
    """The rows of a file's split; the test file also gives its seen and unseen halves."""
    return {
        name: [row for entry in entries if name not in _HALVES or (entry["category"] in UNSEEN) == _HALVES[name]
               for row in _rows(entry, split == "train")]
        for name in asked
    }  # fmt: skip


def _rows(entry: dict, training: bool) -> list[dict]:
    text = linearise(entry["triples"])
    group = f"{entry['size']}triples/{entry['category']}/{entry['eid']}"
    return [{"text": text, "label": lex, "group": group}
            for lex, comment in entry["lexicalisations"] if not training or comment == "good"]  # fmt: skip


def _hub_splits(dataset_dict) -> dict[str, list[dict]]:
    """The hub's ``train``/``dev``/``test`` (triples as ``"s | p | o"`` strings, texts in ``lex``)."""
    splits = {}
    for hub_split, split in (("train", "train"), ("dev", "validation"), ("test", "test")):
        if hub_split not in dataset_dict:
            continue
        entries = [{
            "category": example["category"], "size": str(example["size"]), "eid": example["eid"],
            "triples": [tuple(triple.split(" | ")) for triple in example["modified_triple_sets"]["mtriple_set"][0]],
            "lexicalisations": list(zip(example["lex"]["text"], example["lex"]["comment"])),
        } for example in dataset_dict[hub_split]]  # fmt: skip
        splits.update(_splits(split, entries, list(TEST_SPLITS) if split == "test" else [split]))
    return splits


def score(predictions: list[str], rows: list[dict]) -> dict[str, float]:
    """The challenge's BLEU, METEOR and TER over inputs: one output per input against its texts."""
    from peftbench.tasks.webnlg_metrics import webnlg_scores

    return webnlg_scores(*references_by_input(predictions, rows))


SOURCE = DataSource(
    what="WebNLG 2017", benchmark="webnlg_challenge_2017", folder=None, files=tuple(name for _, name in FILES),
    hub_id=HUB_DATASET, hub_config=HUB_CONFIG, hub_revision=HUB_REVISION, read_folder=_read_folder, read_hub=_hub_splits, embedded=EMBEDDED,
)  # fmt: skip
TASKS = {"webnlg": generation_task("webnlg", "webnlg", SOURCE, score, prompt, ("bleu", "meteor", "ter"), TEST_SPLITS)}
