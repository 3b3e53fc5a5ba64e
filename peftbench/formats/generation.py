"""Generation: train on (input → reference) pairs, decode with beam search, score the texts.

For decoders the sequence is the task's prompt, then the reference and the end-of-sequence token;
the loss is the cross-entropy of the reference tokens only (with label smoothing ε as an option,
``task.label_smoothing``: the target puts 1 − ε on the token and ε spread over the vocabulary, as
the LoRA paper's E2E runs train with ε = 0.1); a prompt too long for ``task.max_length`` loses its
beginning, so that the reference still follows its end. Encoder-decoders read the prompt in the
encoder and the reference as the decoder's target; a prompt too long loses its end, as T5's
pipeline cuts its inputs (seqio keeps the first tokens, then </s>), so that a question before its
context survives (MRQA). Decoding is ``generate`` with the task's beam search
settings (``task.num_beams``, ``length_penalty``, ``no_repeat_ngram_size``, ``max_new_tokens``;
the LoRA paper's E2E setup: 10 beams, length penalty 0.9, no repeated 4-gram), once per distinct
input (``group``): every row of a group gets that output, and the task scores it against the
group's references.
"""

from __future__ import annotations

import torch

from peftbench.errors import UserError
from peftbench.formats.base import Format, pad


class GenerationFormat(Format):
    name = "generation"
    trains_head = False

    def __init__(self, task, tokenizer, options: dict):
        super().__init__(task, tokenizer, options)
        self.seq2seq = options["family"] == "encoder_decoder"
        self.eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id

    @classmethod
    def check(cls, task, family: str) -> None:
        if task.kind != "generation":
            raise UserError(f"task {task.name} has labels to pick, not text to write; leave task.format unset")
        if family == "encoder":
            raise UserError(
                f"task {task.name} generates text: it needs a decoder or encoder_decoder model; "
                "pick one (e.g. model=smollm2-135m or model=t5-base)"
            )

    def load_model(self, model_cfg):
        from peftbench.models.load import load_language_model

        return load_language_model(model_cfg, self.tokenizer)

    def encode(self, rows: list[dict]) -> list[dict]:
        features = []
        for row in rows:
            prompt = self.tokenizer(self.task.prompt(row))["input_ids"]
            if self.seq2seq:
                target = self.tokenizer(row["label"])["input_ids"]
            else:
                target = self.tokenizer(" " + row["label"], add_special_tokens=False)["input_ids"] + [self.eos]
            if self.seq2seq:  # the encoder's input cut at its end, its last token (</s>) kept, as T5 cuts it
                prompt = prompt if len(prompt) <= self.max_length else prompt[: max(self.max_length - 1, 0)] + prompt[-1:]
            else:  # the decoder continues the prompt: its end stays, the reference fits after it
                prompt = prompt[-max(self.max_length - len(target), 1) :]
            features.append({"prompt": prompt, "target": target, "group": row.get("group")})
        return features

    def length(self, feature: dict) -> int:
        return len(feature["prompt"]) + len(feature["target"])

    def collate(self, features: list[dict], training: bool = False) -> dict:
        pad_id = self.tokenizer.pad_token_id
        if not training:  # prompts alone, padded on the left so that generation continues each one
            prompts = [f["prompt"] for f in features]
            return {"input_ids": pad(prompts, pad_id, left=not self.seq2seq),
                    "attention_mask": pad([[1] * len(p) for p in prompts], 0, left=not self.seq2seq)}  # fmt: skip
        if self.seq2seq:
            prompts = [f["prompt"] for f in features]
            return {
                "input_ids": pad(prompts, pad_id),
                "attention_mask": pad([[1] * len(p) for p in prompts], 0),
                "labels": pad([f["target"] for f in features], -100),
            }
        sequences = [f["prompt"] + f["target"] for f in features]
        return {
            "input_ids": pad(sequences, pad_id),
            "attention_mask": pad([[1] * len(s) for s in sequences], 0),
            "labels": pad([[-100] * len(f["prompt"]) + f["target"] for f in features], -100),
        }

    def loss(self, model, batch: dict) -> torch.Tensor:
        labels = batch["labels"]
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        if self.seq2seq:
            logits = model(**inputs, labels=labels.clamp(min=0)).logits
        else:
            logits = model(**inputs).logits[:, -labels.shape[1] :]  # a soft prompt lengthens the output
            # Position t predicts token t+1: shift the labels, not the logits (a sliced copy of the
            # logits would cost batch x length x vocabulary floats), as transformers' own loss does.
            labels = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=-100)
        return torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
            ignore_index=-100, label_smoothing=self.options["label_smoothing"],
        )  # fmt: skip

    def predict(self, model, features: list[dict], batch_size: int) -> list:
        """One generation per distinct group (input), copied to every row of the group."""
        first: dict = {}
        for i, feature in enumerate(features):
            first.setdefault(feature["group"] if feature["group"] is not None else i, i)
        unique = [features[i] for i in first.values()]
        texts = super().predict(model, unique, batch_size)
        by_group = dict(zip(first, texts))
        return [by_group[f["group"] if f["group"] is not None else i] for i, f in enumerate(features)]

    def predict_batch(self, model, batch: dict) -> list:
        options = self.options
        output = model.generate(
            **batch,
            num_beams=options["num_beams"], length_penalty=options["length_penalty"],
            no_repeat_ngram_size=options["no_repeat_ngram_size"], max_new_tokens=options["max_new_tokens"],
            early_stopping=options["num_beams"] > 1, do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos,
        )  # fmt: skip
        new = output if self.seq2seq else output[:, batch["input_ids"].shape[1] :]
        return [text.strip() for text in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
