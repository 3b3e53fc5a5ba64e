"""Masked language modelling on blocks of raw text (encoders; the ``mlm`` task).

**Blocks.** As ``run_mlm.py`` prepares a text without ``--line_by_line`` (transformers and
adapter-hub/adapters ``examples/pytorch/language-modeling/run_mlm.py``): every row is tokenised
with its special tokens (``[CLS] … [SEP]``), the rows of each group of 1,000 (``datasets.map``'s
batch) are concatenated and cut into blocks of ``task.max_length`` tokens, and each group's
remainder shorter than a block is dropped. The special tokens are marked and never masked.

**Masking** (Devlin et al. 2019, §3.1 "Masked LM", and Appendix A.1): 15% of the non-special
tokens are chosen at random; a chosen token becomes [MASK] 80% of the time, a random token of the
vocabulary 10% of the time, and stays itself 10% of the time; the loss is the cross-entropy of the
original tokens at the chosen positions only (labels -100 elsewhere). ``mask_tokens`` draws exactly
what transformers' ``DataCollatorForLanguageModeling.torch_mask_tokens`` draws, in the same order
(Bernoulli(0.15) over maskable positions, Bernoulli(0.8) for [MASK], Bernoulli(0.1 / 0.2) for a
random token among the rest, ``randint(len(tokenizer))`` for the random tokens), so with the same
random state it masks the same positions the same way (tests check it). A training batch is
masked when its loss is computed, from torch's global generator (on the CPU), not when it is
collated: the trainer's loader collates a batch ahead, and the generator's state a checkpoint
saves is then the one the next step masks from, so a resumed run masks as an uninterrupted one.
Each evaluation draws the held-out blocks' masks from a generator seeded with ``EVAL_MASK_SEED``,
block by block in order, so every evaluation scores the same masked positions (``run_mlm.py``
redraws them each time).

The pretrained masked-LM head scores (no head is added; ``trains_head`` is False). A block's
prediction is (summed −log p of its masked tokens, their count, how many the arg-max gets right);
the task (``tasks/mlm.py``) turns them into loss, perplexity and accuracy. Logits are read
right-aligned, so a soft prompt put before the input shifts nothing.
"""

from __future__ import annotations

from itertools import chain

import torch

from peftbench.errors import UserError
from peftbench.formats.base import Format, pad

IGNORE = -100
MASK_PROBABILITY = 0.15  # BERT's: 15% of the tokens are predicted
MASK_REPLACE, RANDOM_REPLACE = 0.8, 0.1  # of those, [MASK] 80%, a random token 10%, unchanged 10%
GROUP = 1000  # rows concatenated together before cutting blocks (datasets.map's default batch)
EVAL_MASK_SEED = 0


