"""Run records, their aggregation, and the papers' tables (DESIGN §3, "Run record", "Table spec").

Nothing here imports torch, transformers, datasets or numpy at import time: ``peftbench table``
must stay fast and work without the ML stack. ``load_runs`` (the Python API: every run as a
pandas DataFrame row) imports pandas when it is called.
"""

from peftbench.results.frame import load_runs

__all__ = ["load_runs"]
