"""Tokenised features kept on disk, so that a later run on the same rows skips the tokenizer.

An entry is one split's features in one format, named by a hash of everything that decides them:
the split's rows (a sha256 over them, in order: the data fingerprint of that split), the tokenizer
(its name and a sha256 of its full definition: vocabulary, normaliser, pre-tokenizer, template),
``max_length``, the format's name and options (the run's task config), the task's name and
verbalisers, and the source of the format's and the task's modules (a code change starts afresh).
A format whose ``encode`` leaves state on itself (``cache_features = False``: the cloze format),
or a task that the method rewrote for this run (in-context learning's demonstrations), is encoded
every time.

Entries live under ``cache_root()/features`` ($PEFTBENCH_CACHE, else $HF_HOME/peftbench, else
~/.cache/peftbench: where converted GGUF models live too), one safetensors file each: every field
that holds a list of token ids per feature as one flat int64 tensor with row offsets, every other
field (labels, groups) as JSON in the file's metadata. An entry is written whole or not at all
(``peftbench.atomic``) and only when it reads back equal to what the format made; one that cannot
be read or does not match its name is ignored with a warning and written again. ``data.cache=false``
turns the cache off; it never changes a result, so it is not in the run id.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from itertools import accumulate
from pathlib import Path

VERSION = 1  # of the entry layout


def features_folder() -> Path:
    from peftbench.models.load import cache_root

    return cache_root() / "features"


def entry_key(fmt, rows: list[dict]) -> str:
    """The hash that names ``rows``' features in ``fmt`` (module docstring: what it covers)."""
    task = fmt.task
    parts = {
        "version": VERSION,
        "rows": hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest(),
        "tokenizer": [getattr(fmt.tokenizer, "name_or_path", ""), type(fmt.tokenizer).__name__, tokenizer_digest(fmt.tokenizer)],
        "max_length": fmt.max_length,
        "format": fmt.name,
        "options": json.dumps(fmt.options, sort_keys=True, default=str),
        "task": [task.name, list(task.verbalizers), list(task.label_names), list(task.options)],
        "code": [_source_digest(type(fmt)), _source_digest(task.load)],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def tokenizer_digest(tokenizer) -> str:
    """A sha256 of the tokenizer's whole definition (a fast tokenizer's JSON, less the truncation
    and padding that the last call left set on it; else its vocabulary) and special tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
        text = json.dumps(definition, sort_keys=True)
    else:
        text = json.dumps(sorted(tokenizer.get_vocab().items()))
    text += json.dumps([tokenizer.all_special_tokens, tokenizer.padding_side, tokenizer.truncation_side], default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _source_digest(obj) -> str:
    try:
        return hashlib.sha256(Path(inspect.getsourcefile(obj)).read_bytes()).hexdigest()[:16]
    except (TypeError, OSError):  # a builtin or a lambda defined nowhere readable: no code to key on
        return ""


def encode(fmt, rows: list[dict], use_cache: bool = True, folder: Path | None = None) -> list[dict]:
    """``fmt.encode(rows)``, read from the cache when an entry is there, else made and stored."""
    if not use_cache or not fmt.cache_features or not rows:
        return fmt.encode(rows)
    folder = folder or features_folder()
    key = entry_key(fmt, rows)
    path = folder / f"{key}.safetensors"
    if path.is_file():
        try:
            return read_entry(path, key, len(rows))
        except Exception as problem:  # noqa: BLE001 — any damage: ignore the entry, make it again
            print(f"warning: ignoring cached features {path} ({type(problem).__name__}: {problem}); rebuilding",
                  file=sys.stderr)  # fmt: skip
    features = fmt.encode(rows)
    write_entry(path, key, features)
    return features


def write_entry(path: Path, key: str, features: list[dict]) -> None:
    """Store ``features`` (when they read back equal; a value JSON cannot hold leaves no entry)."""
    import torch
    from safetensors.torch import save

    from peftbench.atomic import write_bytes_atomic

    fields = list(features[0])
    if any(list(f) != fields for f in features):
        return  # features of differing fields: not a table
    tensors, other = {}, {}
    for name in fields:
        values = [f[name] for f in features]
        if all(isinstance(v, list) and all(type(x) is int for x in v) for v in values):
            tensors[f"{name}.values"] = torch.tensor([x for v in values for x in v], dtype=torch.int64)
            tensors[f"{name}.offsets"] = torch.tensor(list(accumulate((len(v) for v in values), initial=0)), dtype=torch.int64)
        else:
            other[name] = values
    metadata = {"key": key, "rows": str(len(features)), "fields": json.dumps(fields), "other": json.dumps(other)}
    if json.loads(metadata["other"]) != other:
        return  # tuples, NaN or other values that would not come back as they were
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_bytes_atomic(path, save(tensors, metadata))
    except OSError as error:  # a read-only or full cache costs speed, never the run
        print(f"warning: cannot cache features in {path.parent} ({error}); continuing without", file=sys.stderr)


def read_entry(path: Path, key: str, rows: int) -> list[dict]:
    """The features of an entry; raises when it is damaged or is not the entry ``key`` names."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        if metadata.get("key") != key or int(metadata.get("rows", -1)) != rows:
            raise ValueError("its key or row count differs from its name")
        fields, other = json.loads(metadata["fields"]), json.loads(metadata["other"])
        columns = {}
        for name in fields:
            if name in other:
                columns[name] = other[name]
                continue
            values, offsets = handle.get_tensor(f"{name}.values").tolist(), handle.get_tensor(f"{name}.offsets").tolist()
            columns[name] = [values[offsets[i] : offsets[i + 1]] for i in range(rows)]
    if any(len(column) != rows for column in columns.values()):
        raise ValueError("a field has the wrong number of rows")
    return [{name: columns[name][i] for name in fields} for i in range(rows)]
