"""The official WebNLG 2017 and DART scorers' numbers on real systems: the fixture of
tests/test_webnlg_metrics.py.

    .venv/bin/python scripts/reference/webnlg_dart_official.py --dart DART_CHECKOUT \\
        --python SIDE_PYTHON [--out tests/data/webnlg-dart-official/fixture.json] [--jobs 2]

``DART_CHECKOUT`` holds the files of Yale-LILY/dart @bb644b12ec1d0264f96a31145534b9a94f6ff5f5 that
the evaluation needs (``evaluation/``: ``webnlg-automatic-evaluation/{evaluation.py,
benchmark_reader.py, multi-bleu.perl, data-challenge/testdata_with_lex.xml}``, ``multi-bleu.perl``,
``prepare_files.py``, ``tercom-0.7.25/tercom.7.25.jar``, ``dart_reference/``, ``example/``; and
``data/v1.1.1/dart-v1.1.1-full-test.xml``); their git blob ids go into the fixture. ``SIDE_PYTHON``
is a Python 3 with ``natsort`` and ``unidecode`` (what ``evaluation.py`` imports). METEOR is the
``meteor-1.5.jar`` of the ``pycocoevalcap`` installed here (the DART repository does not carry
its jar), run from its folder, where its paraphrase table is. Needs ``perl`` and ``java``.

WebNLG: two gold sets cut from the official test set (``testdata_with_lex.xml``), entries renumbered
``Id1…IdN`` as ``evaluation.py`` requires, each covering the 15 categories and the sizes 1 to 7
(``evaluation.py`` writes files for every category and size and fails on an empty one): ``main``
(seen and unseen entries, 1 to 8 references, non-ASCII texts) and ``few-references`` (seen
entries with at most 2 references, unseen ones with 1, so the reference files number fewer than
three). For each gold set, seven systems: ``bart`` (the BART-large outputs that Yale-LILY/dart
ships as ``evaluation/example/bart-large_webnlg-all.txt``), ``first-reference`` (each entry's
first text, raw), ``truncated`` (bart's first third), ``some-empty`` (bart with every third output
empty), ``reversed`` (bart's words in reverse order), ``doubled`` (bart twice), ``triples`` (the
entry's triples as released). Each is scored exactly as ``run_eval_on_webnlg.sh`` does
(``evaluation.py TEAM``, then the commands of ``bleu_eval_3ref.sh``, ``meteor_eval.sh`` and
``ter_eval.sh``) on the tracks ``all-cat``, ``old-cat`` (seen) and ``new-cat`` (unseen).

DART: 30 test triple sets of ``dart-v1.1.1-full-test.xml`` (one to many texts, every source,
non-ASCII texts), their lines of ``dart_reference/all-delex-reference{0,1,2}.lex``; seven
systems built from already normalised text, since ``run_eval_on_dart.sh`` normalises nothing
(``bart`` from ``example/bart-large_dart.txt``, ``first-reference`` the reference0 line, and the
same variants), scored as ``run_eval_on_dart.sh`` does (multi-bleu, ``prepare_files.py``, METEOR
``-r 8``, tercom).

The fixture keeps the gold texts, the outputs and the lines the scorers printed (BLEU line,
METEOR ``Final score``, TER ``Total TER``), with the provenance.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from argparse import ArgumentParser
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "tests" / "data" / "webnlg-dart-official" / "fixture.json"
DART_COMMIT = "bb644b12ec1d0264f96a31145534b9a94f6ff5f5"
UNSEEN = {"Artist", "Athlete", "CelestialBody", "MeanOfTransportation", "Politician"}
TRACKS = {"all-cat": "all", "old-cat": "seen", "new-cat": "unseen"}
WEBNLG = "evaluation/webnlg-automatic-evaluation"
OFFICIAL_FILES = (
    f"{WEBNLG}/evaluation.py", f"{WEBNLG}/benchmark_reader.py", f"{WEBNLG}/multi-bleu.perl",
    f"{WEBNLG}/bleu_eval_3ref.sh", f"{WEBNLG}/meteor_eval.sh", f"{WEBNLG}/ter_eval.sh",
    f"{WEBNLG}/data-challenge/testdata_with_lex.xml", "evaluation/run_eval_on_webnlg.sh",
    "evaluation/run_eval_on_dart.sh", "evaluation/multi-bleu.perl", "evaluation/prepare_files.py",
    "evaluation/tercom-0.7.25/tercom.7.25.jar", "evaluation/example/bart-large_webnlg-all.txt",
    "evaluation/example/bart-large_dart.txt", "evaluation/dart_reference/all-delex-reference0.lex",
    "evaluation/dart_reference/all-delex-reference1.lex", "evaluation/dart_reference/all-delex-reference2.lex",
    "data/v1.1.1/dart-v1.1.1-full-test.xml",
)  # fmt: skip


def _blob(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _meteor_jar() -> Path:
    return Path(importlib.util.find_spec("pycocoevalcap.meteor.meteor").origin).parent / "meteor-1.5.jar"


def _run(command: list[str], cwd: Path, stdin: Path | None = None) -> str:
    with open(stdin or os.devnull, "rb") as handle:
        done = subprocess.run(command, cwd=cwd, stdin=handle, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed in {cwd}: {done.stderr[-2000:]}")
    return done.stdout


def _printed(bleu: str, meteor: str, ter: str) -> dict:
    """The three lines print_scores*.py reads: multi-bleu's line, METEOR's last, tercom's fourth from last."""
    return {
        "bleu": bleu.strip(),
        "meteor": meteor.strip().splitlines()[-1].split()[-1],
        "ter": ter.strip().splitlines()[-4].strip(),
    }


