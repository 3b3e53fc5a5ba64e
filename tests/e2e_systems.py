"""Generated E2E systems (references and outputs) to compare peftbench's E2E metrics with the
official scorer on: every system is a pure function of its seed, so a fixture stores seeds and the
official scores, never the texts. ``official_scores`` runs the official scorer on a system's files
(``../shared/tools/e2e-metrics/score.sh``: ``measure_scores.py`` of tuetschek/e2e-metrics).

The texts are written by this generator, not taken from the E2E data: restaurant descriptions
built from meaning representations in the style of the E2E release (``name[…], eatType[…], …``),
so that outputs overlap their references the way real systems' do. Each seed draws a profile
that stresses what the example inputs of the scorer do not: many MRs, unequal reference counts
per MR (1 to 16, sometimes one MR with many more than the rest), duplicate outputs, empty
outputs, one-word and very long outputs, punctuation, case, numbers (``3.5``, ``£20-25``, ``0``),
SGML entities, non-ASCII letters and symbols, Unicode spaces and line separators, and the
scorer's three input layouts (text files, csv and tsv tables with MR columns, in which the outputs
may come in another order than the references).

Inputs that make the official scorer itself fail are not generated: a line separator inside an
output or a table cell (it splits the line), an empty last cell of a tsv row (the line is stripped
first), ``|||`` (METEOR's field separator) and ``<seg``/``</seg>`` (mteval's markup).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import random
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The official scorer's wrapper: it installs what measure_scores.py needs on its first run
# (Debian's libxml-twig-perl, a private venv under $E2E_OFFICIAL_HOME), then scores.
_SHARED = Path(__file__).resolve().parents[2] / "shared"
SCORER = Path(os.environ.get("PEFTBENCH_E2E_SCORER", _SHARED / "tools" / "e2e-metrics" / "score.sh"))
_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
SCORER_HOME = Path(os.environ.get("E2E_OFFICIAL_HOME", _CACHE / "e2e-metrics-official"))
METRICS = ("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr")

NAMES = ("The Copper Kettle", "Blue Heron", "Zizzi's", "Le Petit Café", "Golden Palace", "Wildwood",
         "The Rice Boat", "Brasserie Noël", "Twenty Two", "Ørsted Grill", "The 0 Club", "Müller & Sons")  # fmt: skip
FOODS = ("English", "Italian", "French", "Chinese", "Indian", "Japanese", "fast food", "Thai")
AREAS = ("city centre", "riverside")
PRICES = ("cheap", "moderate", "high", "less than £20", "£20-25", "more than £30", "€15–20")
RATINGS = ("low", "average", "high", "1 out of 5", "3 out of 5", "5 out of 5", "3.5 stars", "0 stars")
EAT_TYPES = ("restaurant", "pub", "coffee shop")
NEAR = ("Café Sicilia", "The Bakers", "Raja Indian Cuisine", "Crowne Plaza Hotel", "All Bar One", "東京 Sushi")

# Phrases per attribute; {} is the value.
PHRASES = {
    "eatType": ("is a {}", "is a family-run {}", ", a {},", "{}"),
    "food": ("serves {} food", "offers {} cuisine", "that serves {} dishes", "with {} food", "{} food"),
    "priceRange": ("with prices {}", "in the {} price range", "costs {}", "has a {} price range", "price: {}"),
    "customer rating": ("rated {}", "has a customer rating of {}", "with a {} rating", "(rating {})"),
    "area": ("in the {}", "located in the {} area", "by the {}", "area - {}"),
    "familyFriendly": ("is {}family friendly", "{}kid-friendly", "and is {}child friendly"),
    "near": ("near {}", "close to {}", "not far from {}", "next to {}"),
}
FILLERS = ("and", "It", "also", "which", "There", "is", ";", ",", "-", "but", "The", "restaurant",
           "you", "can", "find", "it", "!", "?", ":", "&amp;", "&quot;good&quot;", "(", ")", "'s",
           "don't", "20,000", "3.5", "10:30", "e-mail", "U.S.A.", "naïve", "ÉTÉ", "straße", "İstanbul",
           "☕", "🍕", "—", "…", "“nice”", "0", "0 0", "<skipped>", "x/y", "#1", "$5", "@home",
           "a\x1fb")  # fmt: skip
# Unicode spaces Perl's \s and Python's str.split both take as spaces, and one (U+001F) only Python does.
SPACES = (" ", " ", " ", "  ", "\t", "\u00a0", "\u3000", "\u2009")
# Line separators that split a line where measure_scores.py reads the file (str.splitlines).
LINE_SEPARATORS = ("\u2028", "\x85", "\x0c", "\x1d")


@dataclass(frozen=True)
class System:
    """One generated system: its references per MR, its outputs and the files that hold them."""

    seed: int
    mrs: list[str]
    references: list[list[str]]
    outputs: list[str]
    layout: str  # "text", "text-single", "csv", "tsv", "csv-refs" (references csv, outputs text)
    output_order: list[int]  # the MR index of each output row in a table layout

    def files(self) -> dict[str, bytes]:
        """The two files the scorer reads, by name: ``refs.*`` and ``outputs.*``."""
        if self.layout in ("text", "text-single"):
            separator = "\n" if self.layout == "text-single" else "\n\n"
            refs = separator.join("\n".join(instance) for instance in self.references) + "\n"
            return {"refs.txt": refs.encode(), "outputs.txt": _lines(self.outputs)}
        suffix, delimiter = (".tsv", "\t") if self.layout == "tsv" else (".csv", ",")
        reference_rows = [(mr, ref) for mr, instance in zip(self.mrs, self.references) for ref in instance]
        files = {f"refs{suffix}": _table(("mr", "ref"), reference_rows, delimiter)}
        if self.layout == "csv-refs":
            files["outputs.txt"] = _lines(self.outputs)
        else:
            output_rows = [(self.mrs[i], self.outputs[i]) for i in self.output_order]
            files[f"outputs{suffix}"] = _table(("MR", "output"), output_rows, delimiter)
        return files

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Writes the files into ``folder``; returns (references, outputs)."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, content in self.files().items():
            (folder / name).write_bytes(content)
            paths.append(folder / name)
        return paths[0], paths[1]

    def digest(self) -> str:
        """sha256 over the files' names and bytes: a regenerated system is the one that was scored."""
        digest = hashlib.sha256()
        for name, content in sorted(self.files().items()):
            digest.update(name.encode() + b"\0" + content + b"\0")
        return digest.hexdigest()


