"""Is a file whole? Cheap structural checks that read headers, never the tensors.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON naming each
tensor's byte range, then the data (https://github.com/huggingface/safetensors, "Format"). A file
cut short, empty, or with a garbled header fails here before any loader sees it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

_MAX_HEADER = 100_000_000  # the format's own bound on the header size


def safetensors_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a whole safetensors file, or None when its structure holds."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                return "empty" if size == 0 else "truncated header"
            length = int.from_bytes(prefix, "little")
            if length > _MAX_HEADER or 8 + length > size:
                return "header length beyond the file"
            header = json.loads(handle.read(length))
    except OSError as error:
        return error.strerror or str(error)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "header is not JSON"
    if not isinstance(header, dict):
        return "header is not a JSON object"
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = entry["data_offsets"]
        except (TypeError, KeyError, ValueError):
            return f"tensor {name!r} has no data_offsets"
        end = max(end, stop)
    if 8 + length + end != size:
        return f"{size} bytes where the header describes {8 + length + end}" + (" (truncated)" if size < 8 + length + end else "")
    return None
