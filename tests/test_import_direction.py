"""DESIGN's direction of imports, checked on every import in the package (function-local ones too).

``cli`` → ``launch`` → ``plan`` / ``run`` / ``pipeline`` (the command level: any module at the top of
the package) → the layers below, each of which may import only what its row allows: methods
speak to models alone; tasks never read results; the trainer imports no method, task, format or
result; results (records, tables, plots) import neither torch nor transformers nor the trainer,
so ``peftbench table`` stays fast. No layer imports the command level.
"""

from __future__ import annotations

import ast
from pathlib import Path

import peftbench

PACKAGE = Path(peftbench.__file__).parent

# layer -> the peftbench layers it may import (besides itself)
ALLOWED = {
    "errors": set(),
    "atomic": {"errors"},
    "integrity": set(),
    "config": {"errors"},
    "models": {"errors", "integrity", "config"},
    "methods": {"errors", "models"},
    "tasks": {"errors", "atomic"},
    "formats": {"errors", "atomic", "models"},
    "train": {"errors", "atomic", "integrity"},
    "results": {"errors", "atomic", "config"},
}
HEAVY = {"torch", "transformers", "datasets", "peft", "accelerate", "safetensors"}
LIGHT_LAYERS = {"errors", "atomic", "integrity", "config", "results"}  # importable without the ML stack


def layer_of(module: str) -> str:
    """``peftbench.results.record`` → ``results``; a top-level module that is no layer → ``command``."""
    first = module.split(".")[1] if module.count(".") else ""
    return first if first in ALLOWED else "command"


def imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth of its code."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
    return found


def violations(module: str, imported: list[str]) -> list[str]:
    """The imports of ``module`` that run against the direction."""
    layer, bad = layer_of(module), []
    if layer == "command":
        return bad
    for name in imported:
        if name == "peftbench" or name.startswith("peftbench."):
            target = layer_of(name)
            if target != layer and target not in ALLOWED[layer]:
                bad.append(f"{module} -> {name}")
        elif layer in LIGHT_LAYERS and name.split(".")[0] in HEAVY:
            bad.append(f"{module} -> {name} (the ML stack)")
    return bad


def module_name(path: Path) -> str:
    parts = ("peftbench", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_runs_against_the_direction():
    found = [v for path in sorted(PACKAGE.rglob("*.py")) for v in violations(module_name(path), imports(path))]
    assert not found, "\n".join(found)


def test_the_check_catches_each_arrow_it_forbids():
    """The violations found on main before the layers were mended, each one flagged."""
    before = [
        ("peftbench.results.doctor", "peftbench.train.checkpoint"),
        ("peftbench.train.checkpoint", "peftbench.results.record"),
        ("peftbench.train.weights", "peftbench.results.record"),
        ("peftbench.tasks.raft", "peftbench.results.record"),
        ("peftbench.methods.adapter_fusion", "peftbench.results.record"),
        ("peftbench.formats.base", "peftbench.train.batching"),
        ("peftbench.methods.composed", "peftbench.config"),
        ("peftbench.results.record", "torch"),
        ("peftbench.methods.lora", "peftbench.run"),
    ]
    for module, name in before:
        assert violations(module, [name]), (module, name)
    assert not violations("peftbench.run", ["peftbench.results.record", "torch"])
    assert not violations("peftbench.methods.lora", ["peftbench.models.anatomy", "torch"])
