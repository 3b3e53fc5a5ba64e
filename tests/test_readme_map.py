"""README's "Where things live" matches the tree: every module at the top of the package and every
folder is on the map, and every file the map names exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "peftbench"


def _map() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Where things live", 1)[1]
    return section.split("```", 2)[1]


def test_every_module_and_folder_is_on_the_map():
    block = _map()
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert [name for name in top if not re.search(rf"^\s+{re.escape(name)}\s", block, re.M)] == []
    assert [name for name in folders if not re.search(rf"^\s+{name}/\s", block, re.M)] == []


def test_every_file_the_map_names_exists():
    names = set(re.findall(r"\b(\w+\.py)\b", _map()))
    present = {p.name for p in [*PACKAGE.rglob("*.py"), *(ROOT / "scripts").rglob("*.py")]}
    assert sorted(names - present) == []
