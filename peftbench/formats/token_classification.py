"""Token classification: one tag per word from a head over each token (NER; encoders).

Devlin et al. (2019, §5.3, CoNLL-2003 NER): "we use the representation of the first sub-token as the
input to the token-level classifier over the NER label set". As transformers' token-classification
example (``run_ner.py``, ``tokenize_and_align_labels`` with ``label_all_tokens=False``) encodes a
sentence: its words are tokenised as pre-split words (``is_split_into_words``), truncated to
``task.max_length``; each word's label stands at its first sub-token and every other position
(special tokens, later sub-tokens) holds -100, which the cross-entropy of
``*ForTokenClassification`` ignores. Batches are padded on the right (labels with -100).

The loss is that cross-entropy, the mean over the batch's labelled positions; a word's prediction
is the arg-max tag at its first sub-token. ``run_ner.py`` scores only the words
that kept a first sub-token; here every gold word is scored, and a word truncation cut off (or
that tokenised to nothing) is predicted ``O``, the first tag, so no entity of the gold sentence
goes unscored.
"""

from __future__ import annotations

import torch

from peftbench.errors import UserError
from peftbench.formats.base import Format, pad
from peftbench.formats.classification import collate_tokens

IGNORE = -100


class TokenClassificationFormat(Format):
    name = "token_classification"

    @classmethod
    def check(cls, task, family: str) -> None:
        if task.kind != "token_classification":
            raise UserError(f"task {task.name} has no tags per word; the token_classification format runs NER "
                            "(leave task.format unset to pick the task's own)")  # fmt: skip
        if family != "encoder":
            raise UserError(f"task {task.name} tags words with a head over each token, which needs an encoder; "
                            "pick one (e.g. model=xlm-roberta-base or model=mbert)")  # fmt: skip

    def load_model(self, model_cfg):
        from peftbench.models.load import load_for_token_classification

        return load_for_token_classification(model_cfg, self.task.num_labels, self.tokenizer)

    def encode(self, rows: list[dict]) -> list[dict]:
        encoded = self.tokenizer([row["tokens"] for row in rows], is_split_into_words=True, truncation=True,
                                 max_length=self.max_length)  # fmt: skip
        keys = [key for key in ("input_ids", "attention_mask", "token_type_ids") if key in encoded]
        features = []
        for index, row in enumerate(rows):
            feature = {key: encoded[key][index] for key in keys}
            first = [None] * len(row["tokens"])  # each word's first sub-token, None where it has none
            previous = None
            for position, word in enumerate(encoded.word_ids(index)):
                if word is not None and word != previous:
                    first[word] = position
                previous = word
            feature["first"] = first
            if row["label"] is not None:
                labels = [IGNORE] * len(feature["input_ids"])
                for word, position in enumerate(first):
                    if position is not None:
                        labels[position] = row["label"][word]
                feature["labels"] = labels
            features.append(feature)
        return features

    def collate(self, features: list[dict], training: bool = False) -> dict:
        batch = collate_tokens(features, self.tokenizer.pad_token_id)
        if training:
            batch["labels"] = pad([f["labels"] for f in features], IGNORE)
        else:
            batch["first"] = [f["first"] for f in features]
        return batch

    @staticmethod
    def _logits(model, batch: dict) -> torch.Tensor:
        """The head's logits at the input's tokens, [batch, tokens, tags]: read right-aligned, so
        that a soft prompt put before the input (prompt tuning, P-tuning) shifts nothing."""
        inputs = {key: value for key, value in batch.items() if key not in ("labels", "first")}
        return model(**inputs).logits[:, -batch["input_ids"].shape[1] :]

    def loss(self, model, batch: dict) -> torch.Tensor:
        logits = self._logits(model, batch)
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=IGNORE)

    def predict_batch(self, model, batch: dict) -> list:
        tags = self._logits(model, batch).argmax(dim=-1).tolist()
        return [[0 if position is None else row[position] for position in words] for row, words in zip(tags, batch["first"])]
