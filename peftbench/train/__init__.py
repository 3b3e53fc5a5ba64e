"""The training loop, shared by every method (fairness: one pipeline for all)."""
