"""``history.jsonl``: one JSON line per evaluation of a run, in the order they happened.

A resumed run evaluates again at the steps it had reached after its last checkpoint; each such
evaluation replaces the copy written before the interruption (same phase, same step), together
with every later entry of that phase, so the file reads as if the run had never stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

from peftbench.atomic import disk_errors, write_text_atomic


def append_evaluation(path: Path, entry: dict) -> None:
    """Add ``entry`` (with ``phase`` and ``step``) to the history at ``path``."""
    entries = read_history(path)
    if any(e.get("phase") == entry["phase"] and e["step"] >= entry["step"] for e in entries):
        kept = [e for e in entries if e.get("phase") != entry["phase"] or e["step"] < entry["step"]]
        write_text_atomic(path, "".join(json.dumps(e) + "\n" for e in [*kept, entry]))
        return
    with disk_errors(path), open(path, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def read_history(path: Path) -> list[dict]:
    """The entries so far; a last line cut short by a crash is dropped."""
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries
