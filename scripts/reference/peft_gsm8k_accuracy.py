"""HF peft's GSM8K answer parsing and accuracy on made-up predictions: the fixture of tests/test_gsm8k_answer.py.

    .venv/bin/python scripts/reference/peft_gsm8k_accuracy.py --utils PATH [--out FILE]

PATH is ``method_comparison/MetaMathQA/utils.py`` of huggingface/peft; this repository keeps no copy.
The file was read at commit 5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40 (git blob
75aa89d7dd98dfb9c45533dfc690d934ddb07bf0, last changed in ad4e565c), and any other file is refused.
The module imports bitsandbytes, torch, transformers and peft at its top, none of which its answer
functions use, so the three functions (``parse_answer``, ``convert_to_decimal``, ``get_accuracy``)
are taken out of the file by name (``ast``) and run as written, with the names they need
(``Decimal``, ``DivisionByZero``, ``InvalidOperation``, ``Optional``).

The cases pair predictions written to exercise each rule (delimiters, trailing punctuation,
fractions, "$" and "%", a second paragraph, text answers, no answer) with references: real GSM8K
test answers (the first rows of openai/grade-school-math's ``test.jsonl``, as shipped in
``peftbench/tasks/data/gsm8k``) and MetaMath-style ones. The output keeps, per case, the official
parse of both texts, their numbers, and the accuracy of the case alone; the accuracy of all cases
together; and the provenance (the file's blob, the Python version, the date).
"""

from __future__ import annotations

import ast
import hashlib
import json
import platform
import sys
from argparse import ArgumentParser
from datetime import datetime, timezone
from decimal import Decimal, DivisionByZero, InvalidOperation
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]
BLOB = "75aa89d7dd98dfb9c45533dfc690d934ddb07bf0"
FUNCTIONS = ("parse_answer", "convert_to_decimal", "get_accuracy")
GSM8K_TEST = ROOT / "peftbench" / "tasks" / "data" / "gsm8k" / "test.jsonl"
OUT = ROOT / "tests" / "data" / "peft_gsm8k" / "accuracy.json"


def git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def official(path: Path) -> dict:
    """The three answer functions of peft's utils.py, defined from its own source."""
    source = path.read_bytes()
    if git_blob(source) != BLOB:
        sys.exit(f"{path} is not peft@5d602fdb's utils.py (git blob {git_blob(source)}, expected {BLOB})")
    tree = ast.parse(source)
    chosen = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in FUNCTIONS]
    namespace = {"Decimal": Decimal, "DivisionByZero": DivisionByZero, "InvalidOperation": InvalidOperation,
                 "Optional": Optional}  # fmt: skip
    exec(compile(ast.Module(body=chosen, type_ignores=[]), str(path), "exec"), namespace)
    return {name: namespace[name] for name in FUNCTIONS}


def cases() -> list[dict]:
    """(prediction, reference) pairs; the references' first five are real GSM8K test answers."""
    gsm8k = [json.loads(line)["answer"] for line in GSM8K_TEST.read_text(encoding="utf-8").splitlines()[:5]]
    metamath = "So the total cost is 16 * $47 = $752.\n#### 752\nThe answer is: 752"
    pairs = [
        ("Janet has 16 - 3 - 4 = 9 eggs left, so she makes 9 * 2 = 18 dollars.\nThe answer is: 18", gsm8k[0]),
        ("It takes 2 + 1 = 3 bolts.\nThe answer is: 3.", gsm8k[1]),
        ("The profit is $70,000.\nThe answer is: 70000", gsm8k[2]),
        ("He runs 540 meters a week.\n#### 540\nThe answer is: 540", gsm8k[3]),
        ("The final answer is 20 cups!", gsm8k[4]),
        ("The answer is: 18.0", gsm8k[0]),
        ("The answer is: $18", gsm8k[0]),
        ("The answer is: 36/2", gsm8k[0]),
        ("The answer is: 18\n\nQuestion: what is next? The answer is: 5", gsm8k[0]),
        ("She makes eighteen dollars.", gsm8k[0]),
        ("The answer is: eighteen", gsm8k[0]),
        ("The answer is: 752", metamath),
        ("The answer is 751", metamath),
        ("The answer is: \\sqrt{5}", "The distance is $\\sqrt{5}$.\nThe answer is: \\sqrt{5}"),
        ("no answer here", "The distance is $\\sqrt{5}$.\nThe answer is: \\sqrt{5}"),
        ("The answer is: 4/7", "The ratio is 20/35.\nThe answer is: 0.5714285714285714"),
        ("The answer is: 50", "Half of them, 50%.\n#### 50%"),
        ("The answer is: 1/0", "#### 3"),
    ]
    return [{"prediction": p, "reference": r} for p, r in pairs]


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utils", type=Path, required=True, help="peft's method_comparison/MetaMathQA/utils.py")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    peft = official(args.utils)
    scored = []
    for case in cases():
        parsed = {key: peft["parse_answer"](case[key]) for key in ("prediction", "reference")}
        numbers = {key: peft["convert_to_decimal"](value) for key, value in parsed.items()}
        scored.append({
            **case,
            "parsed": parsed,
            "numbers": {key: None if value is None else str(value) for key, value in numbers.items()},
            "accuracy": peft["get_accuracy"](predictions=[case["prediction"]], responses=[case["reference"]]),
        })  # fmt: skip
    everything = peft["get_accuracy"](predictions=[c["prediction"] for c in scored], responses=[c["reference"] for c in scored])
    document = {
        "provenance": {
            "source": "huggingface/peft@5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40 method_comparison/MetaMathQA/utils.py",
            "git_blob": BLOB, "functions": list(FUNCTIONS), "python": platform.python_version(),
            "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": "python scripts/reference/peft_gsm8k_accuracy.py --utils PATH",
        },
        "cases": scored,
        "accuracy_of_all": everything,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(args.out)


if __name__ == "__main__":
    main()
