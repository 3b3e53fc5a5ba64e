"""MRQA 2019's official F1 and EM on made-up systems: the fixture of tests/test_mrqa_task.py.

    MRQA_EVAL_SCRIPT=PATH .venv/bin/python scripts/reference/mrqa_official.py [--script PATH] [--out FILE]

PATH is the official ``mrqa_official_eval.py`` from github.com/mrqa/MRQA-Shared-Task-2019. This
repository does not keep a copy. The file was checked at commit b86bbcc63352786f0ca246b76191f062dce4b52b
(git blob c13f1183a17642a66b6537057e9b7fefef3ce7ff, last changed in 59ed9b1a, 2019-04-29), and any
other file is refused. The systems and gold files come from ``tests/mrqa_systems.py``: the real
SQuAD dev slice as shipped (``raw``), and the same slice with T5-padded answers (``padded``). For
each system and each gold file, this script writes the predictions into a temporary folder, runs
the official script on them in a subprocess (``python PATH GOLD.jsonl.gz PREDICTIONS.json``, as its
usage line says), and records the ``f1`` and ``exact_match`` it prints.

The official script reads its two files through AllenNLP's ``cached_path``. AllenNLP is not
installed for this. Instead, a module ``allennlp.common.file_utils`` whose ``cached_path`` returns
the path it is given is written into the temporary folder and put first on ``PYTHONPATH``. That is
all the script needs from it for local files.

The output keeps the sha256 of every gold content and prediction file, so that a test knows it
rebuilt the very inputs that were scored. It also keeps the official scores, and the provenance:
the script's path, git blob and sha256, the Python version, the commands and the date.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from argparse import ArgumentParser
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.mrqa_systems import (  # noqa: E402
    GOLDS,
    gold_files,
    prediction_file,
    sha256_text,
    sha256_unpacked,
    systems,
    validation_rows,
)

DEFAULT_OUT = ROOT / "tests" / "data" / "mrqa-official" / "scores.json"
OFFICIAL_REPO = "github.com/mrqa/MRQA-Shared-Task-2019"
OFFICIAL_COMMIT = "b86bbcc63352786f0ca246b76191f062dce4b52b"
OFFICIAL_BLOB = "c13f1183a17642a66b6537057e9b7fefef3ce7ff"
SHIM = '"""AllenNLP\'s cached_path for local files."""\n\n\ndef cached_path(path):\n    return path\n'


def git_blob(data: bytes) -> str:
    """The id git gives a file's content (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write_shim(folder: Path) -> Path:
    """A package ``allennlp.common.file_utils`` under ``folder`` whose ``cached_path`` is the identity."""
    common = folder / "allennlp" / "common"
    common.mkdir(parents=True)
    (folder / "allennlp" / "__init__.py").write_text("")
    (common / "__init__.py").write_text("")
    (common / "file_utils.py").write_text(SHIM)
    return folder


def official_scores(script: Path, gold: Path, predictions: Path, shim: Path) -> dict[str, float]:
    """What the official script prints last: ``{"exact_match": …, "f1": …}`` in percent."""
    env = {**os.environ, "PYTHONPATH": str(shim)}
    done = subprocess.run([sys.executable, str(script), str(gold), str(predictions)],
                          capture_output=True, text=True, env=env, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", default=os.environ.get("MRQA_EVAL_SCRIPT"),
                        help="the official mrqa_official_eval.py (default: $MRQA_EVAL_SCRIPT)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if not args.script:
        parser.error("name the official mrqa_official_eval.py with --script PATH or MRQA_EVAL_SCRIPT=PATH")
    script = Path(args.script).resolve()
    code = script.read_bytes()
    if git_blob(code) != OFFICIAL_BLOB:
        found = git_blob(code)
        parser.error(f"{script} is not {OFFICIAL_REPO}'s mrqa_official_eval.py (git blob {found}, expected {OFFICIAL_BLOB})")

    rows = validation_rows()
    result: dict = {"provenance": {}, "gold": {}, "systems": {}}
    with tempfile.TemporaryDirectory(prefix="mrqa-official-") as folder:
        work = Path(folder)
        shim = write_shim(work / "shim")
        golds = gold_files(work)
        for gold in GOLDS:
            where = golds[gold].relative_to(ROOT).as_posix() if gold == "raw" else "tests/mrqa_systems.py gold_files()"
            result["gold"][gold] = {"file": where, "sha256_unpacked": sha256_unpacked(golds[gold])}
        for name, texts in systems(rows).items():
            result["systems"][name] = {}
            for gold in GOLDS:
                text = prediction_file(rows, texts, gold)
                predictions = work / "predictions.json"
                predictions.write_text(text, encoding="utf-8")
                scores = official_scores(script, golds[gold], predictions, shim)
                result["systems"][name][gold] = {"sha256": sha256_text(text), **scores}
                print(f"{name} / {gold}: {scores}", flush=True)

    result["provenance"] = {
        "script": str(script),
        "repo": OFFICIAL_REPO,
        "commit": OFFICIAL_COMMIT,
        "git_blob": git_blob(code),
        "sha256": hashlib.sha256(code).hexdigest(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "command": f"MRQA_EVAL_SCRIPT={script} python scripts/reference/mrqa_official.py",
        "each_run": "PYTHONPATH=SHIM python mrqa_official_eval.py GOLD.jsonl.gz PREDICTIONS.json "
        "(SHIM: a temporary allennlp.common.file_utils whose cached_path returns its argument)",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
