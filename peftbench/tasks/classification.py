"""The classification format: a sequence-classification head over [text; text_pair].

Rows become token ids with the tokenizer's own pair template (``[CLS] a [SEP] b [SEP]`` for BERT,
``<s> a </s></s> b </s>`` for RoBERTa), truncated to ``max_length``; batches are padded on the
right to their longest row (dynamic padding). Predictions are the arg-max class, or the single
output for a regression task (STS-B).
"""

from __future__ import annotations

import torch

from peftbench.train.batching import EpochBatches, sorted_batches

FEATURES = ("input_ids", "attention_mask", "token_type_ids")


def encode(rows: list[dict], tokenizer, max_length: int, regression: bool) -> list[dict]:
    """Token ids (and the label, where the split has labels) for every row."""
    texts = [row["text"] for row in rows]
    pairs = [row["text_pair"] for row in rows]
    kwargs = {"truncation": True, "max_length": max_length}
    encoded = tokenizer(texts, pairs, **kwargs) if any(p is not None for p in pairs) else tokenizer(texts, **kwargs)
    keys = [key for key in FEATURES if key in encoded]
    features = []
    for i, row in enumerate(rows):
        feature = {key: encoded[key][i] for key in keys}
        if row["label"] is not None:
            feature["labels"] = float(row["label"]) if regression else int(row["label"])
        features.append(feature)
    return features


class Collator:
    """Pads a list of features to the longest one; labels become a float or long tensor."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict:
        width = max(len(f["input_ids"]) for f in features)
        batch = {}
        for key in FEATURES:
            if key in features[0]:
                fill = self.pad_token_id if key == "input_ids" else 0
                batch[key] = torch.tensor([f[key] + [fill] * (width - len(f[key])) for f in features])
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features])
        return batch


def train_loader(features: list[dict], batch_size: int, seed: int, collator: Collator):
    lengths = [len(f["input_ids"]) for f in features]
    return torch.utils.data.DataLoader(
        features, batch_sampler=EpochBatches(lengths, batch_size, seed), collate_fn=collator
    )


def predict(model, features: list[dict], batch_size: int, collator: Collator, regression: bool) -> list:
    """Predictions for every feature, in the original order (batches are sorted by length)."""
    device = next(model.parameters()).device
    predictions = [None] * len(features)
    for indices in sorted_batches([len(f["input_ids"]) for f in features], batch_size):
        batch = collator([{k: v for k, v in features[i].items() if k != "labels"} for i in indices])
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float()
        values = logits[:, 0] if regression else logits.argmax(dim=-1)
        for i, value in zip(indices, values.tolist()):
            predictions[i] = value
    return predictions
