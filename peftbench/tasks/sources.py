"""Where a task's rows come from (DESIGN §4): a data folder, the Hugging Face hub, or the real
slices shipped in the package. One rule for every benchmark, for ``peftbench run`` and ``score``.

- ``auto`` (the default ``data.source``): the data folder (``data.dir``, else ``$PEFTBENCH_DATA``)
  when one is given, else the embedded slice where the task ships one, else the hub.
- ``dir``: the benchmark's original files, under a data root (``DIR/glue/RTE/``), under the
  benchmark's folder (``DIR/RTE/``), or in ``DIR`` itself when it holds one of the task's files.
- ``hub``: ``datasets.load_dataset(hub_id, config)``, at ``hub_revision`` where one is set; a data
  set that cannot be reached or found is one line (``UserError``, exit 2) that names the data
  folder as the way out.
- ``embedded``: the slice under ``peftbench/tasks/data/``, read as a data folder is and marked as
  a sample (``TaskData.sample``) unless it is the whole official split (RAFT's 50 training rows).

A benchmark declares each task's ``DataSource`` (folder names, files, hub id, shipped slice) and
two readers, of a folder and of the hub's ``DatasetDict``; everything else is here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from peftbench.errors import UserError
from peftbench.tasks.base import TaskData

ENV = "PEFTBENCH_DATA"
FIX = f"pass data.dir=… or set {ENV}"

Splits = dict[str, list[dict]]


def data_dir(given: str | os.PathLike | None = None) -> str | None:
    """The data folder: ``given`` (``data.dir``, ``--data-dir``), else ``$PEFTBENCH_DATA``, else None."""
    return str(given) if given else os.environ.get(ENV) or None


def load_task(task, source: str = "auto", directory: str | os.PathLike | None = None, splits=None) -> TaskData:
    """``task``'s rows from ``source``; ``auto`` picks the data folder, the embedded slice or the hub.
    ``splits`` names the only splits wanted (``peftbench score`` needs the validation file alone);
    a folder then needs only their files. None: every split the folder holds."""
    directory = data_dir(directory)
    if source == "auto":
        source = "dir" if directory else ("embedded" if task.has_embedded else "hub")
    return task.load(source, directory, splits)


def wanted(split: str, splits) -> bool:
    """Whether a reader asked for ``splits`` (None: all of them) reads ``split``."""
    return splits is None or split in splits


def read_split_files(folder: Path, files: dict[str, str], splits, read: Callable[[Path], list], what: str,
                     holder: str, restore: str) -> dict[str, list]:
    """The wanted ``splits`` (None: all) of a release whose splits are one file each (``files``:
    split → file name under ``folder``), each read by ``read``; a missing file is one line naming
    the split of ``what`` and the folder ``holder`` to point ``data.dir`` at, an empty one a line
    ending in ``restore``."""
    rows = {}
    for split, name in files.items():
        if not wanted(split, splits):
            continue
        path = folder / name
        if not path.is_file():
            raise UserError(f"missing {path} ({what} {split}); {FIX} to the folder holding {holder}")
        rows[split] = read(path)
        if not rows[split]:
            raise UserError(f"{path} has no sentences; {restore}")
    return rows


def read_json(path: Path, restore: str):
    """A release's JSON file, parsed; a file that is not JSON is one line ending in ``restore``."""
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not JSON ({error.msg}, line {error.lineno}); {restore}") from error


def release_folder(folder: Path, subfolders, files, what: str) -> Path:
    """Where a release sits under a data folder: the first of ``subfolders`` (``""`` is ``folder``
    itself) holding ``files[0]``, else the first holding a later one (scoring reads one split's
    file alone); none is one line naming where it looked (``UserError``)."""
    candidates = [folder / sub if sub else folder for sub in subfolders]
    for name in files:
        for candidate in candidates:
            if (candidate / name).exists():
                return candidate
    looked = ", ".join(str(candidate) for candidate in candidates)
    raise UserError(
        f"no {what} release files in {folder} (looked in {looked} for {', '.join(files)}); "
        f"{FIX} to the folder holding the {what} release"
    )


