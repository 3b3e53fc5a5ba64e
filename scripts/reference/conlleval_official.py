"""The CoNLL shared tasks' official scorer, ``conlleval.pl``, on CoNLL-2003 tags, as a stored fixture.

    python scripts/reference/conlleval_official.py --conlleval PATH/conlleval.pl --out tests/data/conll2003-conlleval

PATH/conlleval.pl is the scorer of the CoNLL-2000/2003 shared tasks (Erik Tjong Kim Sang, version
2004-01-26; checked with the copy at aulfster/CMPT-419@78226fe904d894955f73687c179152369262a7bf,
``evaluation/conlleval.pl``, blob e2f0eafa8721, md5 d5ad109a60ae6cee68f942aa1401ab36). It needs perl.

Writes ``input.txt``, the scorer's input (``word gold guess`` per line, a blank line after each
sentence): the words and gold tags (IOB1, as released) of the embedded ``eng.testb`` slice
(``peftbench/tasks/data/conll2003/``), and guessed tags made here from the gold ones: each word's tag
kept, or with probability 0.3 replaced by one drawn from the IOB1 and IOB2 tags (``random.Random(0)``),
so that the guesses mix both schemes and ill-formed starts. Then ``output.txt``: what
``perl conlleval.pl < input.txt`` prints. The tests score ``input.txt`` with peftbench's
``conlleval.py`` (the gold tags as the conll2003 task reads them, in IOB2) and compare with the
counts and percentages of ``output.txt``; with ``CONLLEVAL_PL`` naming the script, with a fresh run.
"""

from __future__ import annotations

import random
import subprocess
from argparse import ArgumentParser
from pathlib import Path

SLICE = Path(__file__).resolve().parents[2] / "peftbench" / "tasks" / "data" / "conll2003" / "eng.testb"
GUESSES = ("O", "I-PER", "B-PER", "I-ORG", "B-ORG", "I-LOC", "B-LOC", "I-MISC", "B-MISC")


def scorer_input() -> str:
    """``word gold guess`` lines of the slice's sentences (documents' marker lines left out)."""
    generator = random.Random(0)
    lines = []
    for line in SLICE.read_text(encoding="utf-8").splitlines():
        fields = line.split(" ")
        if not line.strip():
            if lines and lines[-1]:
                lines.append("")
            continue
        if fields[0] == "-DOCSTART-":
            continue
        guess = fields[3] if generator.random() >= 0.3 else generator.choice(GUESSES)
        lines.append(f"{fields[0]} {fields[3]} {guess}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conlleval", required=True, help="the official conlleval.pl")
    parser.add_argument("--out", required=True, help="folder for input.txt and output.txt")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = scorer_input()
    (out / "input.txt").write_text(text, encoding="utf-8")
    done = subprocess.run(["perl", args.conlleval], input=text, capture_output=True, text=True, check=True)
    (out / "output.txt").write_text(done.stdout, encoding="utf-8")
    print(done.stdout)


if __name__ == "__main__":
    main()
