"""Run records, their aggregation, and the papers' tables (DESIGN §3, "Run record", "Table spec").

Nothing here imports torch, transformers, datasets or numpy: ``peftbench table`` must stay fast
and work without the ML stack.
"""
