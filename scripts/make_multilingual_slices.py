"""Build the embedded slices of the cross-lingual tasks (peftbench/tasks/data/{xnli,wikiann,mlm}/)
from the real-data samples ("dummy data") that huggingface/datasets kept beside its loading scripts,
read from a git checkout or mirror of that repository at ``--commit`` (default: the last commit
before the scripts left it, 421ca2593bdbdf93784f50218e0db07f65316325).

- ``xnli/``: ``XNLI-1.0/xnli.dev.tsv``, ``XNLI-1.0/xnli.test.tsv`` and
  ``XNLI-MT-1.0/multinli/multinli.train.en.tsv`` of ``datasets/xnli/dummy/en/1.1.0/dummy_data.zip``,
  byte for byte (release layout; one pair in each of the 15 languages for dev and test, 4 English
  training pairs).
- ``wikiann/<lang>/``: ``train``, ``dev`` and ``test`` of
  ``datasets/wikiann/dummy/<lang>/1.1.0/dummy_data.zip`` (Rahimi et al.'s files), byte for byte,
  for English and Spanish.
- ``mlm/<lang>/``: Wikipedia text of Wikicorpus 1.0 (Reese et al. 2010) from
  ``datasets/wikicorpus/dummy/raw_<lang>/0.0.0/dummy_data.zip``: the file's lines decoded from
  ISO-8859-1, without their CRLF, the article markup (``<doc …>``, ``</doc>``, ``ENDOFARTICLE.``)
  and blank lines dropped; ``train.txt`` holds the first lines up to ``--train-bytes`` (UTF-8),
  ``validation.txt`` the lines after them up to ``--validation-bytes``, one line each.

Usage: python scripts/make_multilingual_slices.py --datasets-git /path/to/huggingface/datasets
                                                 [--commit SHA] [--out DIR]
                                                 [--train-bytes 6000] [--validation-bytes 2000]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMIT = "421ca2593bdbdf93784f50218e0db07f65316325"
WIKIANN_LANGUAGES = ("en", "es")
WIKICORPUS = {"en": "dummy_data/raw.en.tgz/englishText_0_10000", "es": "dummy_data/raw.es.tgz/spanishText_15000_20000"}
MARKUP = ("<doc ", "</doc>", "ENDOFARTICLE.")


def archive(git_dir: Path, commit: str, path: str) -> zipfile.ZipFile:
    """The zip file ``path`` of the repository at ``commit``."""
    blob = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"], check=True, capture_output=True)
    return zipfile.ZipFile(io.BytesIO(blob.stdout))


def copy_members(zipped: zipfile.ZipFile, members: dict[str, str], out: Path) -> None:
    """Each member's bytes, unchanged, to ``out / target``."""
    for member, target in members.items():
        path = out / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(zipped.read(member))


def text_lines(raw: bytes) -> list[str]:
    """A Wikicorpus raw file's lines of text: ISO-8859-1, markup and blank lines dropped."""
    lines = raw.decode("iso-8859-1").splitlines()
    return [line for line in lines if line.strip() and not line.startswith(MARKUP)]


def first_lines(lines: list[str], budget: int) -> tuple[list[str], list[str]]:
    """The leading lines whose UTF-8 sizes (with newlines) fit in ``budget`` bytes, and the rest."""
    used = 0
    for index, line in enumerate(lines):
        used += len(line.encode("utf-8")) + 1
        if used > budget:
            return lines[:index], lines[index:]
    return lines, []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets-git", type=Path, required=True, help="git directory of huggingface/datasets")
    parser.add_argument("--commit", default=COMMIT)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "peftbench" / "tasks" / "data")
    parser.add_argument("--train-bytes", type=int, default=6000)
    parser.add_argument("--validation-bytes", type=int, default=2000)
    args = parser.parse_args()

    xnli = archive(args.datasets_git, args.commit, "datasets/xnli/dummy/en/1.1.0/dummy_data.zip")
    copy_members(xnli, {
        "dummy_data/XNLI-1.0.zip/XNLI-1.0/xnli.dev.tsv": "XNLI-1.0/xnli.dev.tsv",
        "dummy_data/XNLI-1.0.zip/XNLI-1.0/xnli.test.tsv": "XNLI-1.0/xnli.test.tsv",
        "dummy_data/XNLI-MT-1.0.zip/XNLI-MT-1.0/multinli/multinli.train.en.tsv": "XNLI-MT-1.0/multinli/multinli.train.en.tsv",
    }, args.out / "xnli")  # fmt: skip
    for language in WIKIANN_LANGUAGES:
        wikiann = archive(args.datasets_git, args.commit, f"datasets/wikiann/dummy/{language}/1.1.0/dummy_data.zip")
        copy_members(wikiann, {f"dummy_data/{language}.tar.gz/{name}": name for name in ("train", "dev", "test")},
                     args.out / "wikiann" / language)  # fmt: skip
    for language, member in WIKICORPUS.items():
        corpus = archive(args.datasets_git, args.commit, f"datasets/wikicorpus/dummy/raw_{language}/0.0.0/dummy_data.zip")
        train, rest = first_lines(text_lines(corpus.read(member)), args.train_bytes)
        validation, _ = first_lines(rest, args.validation_bytes)
        folder = args.out / "mlm" / language
        folder.mkdir(parents=True, exist_ok=True)
        for name, lines in (("train.txt", train), ("validation.txt", validation)):
            (folder / name).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


if __name__ == "__main__":
    main()