# --------------------------------------------------------------------------------------------
# WebNLG


def _webnlg_entries(dart: Path) -> list[ET.Element]:
    return list(ET.parse(dart / WEBNLG / "data-challenge" / "testdata_with_lex.xml").getroot().iter("entry"))


def _lexes(entry: ET.Element) -> list[str]:
    return [lex.text or "" for lex in entry.iter("lex")]


def _choose_webnlg(entries: list[ET.Element], name: str) -> list[int]:
    """Indices of a gold set's entries: every category and size, plus the cases named above."""
    rng = random.Random(f"webnlg-{name}")
    if name == "main":
        allowed = list(range(len(entries)))
    else:  # few-references: seen entries with at most 2 texts, unseen ones with 1
        allowed = [i for i, e in enumerate(entries)
                   if len(_lexes(e)) <= (1 if e.attrib["category"] in UNSEEN else 2)]  # fmt: skip
    chosen: set[int] = set()
    for size in range(1, 8):
        chosen.add(rng.choice([i for i in allowed if int(entries[i].attrib["size"]) == size]))
    for category in sorted({entries[i].attrib["category"] for i in allowed}):
        pool = [i for i in allowed if entries[i].attrib["category"] == category]
        chosen.update(rng.sample(pool, 2))
    if name == "main":
        for wanted in (lambda e: len(_lexes(e)) >= 4, lambda e: len(_lexes(e)) == 1,
                       lambda e: any(ord(c) > 127 for text in _lexes(e) for c in text)):  # fmt: skip
            chosen.update(rng.sample([i for i in allowed if wanted(entries[i])], 2))
    return sorted(chosen)


