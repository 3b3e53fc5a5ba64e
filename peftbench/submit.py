"""``peftbench submit glue RUN…``: the GLUE server's zip from finished runs (Wang et al. 2018).

Each run with a GLUE task's unlabelled test split wrote the server's file of it under
``<run>/submission/`` (``tasks/glue_submission.py``). This gathers them into the one zip the
server takes, the eleven files at its root. Everything is checked before anything is written: every
folder is a complete run with GLUE predictions, no file comes from two runs, and all eleven are
there (``--partial`` zips what there is, for a server that will refuse it, or a look); the zip is
written atomically and never over an existing file.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from peftbench.atomic import write_bytes_atomic
from peftbench.errors import UserError
from peftbench.results.record import RECORD_FILE
from peftbench.tasks.glue_submission import SERVER_FILES


def submit_glue(run_dirs: list[str], out: str, partial: bool = False) -> Path:
    """Zip the runs' GLUE server files into ``out``; returns it."""
    target = Path(out)
    if target.exists():
        raise UserError(f"{target} exists; pass another --out or move it away (it is never overwritten)")
    files: dict[str, Path] = {}
    for run in map(Path, run_dirs):
        for path in _server_files(run):
            if path.name in files:
                raise UserError(f"{path.name} comes from two runs, {files[path.name].parent.parent} and {run}; pass one run per task")
            files[path.name] = path
    missing = [name for name in SERVER_FILES.values() if name not in files]
    if missing and not partial:
        raise UserError(
            f"the GLUE server needs all {len(SERVER_FILES)} files; missing {', '.join(missing)}: add runs of those "
            "tasks with their test files (data.dir=… holding glue/; AX.tsv comes from an MNLI run with "
            "glue/diagnostic/diagnostic.tsv), or pass --partial to zip what there is"
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in (name for name in SERVER_FILES.values() if name in files):
            archive.write(files[name], arcname=name)
    write_bytes_atomic(target, buffer.getvalue())
    return target


def _server_files(run: Path) -> list[Path]:
    record_path = run / RECORD_FILE
    if not record_path.is_file():
        raise UserError(f"{run} is not a run folder (no {RECORD_FILE}); pass run folders under results/")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(f"{record_path} is damaged ({error.msg}); see peftbench doctor, or leave the run out") from error
    if record.get("status") != "complete":
        raise UserError(f"{run}: the run is {record.get('status')}, not complete; finish it or leave it out")
    names = set(SERVER_FILES.values())
    found = sorted(path for path in (run / "submission").glob("*.tsv") if path.name in names)
    if not found:
        raise UserError(
            f"{run} holds no GLUE test predictions ({record.get('task')} had no unlabelled test split); run "
            "the task with data.dir=… holding the GLUE files with their test.tsv"
        )
    return found
