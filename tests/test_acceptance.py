"""The spine's acceptance runs with real weights (MiniLM-L6) and real data, as a user types them.

The demo uses only what ships in the package; the RTE run reads the original GLUE files from
``../shared/data`` (or ``$PEFTBENCH_SHARED_DATA``) and is skipped where they are absent. Each
trains a real model for minutes: they run with ``make test-slow`` (and in CI, after ``make test``).
"""

import json
import os
from pathlib import Path

import pytest

from tests.cli import peftbench

pytestmark = pytest.mark.slow

SHARED = Path(os.environ.get("PEFTBENCH_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _records(results: Path) -> list[dict]:
    return [json.loads((p / "record.json").read_text()) for p in results.iterdir() if not p.name.startswith(".")]


def test_demo_reaches_080_on_the_full_sst2_dev_set(tmp_path):
    result = peftbench("run", "trainer.progress=false", f"results_dir={tmp_path}", cwd=tmp_path, timeout=1800)  # a hang guard, not a timing check
    assert result.returncode == 0, result.stderr
    (record,) = _records(tmp_path)
    assert (record["model"], record["method"], record["task"]) == ("minilm-l6", "lora", "sst2")
    assert record["data"]["rows"]["validation"] == 872
    assert record["metrics"]["best"]["validation"]["accuracy"] >= 0.80
    assert "| sst2 (sample data) | minilm-l6 | lora" in result.stdout


@pytest.mark.skipif(not (SHARED / "glue" / "RTE").is_dir(), reason="../shared/data/glue is not here")
def test_rte_from_the_original_files_records_skips_and_tables(tmp_path):
    command = ["run", "model=minilm-l6", "method=lora", "task=rte", f"data.dir={SHARED}", "trainer.epochs=1",
               "trainer.progress=false", f"results_dir={tmp_path / 'results'}"]  # fmt: skip
    first = peftbench(*command, cwd=tmp_path, timeout=1800)  # a hang guard, not a timing check
    assert first.returncode == 0, first.stderr
    (record,) = _records(tmp_path / "results")
    assert record["status"] == "complete"
    assert record["data"]["source"] == "dir" and record["data"]["sample"] is False
    assert record["data"]["rows"] == {"test": 3000, "train": 2490, "validation": 277}
    assert record["params"]["trainable_method"] == 6 * 2 * (384 * 8 + 8 * 384)  # LoRA r=8 on W_q, W_v

    again = peftbench(*command, cwd=tmp_path)
    assert again.returncode == 0 and "skipped" in again.stderr

    table = peftbench("table", "lora_table2", "--results", str(tmp_path / "results"), "--model", "minilm-l6", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    ours = f"{100 * record['metrics']['best']['validation']['accuracy']:.1f} ± 0.0 (n=1)"
    (lora_row,) = [line for line in table.stdout.splitlines() if line.startswith("| RoBERTa-base LoRA ") and "ours" in line]
    assert ours in lora_row
    assert "86.6" in table.stdout  # the paper's RTE cell beside ours
