"""What can be named on the command line: the entries of each config group, with a summary.

Read from ``conf/`` (the YAML files and their first comment line), so listing imports nothing heavy.
"""

from __future__ import annotations

from peftbench.config import CONF_DIR, available


def describe(group: str) -> list[tuple[str, str]]:
    """(name, one-line summary) for every entry of a config group (``method``, ``task``, …)."""
    return [(name, _summary(CONF_DIR / group / f"{name}.yaml")) for name in available(group)]


def _summary(path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("# @package"):
            continue
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    for line in path.read_text().splitlines():
        if line.startswith(("title:", "name:")):
            return line.split(":", 1)[1].strip()
    return ""
