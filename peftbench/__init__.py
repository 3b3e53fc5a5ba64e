"""peftbench: reproduce the benchmark tables of the parameter-efficient fine-tuning literature."""

__version__ = "0.1.0"
