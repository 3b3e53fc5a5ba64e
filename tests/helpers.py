"""Small builders shared by tests: tiny models from conf/model, with a method applied."""

from __future__ import annotations


def tiny_classifier(name: str, num_labels: int = 2, seed: int = 0):
    """A randomly initialised tiny model of ``conf/model/<name>.yaml`` with a classification head."""
    import torch

    from peftbench.config import model_config
    from peftbench.models.load import load_for_classification, load_tokenizer

    model_cfg = model_config(name)
    tokenizer = load_tokenizer(model_cfg)
    torch.manual_seed(seed)
    return load_for_classification(model_cfg, num_labels, tokenizer).eval(), tokenizer


def apply_method(model, method_node: dict, model_name: str):
    """Freeze ``model``, apply the method, unfreeze the head (as a run does); return the method."""
    from peftbench.config import model_config
    from peftbench.methods import build_method
    from peftbench.methods.base import attach
    from peftbench.models.anatomy import anatomy_of
    from peftbench.models.load import model_type

    method = build_method(method_node)
    attach(method, model, anatomy_of(model_type(model_config(model_name))))
    return method


def batch(tokenizer, texts=("a tiny test sentence", "another, somewhat longer test sentence here")):
    return tokenizer(list(texts), padding=True, return_tensors="pt")