@dataclass(frozen=True)
class DataSource:
    """Where one task's data lives in each source, and how its files and hub splits become rows."""

    what: str  # the task's data as messages name it: "GLUE RTE"
    benchmark: str  # the benchmark's folder under a data root: glue, superglue, e2e, raft
    folder: str | None  # the task's folder in it (RTE); None: the benchmark folder is the task's (E2E)
    files: tuple[str, ...]  # file names a task folder holds: any one marks ``DIR`` as the folder itself
    hub_id: str
    hub_config: str | None
    read_folder: Callable[[Path, object], Splits]  # the task folder's files (of the splits wanted) as rows
    read_hub: Callable[[object], Splits]  # ``load_dataset``'s DatasetDict as rows per split
    embedded: Path | None = None  # the shipped slice's folder; None where the task ships none
    embedded_sample: bool = True  # False where the shipped files are the whole official split
    # An official reduced setting a folder's layout may say it holds: (subset, what the layout means),
    # e.g. ("fewglue", "FewGLUE_32dev layout: dev32.jsonl as validation"); None for the full splits.
    subset: Callable[[Path], tuple[str, str] | None] | None = None
    hint: str = ""  # what else a data folder may be, for the message when none is found
    # The hub revision to load where the main branch cannot be (WikiSQL's holds only a loading
    # script, which datasets >= 4 refuses; the hub's parquet export is refs/convert/parquet)
    hub_revision: str | None = None

    @property
    def hub_location(self) -> str:
        location = f"{self.hub_id}/{self.hub_config}" if self.hub_config else self.hub_id
        return f"{location}@{self.hub_revision}" if self.hub_revision else location

    @property
    def home(self) -> str:
        """The task's folder under a data root, as messages spell it (``glue/RTE``)."""
        return f"{self.benchmark}/{self.folder}" if self.folder else self.benchmark

    def load(self, source: str, directory: str | os.PathLike | None = None, splits=None) -> TaskData:
        """The splits from ``source`` ("dir", "hub" or "embedded"); ``directory`` defaults to
        ``$PEFTBENCH_DATA``; ``splits``, when given, the only ones a folder must hold."""
        if source == "dir":
            return self._from_folder(self.task_folder(directory), "dir", sample=False, splits=splits)
        if source == "hub":
            return TaskData(splits=self.read_hub(self._hub_dataset()), source="hub", location=self.hub_location)
        if source == "embedded":
            if self.embedded is None:
                raise UserError(
                    f"{self.what} ships no embedded slice; {FIX} to the folder holding {self.home}, "
                    "or pass data.source=hub"
                )
            return self._from_folder(self.embedded, "embedded", sample=self.embedded_sample, splits=splits)
        raise UserError(f"unknown data source {source!r} for {self.what}; use dir, hub or embedded")

    def task_folder(self, directory: str | os.PathLike | None) -> Path:
        """The task's folder under a data root, under the benchmark's folder, or ``directory`` itself."""
        directory = data_dir(directory)
        if not directory:
            raise UserError(f"no data folder given for {self.what}; {FIX}")
        given = Path(directory).expanduser()
        candidates = [given / self.benchmark / self.folder, given / self.folder] if self.folder else [given / self.benchmark]
        for folder in candidates:
            if folder.is_dir():
                return folder
        if any((given / name).is_file() for name in self.files):
            return given
        looked = ", ".join(str(folder) for folder in candidates)
        raise UserError(
            f"no {self.what} folder at {given} (looked for {looked} and the files themselves); "
            f"{FIX} to the folder holding {self.home}{self.hint}"
        )

    def _from_folder(self, folder: Path, source: str, sample: bool, splits) -> TaskData:
        layout = self.subset(folder) if self.subset else None
        location = f"{folder} ({layout[1]})" if layout else str(folder)
        rows = self.read_folder(folder, splits)
        return TaskData(rows, source, location, sample=sample, subset=layout[0] if layout else None)

    def _hub_dataset(self):
        """``datasets.load_dataset`` of the task; one line when the hub cannot give it."""
        import datasets

        try:
            revision = {"revision": self.hub_revision} if self.hub_revision else {}
            if self.hub_config is None:
                return datasets.load_dataset(self.hub_id, **revision)
            return datasets.load_dataset(self.hub_id, self.hub_config, **revision)
        except (OSError, ValueError) as error:  # offline, not found, refused (HTTP), no such config
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            embedded = ", or pass data.source=embedded" if self.embedded is not None else ""
            raise UserError(
                f"cannot load {self.hub_location} from the Hugging Face hub ({reason}); to read local "
                f"{self.what} files instead, {FIX} to the folder holding {self.home}{embedded}"
            ) from error