def _systems(base: list[str], first_reference: list[str], triples: list[str]) -> dict[str, list[str]]:
    return {
        "bart": base,
        "first-reference": first_reference,
        "truncated": [" ".join(text.split()[: max(1, len(text.split()) // 3)]) for text in base],
        "some-empty": ["" if i % 3 == 2 else text for i, text in enumerate(base)],
        "reversed": [" ".join(reversed(text.split())) for text in base],
        "doubled": [f"{text} {text}" for text in base],
        "triples": triples,
    }


def _webnlg_gold(dart: Path, name: str) -> tuple[dict, dict[str, list[str]]]:
    entries = _webnlg_entries(dart)
    bart = (dart / "evaluation" / "example" / "bart-large_webnlg-all.txt").read_text(encoding="utf-8").splitlines()
    indices = _choose_webnlg(entries, name)
    gold = {
        "name": name,
        "entries": [{
            "official_id": entries[i].attrib["eid"], "category": entries[i].attrib["category"],
            "size": entries[i].attrib["size"], "texts": _lexes(entries[i]),
            "triples": [t.text for t in entries[i].find("modifiedtripleset")],
        } for i in indices],
    }  # fmt: skip
    systems = _systems([bart[i] for i in indices], [_lexes(entries[i])[0] for i in indices],
                       [" ".join(e["triples"]) for e in gold["entries"]])  # fmt: skip
    return gold, systems


def _write_gold_xml(dart: Path, gold: dict, path: Path) -> None:
    """The gold set as a challenge XML file, its entries renumbered Id1…IdN in order."""
    by_id = {entry.attrib["eid"]: entry for entry in _webnlg_entries(dart)}
    root = ET.Element("benchmark")
    holder = ET.SubElement(root, "entries")
    for number, entry in enumerate(gold["entries"], start=1):
        copy = by_id[entry["official_id"]]
        copy.attrib["eid"] = f"Id{number}"
        holder.append(copy)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _score_webnlg(dart: Path, python: str, gold: dict, system: str, outputs: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"webnlg-{gold['name']}-{system}-") as folder:
        work = Path(folder) / "webnlg-automatic-evaluation"
        for name in ("evaluation.py", "benchmark_reader.py", "multi-bleu.perl"):
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(dart / WEBNLG / name, work / name)
        for sub in ("references", "teams", "submissions", "eval"):
            (work / sub).mkdir()
        _write_gold_xml(dart, gold, work / "data-challenge" / "testdata_with_lex.xml")
        (work / "submissions" / "team.txt").write_text("".join(f"{line}\n" for line in outputs), encoding="utf-8")
        _run([python, "evaluation.py", "team"], work)
        meteor = _meteor_jar()
        tercom = (dart / "evaluation" / "tercom-0.7.25" / "tercom.7.25.jar").resolve()
        scores = {}
        for track, split in TRACKS.items():
            refs = [f"references/gold-{track}-reference{k}.lex" for k in range(3)]
            bleu = _run(["perl", "multi-bleu.perl", "-lc", *refs], work, stdin=work / "teams" / f"team_{track}.txt")
            met = _run(["java", "-Xmx2G", "-jar", meteor.name, str(work / "teams" / f"team_{track}.txt"),
                        str(work / "references" / f"gold-{track}-reference-3ref.meteor"), "-l", "en", "-norm", "-r", "3"],
                       meteor.parent)  # fmt: skip
            ter = _run(["java", "-jar", str(tercom), "-h", str(work / "teams" / f"team_{track}_ter.txt"),
                        "-r", str(work / "references" / f"gold-{track}-reference-3ref.ter")], work)  # fmt: skip
            scores[split] = _printed(bleu, met, ter)
            scores[split]["reference_files"] = sum((work / ref).is_file() for ref in refs)
    print(f"webnlg {gold['name']} {system}: {scores}", flush=True)
    return scores


# --------------------------------------------------------------------------------------------
# DART


def _choose_dart(entries: list[ET.Element]) -> list[int]:
    rng = random.Random("dart")
    chosen: set[int] = set()
    sources = sorted({lex.attrib["comment"] for e in entries for lex in e.iter("lex")})
    for source in sources:
        chosen.update(rng.sample([i for i, e in enumerate(entries) if next(e.iter("lex")).attrib["comment"] == source], 2))
    for fewest, most in ((1, 1), (2, 2), (3, 3), (4, 5), (6, 99)):
        chosen.add(rng.choice([i for i, e in enumerate(entries) if fewest <= len(_lexes(e)) <= most]))
    chosen.update(rng.sample([i for i, e in enumerate(entries) if any(ord(c) > 127 for t in _lexes(e) for c in t)], 3))
    while len(chosen) < 30:
        chosen.add(rng.randrange(len(entries)))
    return sorted(chosen)


def _dart_gold(dart: Path) -> tuple[dict, dict[str, list[str]]]:
    entries = list(ET.parse(dart / "data" / "v1.1.1" / "dart-v1.1.1-full-test.xml").getroot().iter("entry"))
    reference_files = [(dart / "evaluation" / "dart_reference" / f"all-delex-reference{k}.lex").read_text(encoding="utf-8").split("\n")
                       for k in range(3)]  # fmt: skip
    bart = (dart / "evaluation" / "example" / "bart-large_dart.txt").read_text(encoding="utf-8").splitlines()
    indices = _choose_dart(entries)
    gold = {
        "name": "dart",
        "entries": [{
            "official_id": entries[i].attrib["eid"], "line": i + 1, "texts": _lexes(entries[i]),
            "triples": [t.text for t in entries[i].find("modifiedtripleset")],
            "reference_lines": [reference_files[k][i] for k in range(3)],
        } for i in indices],
    }  # fmt: skip
    base = [bart[i] for i in indices]
    systems = _systems(base, [entry["reference_lines"][0] for entry in gold["entries"]], base)
    del systems["triples"]  # DART's script scores outputs as given: only normalised texts here
    return gold, systems


def _score_dart(dart: Path, python: str, gold: dict, system: str, outputs: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"dart-{system}-") as folder:
        work = Path(folder)
        for name in ("multi-bleu.perl", "prepare_files.py"):
            shutil.copy(dart / "evaluation" / name, work / name)
        refs = [work / f"all-delex-reference{k}.lex" for k in range(3)]
        for k, path in enumerate(refs):
            path.write_text("".join(f"{entry['reference_lines'][k]}\n" for entry in gold["entries"]), encoding="utf-8")
        hyp = work / "output.txt"
        hyp.write_text("".join(f"{line}\n" for line in outputs), encoding="utf-8")
        bleu = _run(["perl", "multi-bleu.perl", *map(str, refs)], work, stdin=hyp)
        _run([python, "prepare_files.py", str(hyp), *map(str, refs)], work)
        meteor = _meteor_jar()
        met = _run(["java", "-Xmx2G", "-jar", meteor.name, str(hyp), str(work / "all-notdelex-refs-meteor.txt"),
                    "-l", "en", "-norm", "-r", "8"], meteor.parent)  # fmt: skip
        tercom = (dart / "evaluation" / "tercom-0.7.25" / "tercom.7.25.jar").resolve()
        ter = _run(["java", "-jar", str(tercom), "-h", str(work / "relexicalised_predictions-ter.txt"),
                    "-r", str(work / "all-notdelex-refs-ter.txt")], work)  # fmt: skip
        scores = _printed(bleu, met, ter)
    print(f"dart {system}: {scores}", flush=True)
    return scores


# --------------------------------------------------------------------------------------------


def _version(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    return (done.stdout + done.stderr).strip().splitlines()[0]


def _provenance(dart: Path, python: str) -> dict:
    return {
        "generator": "scripts/reference/webnlg_dart_official.py",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "scorers": f"Yale-LILY/dart @{DART_COMMIT} evaluation/ (run_eval_on_webnlg.sh, run_eval_on_dart.sh)",
        "git_blobs": {name: _blob(dart / name) for name in OFFICIAL_FILES},
        "meteor_jar": f"meteor-1.5.jar of pycocoevalcap {importlib.metadata.version('pycocoevalcap')}, "
                      f"git blob {_blob(_meteor_jar())}",
        "perl": _version(["perl", "-e", "print $^V"]),
        "java": _version(["java", "-version"]),
        "side_python": _version([python, "-c", "import sys, natsort, unidecode, importlib.metadata as m; "
                                 "print(sys.version.split()[0], 'natsort', natsort.__version__, 'Unidecode', m.version('Unidecode'))"]),  # fmt: skip
    }


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dart", type=Path, required=True, help="a Yale-LILY/dart checkout (see above)")
    parser.add_argument("--python", default=sys.executable, help="a Python with natsort and unidecode")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    dart = args.dart.resolve()
    jobs = []
    fixture = {"provenance": _provenance(dart, args.python), "webnlg": [], "dart": None}
    for name in ("main", "few-references"):
        gold, systems = _webnlg_gold(dart, name)
        entry = {"gold": gold, "systems": [{"name": s, "outputs": o} for s, o in systems.items()]}
        fixture["webnlg"].append(entry)
        jobs += [(s, lambda g=gold, n=s["name"], o=s["outputs"]: _score_webnlg(dart, args.python, g, n, o)) for s in entry["systems"]]
    gold, systems = _dart_gold(dart)
    fixture["dart"] = {"gold": gold, "systems": [{"name": s, "outputs": o} for s, o in systems.items()]}
    jobs += [(s, lambda n=s["name"], o=s["outputs"]: _score_dart(dart, args.python, gold, n, o)) for s in fixture["dart"]["systems"]]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for (system, _), official in zip(jobs, pool.map(lambda job: job[1](), jobs)):
            system["official"] = official
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(jobs)} systems' official scores to {args.out}")


if __name__ == "__main__":
    main()
