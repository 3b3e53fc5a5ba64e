"""The official E2E scorer's numbers on generated systems: the fixture of tests/test_e2e_metrics.py.

    make reference-e2e
    .venv/bin/python scripts/reference/e2e_official.py [--seeds 0-23] [--jobs 2] [--out FILE]

For each seed, ``tests/e2e_systems.py`` generates a system (references and outputs of many MRs,
unequal reference counts, duplicate, empty, one-word and long outputs, punctuation, case,
Unicode, text and csv/tsv layouts); this script writes its two files into a temporary folder,
runs the official scorer on them (``../shared/tools/e2e-metrics/score.sh``: ``measure_scores.py`` of
tuetschek/e2e-metrics @1b9c4d8 with mteval-v13a-sig.pl, METEOR 1.5 and the MS-COCO caption code;
its first run installs Debian's libxml-twig-perl and a private venv) and records the five printed
scores. The fixture keeps, per system, the seed, the sha256 of the files (so a test knows it
regenerated the very system that was scored), a few counts and the official scores; and the
provenance: scorer files and their sha256, Perl, XML::Twig, Java and the scorer venv's package
versions, command and date. The texts themselves are not stored.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from argparse import ArgumentParser
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.e2e_systems import SCORER, SCORER_HOME, generate, official_scores  # noqa: E402

DEFAULT_OUT = ROOT / "tests" / "data" / "e2e-official" / "scores.json"


def _seeds(text: str) -> list[int]:
    """``0-23`` or ``1,5,9`` (or both: ``0-9,40``)."""
    seeds = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds.extend(range(int(first), int(last or first) + 1))
    return seeds


def _score(seed: int) -> dict:
    system = generate(seed)
    with tempfile.TemporaryDirectory(prefix=f"e2e-system-{seed}-") as folder:
        references, outputs = system.write(Path(folder))
        scores = official_scores(references, outputs)
    print(f"seed {seed}: {system.layout}, {len(system.mrs)} MRs: {scores}", flush=True)
    return {
        "seed": seed,
        "sha256": system.digest(),
        "layout": system.layout,
        "mrs": len(system.mrs),
        "references": sum(len(instance) for instance in system.references),
        "most_references": max(len(instance) for instance in system.references),
        "empty_outputs": sum(1 for output in system.outputs if not output),
        "official": scores,
    }


def _output(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    return (done.stdout + done.stderr).strip().splitlines()[0]


def _provenance() -> dict:
    scorer = SCORER.parent
    files = ["score.sh", "measure_scores.py", "mteval/mteval-v13a-sig.pl", "pycocoevalcap/eval.py"]
    venv_python = SCORER_HOME / "venv" / "bin" / "python"
    return {
        "generator": "scripts/reference/e2e_official.py over tests/e2e_systems.py",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "scorer": "tuetschek/e2e-metrics @1b9c4d8 measure_scores.py, run by ../shared/tools/e2e-metrics/score.sh",
        "scorer_sha256": {name: hashlib.sha256((scorer / name).read_bytes()).hexdigest() for name in files},
        "perl": _output(["perl", "-e", "print $^V"]),
        "xml_twig": _output(["perl", "-MXML::Twig", "-e", "print $XML::Twig::VERSION"]),
        "java": _output(["java", "-version"]),
        "scorer_python": _output([str(venv_python), "--version"]),
        "scorer_packages": _output([str(venv_python), "-c",
                                    "import importlib.metadata as m; print(', '.join(f'{p}=={m.version(p)}' "
                                    "for p in ('pycocoevalcap', 'future', 'numpy')))"]),  # fmt: skip
        "jars": "meteor-1.5.jar, paraphrase-en.gz, stanford-corenlp-3.4.1.jar from the pycocoevalcap 1.2 wheel",
    }


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0-23", help="seeds of the generated systems: 0-23, or 1,5,9")
    parser.add_argument("--jobs", type=int, default=2, help="scorer runs at a time")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    seeds = _seeds(args.seeds)
    systems = [_score(seeds[0])]  # alone: the scorer's first run sets it up
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        systems += pool.map(_score, seeds[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fixture = {"provenance": _provenance(), "systems": systems}
    args.out.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(systems)} systems' official scores to {args.out}")


if __name__ == "__main__":
    main()