def _lines(texts: list[str]) -> bytes:
    return "".join(text + "\n" for text in texts).encode()


def _table(header: tuple[str, str], rows: list[tuple[str, str]], delimiter: str) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def generate(seed: int) -> System:
    """The system of ``seed``: a random profile, then MRs, references and outputs drawn under it."""
    rng = random.Random(seed)
    layout = rng.choice(("text", "text", "text", "text-single", "csv", "tsv", "csv-refs"))
    n_mrs = rng.choice((12, 12, 40, 40, 90, 160, 547)) if layout != "text-single" else rng.choice((30, 120))
    profile = {
        "max_refs": 1 if layout == "text-single" else rng.choice((2, 5, 12, 16)),
        "skewed_refs": rng.random() < 0.4,  # one MR gets far more references than the rest
        "copy": rng.random() * 0.6,  # outputs that copy one of their references
        # (a tsv line is stripped before it is split, so an empty last cell would lose its column)
        "empty": 0.0 if layout == "tsv" else rng.choice((0.0, 0.0, 0.05, 0.3)),
        "duplicate": rng.choice((0.0, 0.0, 0.05, 0.3, 1.0)),  # outputs that are one fixed sentence
        "one_word": rng.choice((0.0, 0.05, 0.3)),
        "long": rng.choice((0.0, 0.05, 0.2)),
        "upper": rng.choice((0.0, 0.1, 0.5)),
        "noise": rng.choice((0.0, 0.1, 0.4)),  # punctuation, symbols, entities, Unicode
        "line_separators": layout == "text" and rng.random() < 0.5,
        "table_shuffle": layout in ("csv", "tsv") and rng.random() < 0.7,
        "empty_table_refs": layout in ("csv", "csv-refs") and rng.random() < 0.3,
        "repeated_mrs": layout in ("csv", "tsv", "csv-refs") and rng.random() < 0.5,
    }
    mrs = _unique_mrs(rng, n_mrs)
    if profile["repeated_mrs"]:  # an MR again, not next to itself (that would be one instance)
        for _ in range(rng.randint(1, 3)):
            mr, at = mrs[rng.randrange(n_mrs // 2)], rng.randrange(2, len(mrs))
            if mr not in (mrs[at - 1], mrs[at]):
                mrs.insert(at, mr)
        n_mrs = len(mrs)
    references = [_references(rng, mr, profile) for mr in mrs]
    if profile["skewed_refs"] and layout != "text-single":
        many = rng.randrange(n_mrs)
        references[many].extend(_realise(rng, mrs[many], profile) for _ in range(rng.randint(10, 30)))
    fixed = _realise(rng, rng.choice(mrs), profile)
    outputs = [_output(rng, mr, instance, fixed, profile) for mr, instance in zip(mrs, references)]
    order = list(range(n_mrs))
    if profile["table_shuffle"]:
        rng.shuffle(order)
    return System(seed, [_format_mr(mr) for mr in mrs], references, outputs, layout, order)


def _unique_mrs(rng: random.Random, count: int) -> list[dict]:
    mrs, seen = [], set()
    while len(mrs) < count:
        mr = {"name": rng.choice(NAMES)}
        for attribute, values in (("eatType", EAT_TYPES), ("food", FOODS), ("priceRange", PRICES),
                                  ("customer rating", RATINGS), ("area", AREAS),
                                  ("familyFriendly", ("yes", "no")), ("near", NEAR)):  # fmt: skip
            if rng.random() < 0.6:
                mr[attribute] = rng.choice(values)
        key = _format_mr(mr)
        if key not in seen:
            seen.add(key)
            mrs.append(mr)
    return mrs


def _format_mr(mr: dict) -> str:
    return ", ".join(f"{attribute}[{value}]" for attribute, value in mr.items())


def _references(rng: random.Random, mr: dict, profile: dict) -> list[str]:
    count = rng.randint(1, profile["max_refs"])
    references = [_realise(rng, mr, profile) for _ in range(count)]
    if profile["line_separators"]:
        references = [_split_inside(rng, reference) if rng.random() < 0.05 else reference for reference in references]
    if profile["empty_table_refs"] and rng.random() < 0.1:
        references.insert(rng.randrange(len(references) + 1), "")
    return references


def _split_inside(rng: random.Random, text: str) -> str:
    """A line separator between two words (never at an end, which would make an empty line)."""
    words = text.split(" ")
    if len(words) < 2:
        return text
    cut = rng.randrange(1, len(words))
    return " ".join(words[:cut]) + rng.choice(LINE_SEPARATORS) + " ".join(words[cut:])


def _realise(rng: random.Random, mr: dict, profile: dict) -> str:
    """One sentence (or two) saying the MR's attributes in a random order and wording."""
    clauses = []
    for attribute, value in mr.items():
        if attribute == "name":
            continue
        if attribute == "familyFriendly":
            value = "" if value == "yes" else rng.choice(("not ", "non-"))
        clauses.append(rng.choice(PHRASES[attribute]).format(value))
    rng.shuffle(clauses)
    words = [rng.choice(("", "The", "At")), mr["name"]] + [
        part for clause in clauses for part in (clause, rng.choice(("", ",", "and", ".", "")))
    ]
    if rng.random() < profile["noise"]:
        for _ in range(rng.randint(1, 4)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(FILLERS))
    text = " ".join(word for word in words if word) + rng.choice((".", ".", "!", "", " ."))
    if rng.random() < profile["noise"]:
        text = rng.choice(SPACES).join(text.split(" "))
    return text.strip()


def _output(rng: random.Random, mr: dict, references: list[str], fixed: str, profile: dict) -> str:
    draw = rng.random()
    for kind in ("empty", "duplicate", "one_word", "long", "copy"):
        if draw < profile[kind]:
            break
        draw -= profile[kind]
    else:
        kind = "new"
    usable = [reference for reference in references if reference and not any(s in reference for s in LINE_SEPARATORS)]
    if kind == "empty":
        return ""
    if kind == "duplicate":
        return fixed
    if kind == "one_word":
        return rng.choice((mr["name"].split(" ")[-1], "restaurant", ".", "0", "£20", "ÉTÉ"))
    if kind == "long":
        return " ".join(_realise(rng, mr, profile) for _ in range(rng.randint(3, 6)))
    text = rng.choice(usable) if kind == "copy" and usable else _realise(rng, mr, profile)
    if rng.random() < profile["upper"]:
        text = rng.choice((text.upper(), text.lower(), text.title()))
    return text


def official_scorer_missing() -> str | None:
    """Why the official scorer cannot run here without installing anything; None when it can."""
    if not SCORER.is_file():
        return f"the official E2E scorer {SCORER} is not here (set PEFTBENCH_E2E_SCORER)"
    if not (SCORER_HOME / ".ready").is_file():
        return f"the official E2E scorer is not set up in {SCORER_HOME}: run `make reference-e2e` once"
    for program, check in (("java", ["java", "-version"]), ("perl", ["perl", "-MXML::Twig", "-e", "1"])):
        if shutil.which(program) is None or subprocess.run(check, capture_output=True).returncode:
            return f"the official E2E scorer needs {' '.join(check[:2])} (METEOR; mteval's XML::Twig)"
    return None


def official_scores(references: Path, outputs: Path) -> dict[str, float]:
    """The five scores ``score.sh REFERENCES OUTPUTS`` prints (4 decimals, as measure_scores.py)."""
    done = subprocess.run([str(SCORER), str(references), str(outputs)], capture_output=True, text=True)
    scores = dict(re.findall(r"^(\w+): ([0-9.]+)$", done.stdout, re.M))
    if done.returncode or set(scores) != set(METRICS):
        raise RuntimeError(f"{SCORER} {references} {outputs} failed ({done.returncode}): {done.stdout}{done.stderr}")
    return {metric: float(scores[metric]) for metric in METRICS}

