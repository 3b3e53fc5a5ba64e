"""The multiple-choice format for encoders: one score per (context, choice), softmax over choices.

Each choice is paired with the row's ``text`` through the tokenizer's pair template and scored by
a one-output head over the pooled representation; the scores of a row's choices go through a
softmax and cross-entropy against the right choice (Devlin et al. 2019, §4.4, the SWAG setup;
HF's ``*ForMultipleChoice``). Rows may have different numbers of choices (ReCoRD's candidate
entities): a row's missing choices score −∞. The head is the sequence-classification head with
one output, so every method sees the same modules as in classification.
"""

from __future__ import annotations

import torch

from peftbench.errors import UserError
from peftbench.formats.base import Format, scores_by_row
from peftbench.formats.classification import collate_tokens, encode


class MultipleChoiceFormat(Format):
    name = "multiple_choice"

    @classmethod
    def check(cls, task, family: str) -> None:
        if task.kind != "multiple_choice":
            raise UserError(
                f"task {task.name} has no choices to score; the multiple_choice format runs COPA-like tasks "
                "(leave task.format unset to pick the task's own)"
            )

    @classmethod
    def head_size(cls, task) -> int:
        return 1  # one score per (context, choice)

    def load_model(self, model_cfg):
        from peftbench.models.load import load_for_classification

        return load_for_classification(model_cfg, self.head_size(self.task), self.tokenizer)

    def encode(self, rows: list[dict]) -> list[dict]:
        features = []
        for row in rows:
            pairs = [{"text": row["text"], "text_pair": choice, "label": None} for choice in row["choices"]]
            feature = {"choices": encode(pairs, self.tokenizer, self.max_length, regression=False)}
            if row["label"] is not None:
                feature["labels"] = int(row["label"])
            features.append(feature)
        return features

    def length(self, feature: dict) -> int:
        return max(len(choice["input_ids"]) for choice in feature["choices"])

    def collate(self, features: list[dict], training: bool = False) -> dict:
        batch = collate_tokens([c for f in features for c in f["choices"]], self.tokenizer.pad_token_id)
        batch["sizes"] = [len(f["choices"]) for f in features]
        if training:
            batch["labels"] = torch.tensor([f["labels"] for f in features])
        return batch

    def scores(self, model, batch: dict) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k not in {"sizes", "labels"}}
        return scores_by_row(model(**inputs).logits[:, 0].float(), batch["sizes"])

    def loss(self, model, batch: dict) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(self.scores(model, batch), batch["labels"])

    def predict_batch(self, model, batch: dict) -> list:
        return self.scores(model, batch).argmax(dim=-1).tolist()
