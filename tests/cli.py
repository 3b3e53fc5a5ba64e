"""Running the real ``peftbench`` command in a subprocess, offline, in a given folder."""

from __future__ import annotations

import os
import subprocess
import sys


def offline_env() -> dict:
    """This process's environment without PEFTBENCH_DATA, with every hub access switched off."""
    env = {k: v for k, v in os.environ.items() if k != "PEFTBENCH_DATA"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def peftbench(*args: str, cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "peftbench", *args],
        cwd=cwd, env=offline_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
