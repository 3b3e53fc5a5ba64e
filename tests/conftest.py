"""Test environment: never reach the hub (a hub call offline can hang ~45 s), private HF cache."""

import atexit
import os
import shutil
import tempfile

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
if "HF_HOME" not in os.environ:
    os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="peftbench-hf-")
    atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)
os.environ.pop("PEFTBENCH_DATA", None)
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test`: two workers on two cores, one thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # read when torch loads; the runs tests start inherit it

# Files whose tests start many runs as subprocesses go first, so that under two workers (a file
# per worker) the longest ones do not end up alone at the end.
FIRST = ("test_resume.py", "test_sweeps.py", "test_warm_start.py", "test_benchmark_runs.py", "test_cli.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: FIRST.index(item.path.name) if item.path.name in FIRST else len(FIRST))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny matrices: one torch thread is fastest, and several contend on a busy 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