def mask_tokens(input_ids: torch.Tensor, special: torch.Tensor, mask_id: int, vocab_size: int,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking of a [batch, length] batch: the model's inputs and the labels (-100 where no
    token is predicted); ``special`` marks positions never masked (special and padding tokens)."""
    labels = input_ids.clone()
    chance = torch.full(labels.shape, MASK_PROBABILITY)
    chance.masked_fill_(special, value=0.0)
    chosen = torch.bernoulli(chance, generator=generator).bool()
    labels[~chosen] = IGNORE
    inputs = input_ids.clone()
    replaced = torch.bernoulli(torch.full(labels.shape, MASK_REPLACE), generator=generator).bool() & chosen
    inputs[replaced] = mask_id
    random_share = RANDOM_REPLACE / (1 - MASK_REPLACE)  # of the chosen tokens not replaced by [MASK]
    randomised = torch.bernoulli(torch.full(labels.shape, random_share), generator=generator).bool() & chosen & ~replaced
    words = torch.randint(vocab_size, labels.shape, dtype=torch.long, generator=generator)
    inputs[randomised] = words[randomised]
    return inputs, labels


class MaskedLMFormat(Format):
    name = "masked_lm"
    trains_head = False

    def __init__(self, task, tokenizer, options: dict):
        super().__init__(task, tokenizer, options)
        if tokenizer.mask_token is None:
            raise UserError(f"{type(tokenizer).__name__} has no mask token, which masked language modelling needs; "
                            "pick a masked language model (BERT, XLM-R)")  # fmt: skip

    @classmethod
    def check(cls, task, family: str) -> None:
        if task.kind != "masked_lm":
            raise UserError(f"task {task.name} is not raw text; the masked_lm format runs task=mlm "
                            "(leave task.format unset to pick the task's own)")  # fmt: skip
        if family != "encoder":
            raise UserError(f"task {task.name} trains a masked language model, which needs an encoder; "
                            "pick one (e.g. model=xlm-roberta-base or model=mbert)")  # fmt: skip

    def load_model(self, model_cfg):
        from peftbench.models.load import load_language_model

        return load_language_model(model_cfg, self.tokenizer)

    def encode(self, rows: list[dict]) -> list[dict]:
        """Blocks of ``max_length`` tokens, each with its special-token marks."""
        encoded = self.tokenizer([row["text"] for row in rows], return_special_tokens_mask=True)
        features = []
        for start in range(0, len(rows), GROUP):
            ids = list(chain(*encoded["input_ids"][start : start + GROUP]))
            special = list(chain(*encoded["special_tokens_mask"][start : start + GROUP]))
            for begin in range(0, len(ids) // self.max_length * self.max_length, self.max_length):
                end = begin + self.max_length
                features.append({"input_ids": ids[begin:end], "special_tokens_mask": special[begin:end]})
        if rows and not features:
            raise UserError(f"{len(rows)} lines of text hold fewer than task.max_length={self.max_length} tokens, "
                            "so no block can be cut from them; give more text or lower task.max_length")  # fmt: skip
        return features

    def collate(self, features: list[dict], training: bool = False) -> dict:
        """Training: the blocks with their special-token marks (``mask`` masks them at the step);
        evaluation: the blocks as ``predict`` masked them."""
        if not training:
            return {
                "input_ids": pad([f["masked_ids"] for f in features], self.tokenizer.pad_token_id),
                "attention_mask": pad([[1] * len(f["input_ids"]) for f in features], 0),
                "labels": pad([f["labels"] for f in features], IGNORE),
            }
        return {
            "input_ids": pad([f["input_ids"] for f in features], self.tokenizer.pad_token_id),
            "attention_mask": pad([[1] * len(f["input_ids"]) for f in features], 0),
            "special": pad([f["special_tokens_mask"] for f in features], 1).bool(),  # padding is never masked
        }

    def mask(self, batch: dict) -> dict:
        """A collated training batch masked with torch's global generator (as the collator masks it)."""
        inputs, labels = mask_tokens(batch["input_ids"].cpu(), batch["special"].cpu(), self.tokenizer.mask_token_id,
                                     len(self.tokenizer))  # fmt: skip
        device = batch["input_ids"].device
        return {"input_ids": inputs.to(device), "attention_mask": batch["attention_mask"], "labels": labels.to(device)}

    def predict(self, model, features: list[dict], batch_size: int) -> list:
        """Each block masked with the evaluation generator (block by block, in order), then scored."""
        generator = torch.Generator().manual_seed(EVAL_MASK_SEED)
        masked = []
        for feature in features:
            ids, special = torch.tensor([feature["input_ids"]]), torch.tensor([feature["special_tokens_mask"]]).bool()
            inputs, labels = mask_tokens(ids, special, self.tokenizer.mask_token_id, len(self.tokenizer), generator)
            masked.append({**feature, "masked_ids": inputs[0].tolist(), "labels": labels[0].tolist()})
        return super().predict(model, masked, batch_size)

    @staticmethod
    def _token_losses(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """−log p of each labelled token, [batch, tokens] (0 elsewhere), and the logits."""
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logits = logits[:, -batch["input_ids"].shape[1] :].float()
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch["labels"], ignore_index=IGNORE,
                                                   reduction="none")  # fmt: skip
        return losses, logits

    def loss(self, model, batch: dict) -> torch.Tensor:
        batch = self.mask(batch)
        losses, _ = self._token_losses(model, batch)
        return losses.sum() / (batch["labels"] != IGNORE).sum()

    def predict_batch(self, model, batch: dict) -> list:
        losses, logits = self._token_losses(model, batch)
        labelled = batch["labels"] != IGNORE
        correct = (logits.argmax(dim=-1) == batch["labels"]) & labelled
        return list(zip(losses.sum(-1).tolist(), labelled.sum(-1).tolist(), correct.sum(-1).tolist()))
