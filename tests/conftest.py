"""Test environment: never reach the hub (a hub call offline can hang ~45 s), private HF cache."""

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="peftbench-hf-"))
os.environ.pop("PEFTBENCH_DATA", None)
