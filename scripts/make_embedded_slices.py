"""Build the GLUE and SuperGLUE slices embedded in the package (peftbench/tasks/data/glue/ and
peftbench/tasks/data/superglue/) from a GLUE folder in the layout written by download_glue_data.py
(default: ../shared/data/glue) and a folder of the SuperGLUE jsonl files (default:
../shared/data/superglue).

Each slice keeps its source file's header (MRPC's byte-order mark included) and its rows byte for
byte, in file order; only which rows are kept is chosen, by a seeded random sample, so the same
files, sizes and seed give the same slices. Slices:

- SST-2: a sample of train (``--sst2-train-rows``, the demo's training set) and the full dev set
  (872 rows, the demo's evaluation set);
- CoLA, MRPC, STS-B, RTE, WNLI: ``--rows`` train rows and ``--rows`` dev rows (MRPC from train.tsv;
  the msr files are not shipped);
- QNLI: its train set is not in the staged copy, so both slices come from dev.tsv, without overlap;
- MNLI, QQP: none (no copy of the files is staged).

SuperGLUE slices are the first lines of each jsonl file, byte for byte (no header; a line is one
example, a MultiRC line one paragraph with its questions):

- CB, COPA, WiC, WSC: the first ``--superglue-rows`` lines of train.jsonl and of val.jsonl;
- MultiRC: the first ``--multirc-train-paragraphs`` lines of train.jsonl and the first
  ``--multirc-val-paragraphs`` lines of val.jsonl;
- BoolQ: its train set is not in the staged copy, so train.jsonl is the first ``--superglue-rows``
  lines of val.jsonl and val.jsonl the next ``--superglue-rows``, without overlap;
- ReCoRD: none (no copy of the full files is staged).

E2E slices are the header and the first lines of the release's csv files, byte for byte:
``--e2e-train-rows`` (MR, reference) pairs of trainset.csv and every reference of the first
``--e2e-dev-mrs`` MRs of devset.csv and of the first ``--e2e-test-mrs`` MRs of testset_w_refs.csv.

Usage: python scripts/make_embedded_slices.py [--glue DIR] [--out DIR] [--rows 64]
                                              [--sst2-train-rows 4000] [--seed 0]
                                              [--superglue DIR] [--superglue-out DIR]
                                              [--superglue-rows 48] [--multirc-train-paragraphs 3]
                                              [--multirc-val-paragraphs 2] [--e2e DIR] [--e2e-out DIR]
                                              [--e2e-train-rows 400] [--e2e-dev-mrs 25] [--e2e-test-mrs 10]
                                              [--only glue|superglue|e2e]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HEADERLESS_FOLDERS = {"CoLA"}  # CoLA's train.tsv and dev.tsv have no header row
SMALL_FOLDERS = ("CoLA", "MRPC", "STS-B", "RTE", "WNLI")
SUPERGLUE_SMALL_FOLDERS = ("CB", "COPA", "WiC", "WSC")


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


def read_jsonl_lines(path: Path) -> list[bytes]:
    """The non-blank lines of a jsonl file, each ending in a newline."""
    lines = [line for line in path.read_bytes().splitlines(keepends=True) if line.strip()]
    return [line if line.endswith(b"\n") else line + b"\n" for line in lines]


def first_lines(path: Path, start: int, size: int) -> tuple[list[bytes], list[int]]:
    lines = read_jsonl_lines(path)
    if start + size > len(lines):
        raise SystemExit(f"cannot take lines {start + 1}-{start + size} from {path} ({len(lines)} lines)")
    return lines, list(range(start, start + size))


def make_superglue_slices(superglue: Path, out: Path, rows: int, multirc_train: int, multirc_val: int) -> None:
    for folder in SUPERGLUE_SMALL_FOLDERS:
        for file_name in ("train.jsonl", "val.jsonl"):
            write_slice(out / folder / file_name, b"", *first_lines(superglue / folder / file_name, 0, rows))

    for file_name, paragraphs in (("train.jsonl", multirc_train), ("val.jsonl", multirc_val)):
        write_slice(out / "MultiRC" / file_name, b"", *first_lines(superglue / "MultiRC" / file_name, 0, paragraphs))

    write_slice(out / "BoolQ" / "train.jsonl", b"", *first_lines(superglue / "BoolQ" / "val.jsonl", 0, rows))
    write_slice(out / "BoolQ" / "val.jsonl", b"", *first_lines(superglue / "BoolQ" / "val.jsonl", rows, rows))


def make_e2e_slices(e2e: Path, out: Path, train_rows: int, dev_mrs: int, test_mrs: int) -> None:
    import csv

    for file_name, wanted in (("trainset.csv", None), ("devset.csv", dev_mrs), ("testset_w_refs.csv", test_mrs)):
        lines = (e2e / file_name).read_bytes().splitlines(keepends=True)
        header, body = lines[0], lines[1:]
        if wanted is None:
            keep = body[:train_rows]
        else:  # whole MRs: every line up to the first line of MR number wanted + 1
            mrs = [next(csv.reader([line.decode("utf-8")]))[0] for line in body]
            firsts = [i for i, mr in enumerate(mrs) if i == 0 or mr != mrs[i - 1]]
            keep = body[: firsts[wanted]] if len(firsts) > wanted else body
        write_slice(out / file_name, header, keep, list(range(len(keep))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--glue", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "glue",
                        help="GLUE folder holding CoLA/, SST-2/, … (default: ../shared/data/glue)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "peftbench" / "tasks" / "data" / "glue",
                        help="where to write the slices (default: peftbench/tasks/data/glue)")
    parser.add_argument("--rows", type=int, default=64, help="train and dev rows per small task")
    parser.add_argument("--sst2-train-rows", type=int, default=4000, help="rows of the SST-2 train slice")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--superglue", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "superglue",
                        help="SuperGLUE folder holding BoolQ/, CB/, … (default: ../shared/data/superglue)")
    parser.add_argument("--superglue-out", type=Path,
                        default=REPO_ROOT / "peftbench" / "tasks" / "data" / "superglue",
                        help="where to write the SuperGLUE slices (default: peftbench/tasks/data/superglue)")
    parser.add_argument("--superglue-rows", type=int, default=48, help="train and val lines per SuperGLUE task")
    parser.add_argument("--multirc-train-paragraphs", type=int, default=3, help="MultiRC train lines (paragraphs)")
    parser.add_argument("--multirc-val-paragraphs", type=int, default=2, help="MultiRC val lines (paragraphs)")
    parser.add_argument("--e2e", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "e2e",
                        help="the E2E release folder with trainset.csv, devset.csv (default: ../shared/data/e2e)")
    parser.add_argument("--e2e-out", type=Path, default=REPO_ROOT / "peftbench" / "tasks" / "data" / "e2e",
                        help="where to write the E2E slices (default: peftbench/tasks/data/e2e)")
    parser.add_argument("--e2e-train-rows", type=int, default=400, help="E2E train pairs")
    parser.add_argument("--e2e-dev-mrs", type=int, default=25, help="E2E dev MRs, each with all its references")
    parser.add_argument("--e2e-test-mrs", type=int, default=10, help="E2E test MRs, each with all its references")
    parser.add_argument("--only", choices=("glue", "superglue", "e2e"), help="build one benchmark's slices (default: all)")
    args = parser.parse_args()
    if args.only in (None, "glue"):
        make_slices(args.glue, args.out, args.rows, args.sst2_train_rows, args.seed)
    if args.only in (None, "superglue"):
        make_superglue_slices(args.superglue, args.superglue_out, args.superglue_rows,
                              args.multirc_train_paragraphs, args.multirc_val_paragraphs)
    if args.only in (None, "e2e"):
        make_e2e_slices(args.e2e, args.e2e_out, args.e2e_train_rows, args.e2e_dev_mrs, args.e2e_test_mrs)


if __name__ == "__main__":
    main()
