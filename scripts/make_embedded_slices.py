"""Build the GLUE slices embedded in the package (peftbench/tasks/data/glue/) from a GLUE folder
in the layout written by download_glue_data.py (default: ../shared/data/glue).

Each slice keeps its source file's header (MRPC's byte-order mark included) and its rows byte for
byte, in file order; only which rows are kept is chosen, by a seeded random sample, so the same
files, sizes and seed give the same slices. Slices:

- SST-2: a sample of train (``--sst2-train-rows``, the demo's training set) and the full dev set
  (872 rows, the demo's evaluation set);
- CoLA, MRPC, STS-B, RTE, WNLI: ``--rows`` train rows and ``--rows`` dev rows (MRPC from train.tsv;
  the msr files are not shipped);
- QNLI: its train set is not in the staged copy, so both slices come from dev.tsv, without overlap;
- MNLI, QQP: none (no copy of the files is staged).

Usage: python scripts/make_embedded_slices.py [--glue DIR] [--out DIR] [--rows 64]
                                              [--sst2-train-rows 4000] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HEADERLESS_FOLDERS = {"CoLA"}  # CoLA's train.tsv and dev.tsv have no header row
SMALL_FOLDERS = ("CoLA", "MRPC", "STS-B", "RTE", "WNLI")


def read_rows(path: Path) -> tuple[bytes, list[bytes]]:
    """The header line (b"" when the file has none) and the data lines, each ending in a newline."""
    lines = path.read_bytes().splitlines(keepends=True)
    lines = [line if line.endswith(b"\n") else line + b"\n" for line in lines]
    if path.parent.name in HEADERLESS_FOLDERS:
        return b"", lines
    return lines[0], lines[1:]


def sample_indices(total: int, size: int, seed: int) -> list[int]:
    if size > total:
        raise SystemExit(f"cannot take {size} rows from a file of {total}")
    return random.Random(seed).sample(range(total), size)


def write_slice(out: Path, header: bytes, lines: list[bytes], indices: list[int]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(header + b"".join(lines[index] for index in sorted(indices)))
    print(f"{out.relative_to(out.parents[2])}: {len(indices)} rows, {out.stat().st_size:,} bytes")


def make_slices(glue: Path, out: Path, rows: int, sst2_train_rows: int, seed: int) -> None:
    header, lines = read_rows(glue / "SST-2" / "train.tsv")
    write_slice(out / "SST-2" / "train.tsv", header, lines, sample_indices(len(lines), sst2_train_rows, seed))
    header, lines = read_rows(glue / "SST-2" / "dev.tsv")
    write_slice(out / "SST-2" / "dev.tsv", header, lines, list(range(len(lines))))

    for folder in SMALL_FOLDERS:
        for file_name in ("train.tsv", "dev.tsv"):
            header, lines = read_rows(glue / folder / file_name)
            write_slice(out / folder / file_name, header, lines, sample_indices(len(lines), rows, seed))

    header, lines = read_rows(glue / "QNLI" / "dev.tsv")
    indices = sample_indices(len(lines), 2 * rows, seed)
    write_slice(out / "QNLI" / "train.tsv", header, lines, indices[:rows])
    write_slice(out / "QNLI" / "dev.tsv", header, lines, indices[rows:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--glue", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "glue",
                        help="GLUE folder holding CoLA/, SST-2/, … (default: ../shared/data/glue)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "peftbench" / "tasks" / "data" / "glue",
                        help="where to write the slices (default: peftbench/tasks/data/glue)")
    parser.add_argument("--rows", type=int, default=64, help="train and dev rows per small task")
    parser.add_argument("--sst2-train-rows", type=int, default=4000, help="rows of the SST-2 train slice")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make_slices(args.glue, args.out, args.rows, args.sst2_train_rows, args.seed)


if __name__ == "__main__":
    main()
