"""The classification format: a sequence-classification head over [text; text_pair].

Rows become token ids with the tokenizer's own pair template (``[CLS] a [SEP] b [SEP]`` for BERT,
``<s> a </s></s> b </s>`` for RoBERTa), truncated to ``max_length``; batches are padded on the
right to their longest row (dynamic padding). Predictions are the arg-max class, or the single
output for a regression task (STS-B).
"""

from __future__ import annotations

import torch

from peftbench.errors import UserError
from peftbench.formats.base import Format, pad

FEATURES = ("input_ids", "attention_mask", "token_type_ids")


def encode(rows: list[dict], tokenizer, max_length: int, regression: bool) -> list[dict]:
    """Token ids (and the label, where the split has labels) for every row."""
    texts = [row["text"] for row in rows]
    pairs = [row.get("text_pair") for row in rows]
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


def collate_tokens(features: list[dict], pad_token_id: int) -> dict:
    """The token fields of ``features`` padded on the right to the longest."""
    return {
        key: pad([f[key] for f in features], pad_token_id if key == "input_ids" else 0)
        for key in FEATURES
        if key in features[0]
    }


class ClassificationFormat(Format):
    name = "classification"

    @classmethod
    def check(cls, task, family: str) -> None:
        if task.kind != "classification":
            raise UserError(
                f"task {task.name} is {task.kind.replace('_', ' ')}; the classification format cannot run it "
                "(leave task.format unset to pick the task's own)"
            )

    @classmethod
    def head_size(cls, task) -> int:
        return task.num_labels

    def load_model(self, model_cfg):
        from peftbench.models.load import load_for_classification

        return load_for_classification(model_cfg, self.head_size(self.task), self.tokenizer)

    def encode(self, rows: list[dict]) -> list[dict]:
        return encode(rows, self.tokenizer, self.max_length, self.task.is_regression)

    def collate(self, features: list[dict], training: bool = False) -> dict:
        batch = collate_tokens(features, self.tokenizer.pad_token_id)
        if training:
            batch["labels"] = torch.tensor([f["labels"] for f in features])
        return batch

    def loss(self, model, batch: dict) -> torch.Tensor:
        return model(**batch).loss

    def predict_batch(self, model, batch: dict) -> list:
        logits = model(**batch).logits.float()
        return (logits[:, 0] if self.task.is_regression else logits.argmax(dim=-1)).tolist()
