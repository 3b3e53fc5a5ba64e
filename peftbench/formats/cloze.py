"""Cloze: a masked language model fills the prompt's [MASK] with a label word (PET; P-tuning on BERT).

For encoders with a masked-LM head: PET (Schick & Schütze, EACL 2021, "Exploiting Cloze Questions
for Few Shot Text Classification and Natural Language Inference"; timoschick/pet) and P-tuning (Liu
et al., "GPT Understands, Too", arXiv 2103.10385), which runs BERT on SuperGLUE this way
(THUDM/P-tuning ``PT-Fewshot``). The row is the task's prompt with the tokenizer's mask token where
the answer goes: after ``task.prompt(row)`` (``"… Answer: [MASK]"``), or where the prompt already
holds it (P-tuning's templates write the pattern's [MASK] and the words after it,
``peftbench.methods.templated_prompt``). The pretrained MLM head scores; no head is added.

**Label words of one token each** (Yes / No / Maybe): PET's ``convert_mlm_logits_to_cls_logits``
(``PT-Fewshot/data_utils/task_pvps.py``). The class logits are the MLM's logits z at the [MASK] of
the label words' tokens, s(y | x) = z_[MASK](v(y)); the prediction is arg max_y s(y | x), and
training minimises the cross-entropy over them, L = −log softmax_y s(y | x)[gold]
(``PT-Fewshot/pet/wrapper.py``, ``mlm_train_step``).

**Answers of several tokens** (COPA's choices; label words that split, RAFT's or STS-B's "3.8"):
PET's multi-mask helpers (timoschick/pet ``pet/task_helpers.py``: ``MultiMaskTaskHelper``, and
``CopaTaskHelper``, which P-tuning's ``PT-Fewshot/pet/task_helpers.py`` keeps for COPA):

- evaluation: a candidate of k tokens is scored on the input with k masks (``trim_input_ids``),
  filled one at a time, most confident first: at each step the remaining mask where the candidate's
  token is most probable takes it and adds its log-probability (the helpers' ``default`` decoding),
  score(y) = Σ_t log p(y_{π_t} | x, y_{π_1}, …, y_{π_{t−1}}); the prediction is the best candidate;
- training: the input holds as many masks as the row's longest candidate (``CopaPVP``: ``num_masks``);
  each candidate's tokens stand at the first of them and one forward pass gives their token
  cross-entropies. Two choices (COPA): one hinge on the batch's token-averaged cross-entropies,
  L = max(0, 1 + CE(right) − CE(wrong)) (``CopaTaskHelper.train_step``); otherwise, per row,
  L = Σ_{wrong w} max(0, 1 + L(right) − L(w)) with L(y) the summed token cross-entropy of y,
  averaged over rows (``MultiMaskTaskHelper.train_step``).

A regression read as text (STS-B) ranks the words of its values and predicts the value of the best
one; its training answer is the word of the value nearest the label (as ``rank_classification``).
A row too long for ``task.max_length`` loses the beginning of its text, so that the question and
the masks stay (P-tuning's templates fit themselves first, shortening their longest field as PET's
``truncate``). The logits are read right-aligned, so a soft prompt put before the input (P-tuning
with ``method.template=false``, prompt tuning) shifts nothing.

Simplifications against the official code: evaluation runs in batches (the helpers take one row at
a time; the scores are the same); P-tuning's WSC helper has the model write the referent itself
(``WscTaskHelper``: masks for its tokens plus 0–3 extra in training, the generated words compared
with the referent's at evaluation), while SuperGLUE's WSC rows here are yes/no questions about a
given referent, so WSC reads its template (``tasks/ptuning_templates.py``) with the task's No/Yes at
one mask, as a one-token task.
"""

from __future__ import annotations

import torch

from peftbench.errors import UserError
from peftbench.formats.base import Format, label_index, pad, scores_by_row

IGNORE = -100  # a target position that is no candidate's token


class ClozeFormat(Format):
    name = "cloze"
    trains_head = False
    cache_features = False  # ``encode`` sets the label words' ids on the format

    def __init__(self, task, tokenizer, options: dict):
        super().__init__(task, tokenizer, options)
        if tokenizer.mask_token is None:
            raise UserError(f"{type(tokenizer).__name__} has no mask token, which the cloze format fills; "
                            "pick a masked language model (BERT, RoBERTa) or leave task.format unset")  # fmt: skip
        self.mask_id = tokenizer.mask_token_id
        probe = tokenizer("x")["input_ids"]
        self.lead = probe.index(tokenizer("x", add_special_tokens=False)["input_ids"][0])  # special tokens before the text
        self.one_token = False  # set by ``encode`` from the task as the method left it (P-tuning's label words)
        self.label_ids: torch.Tensor | None = None

    @classmethod
    def check(cls, task, family: str) -> None:
        if family != "encoder":
            raise UserError("the cloze format needs a masked language model (an encoder); decoders and "
                            "encoder_decoders rank label words: leave task.format unset (rank_classification)")  # fmt: skip
        if task.prompt is None or not (task.verbalizers or task.kind == "multiple_choice"):
            raise UserError(
                f"task {task.name} has no prompt and label words to fill a [MASK] with; run it with task.format=classification"
            )

    def load_model(self, model_cfg):
        from peftbench.models.load import load_language_model

        return load_language_model(model_cfg, self.tokenizer)

    # -- features -----------------------------------------------------------------------------

    def _answer_ids(self, text: str) -> list[int]:
        """A candidate's tokens as they follow the mask's space (PET's ``get_verbalization_ids``)."""
        return self.tokenizer(" " + text, add_special_tokens=False)["input_ids"]

    def _choices(self, row: dict) -> list[list[int]]:
        """The row's choices as the prompt's [MASK] stands for them (``Task.choice_answer``), as tokens."""
        write = self.task.choice_answer or (lambda choice: choice)
        return [self._answer_ids(write(choice)) for choice in row["choices"]]

    def encode(self, rows: list[dict]) -> list[dict]:
        words = [self._answer_ids(word) for word in self.task.verbalizers]
        self.one_token = self.task.kind != "multiple_choice" and all(len(ids) == 1 for ids in words)
        self.label_ids = torch.tensor([ids[0] for ids in words]) if self.one_token else None
        features = []
        for row in rows:
            candidates = self._choices(row) if self.task.kind == "multiple_choice" else words
            masks = max(len(ids) for ids in candidates)
            input_ids, at = self._with_masks(self.task.prompt(row), masks)
            feature = {"input_ids": input_ids, "at": at, "masks": masks, "candidates": candidates}
            if row["label"] is not None:
                feature["labels"] = label_index(self.task, row["label"])
            features.append(feature)
        return features

    def _with_masks(self, prompt: str, masks: int) -> tuple[list[int], int]:
        """The prompt's ids with ``masks`` masks where its (last) mask token is, or after it; cut
        from the beginning of the text to ``max_length``. Returns the ids and the first mask's place."""
        mask = self.tokenizer.mask_token
        ids = self.tokenizer(prompt if mask in prompt else f"{prompt} {mask}")["input_ids"]
        at = len(ids) - 1 - ids[::-1].index(self.mask_id)
        ids[at : at + 1] = [self.mask_id] * masks
        over = len(ids) - self.max_length
        if over > at - self.lead:
            raise UserError(f"task.max_length={self.max_length} cannot hold {self.task.name}'s answer masks after its "
                            "prompt; raise task.max_length")  # fmt: skip
        if over > 0:
            del ids[self.lead : self.lead + over]
            at -= over
        return ids, at

    def collate(self, features: list[dict], training: bool = False) -> dict:
        """The rows padded on the right; in training, what the loss compares (the labels, or every
        candidate's tokens at the row's masks), in evaluation the rows as they are for decoding."""
        batch = {
            "input_ids": pad([f["input_ids"] for f in features], self.tokenizer.pad_token_id),
            "attention_mask": pad([[1] * len(f["input_ids"]) for f in features], 0),
            "at": torch.tensor([f["at"] for f in features]),
            "sizes": [len(f["candidates"]) for f in features],
        }
        if training:
            batch["gold"] = torch.tensor([f["labels"] for f in features])
            if not self.one_token:
                width = max(f["masks"] for f in features)
                batch["targets"] = pad([c + [IGNORE] * (width - len(c)) for f in features for c in f["candidates"]], IGNORE)
                batch["owner"] = torch.tensor([i for i, f in enumerate(features) for _ in f["candidates"]])
        elif not self.one_token:
            batch["rows"] = [(f["input_ids"], f["at"], f["masks"], f["candidates"]) for f in features]
        return batch

    # -- scores -------------------------------------------------------------------------------

    @staticmethod
    def _logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The MLM's logits and how many positions a prepended soft prompt put before the input."""
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits, logits.shape[1] - input_ids.shape[1]

    def label_logits(self, model, batch: dict) -> torch.Tensor:
        """One-token label words: the MLM's logits of each word at the row's mask, [rows, labels]."""
        logits, offset = self._logits(model, batch["input_ids"], batch["attention_mask"])
        at_mask = logits[torch.arange(logits.shape[0], device=logits.device), batch["at"] + offset]
        return at_mask[:, self.label_ids.to(logits.device)].float()

    def candidate_token_losses(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """−log p of every candidate's tokens at its row's first masks in one forward pass,
        [candidates, most masks], and the mask of real tokens."""
        logits, offset = self._logits(model, batch["input_ids"], batch["attention_mask"])
        targets = batch["targets"]
        width = targets.shape[1]
        positions = (batch["at"][:, None] + offset + torch.arange(width, device=targets.device)).clamp(max=logits.shape[1] - 1)
        at_masks = logits.gather(1, positions[..., None].expand(-1, -1, logits.shape[-1]))
        logprobs = torch.log_softmax(at_masks.float(), dim=-1)
        owner = batch["owner"]
        real = targets != IGNORE
        picked = logprobs[owner[:, None], torch.arange(width, device=targets.device)[None], targets.clamp(min=0)]
        return -picked * real, real

    def loss(self, model, batch: dict) -> torch.Tensor:
        gold = batch["gold"]
        if self.one_token:
            return torch.nn.functional.cross_entropy(self.label_logits(model, batch), gold)
        losses, real = self.candidate_token_losses(model, batch)
        starts = torch.tensor([0, *batch["sizes"][:-1]], device=gold.device).cumsum(0)
        right = torch.zeros(losses.shape[0], dtype=torch.bool, device=gold.device)
        right[starts + gold] = True
        if self.task.kind == "multiple_choice" and set(batch["sizes"]) == {2}:  # CopaTaskHelper
            margin = 1 + losses[right].sum() / real[right].sum() - losses[~right].sum() / real[~right].sum()
            return margin.clamp(min=0)
        summed = scores_by_row(losses.sum(-1), batch["sizes"])  # MultiMaskTaskHelper
        present = torch.isfinite(summed)
        summed = summed.masked_fill(~present, 0)
        hinge = (1 + summed.gather(1, gold[:, None]) - summed).clamp(min=0)
        wrong = present & (torch.arange(summed.shape[1], device=gold.device)[None] != gold[:, None])
        return (hinge * wrong).sum(-1).mean()

    def decoded_scores(self, model, batch: dict) -> torch.Tensor:
        """Each candidate's summed log-probability, its masks filled most confident first,
        [rows, most candidates] (−∞ where a row has fewer)."""
        device = batch["input_ids"].device
        sequences, pending = [], []
        for input_ids, at, masks, candidates in batch["rows"]:
            for tokens in candidates:
                sequences.append(input_ids[: at + len(tokens)] + input_ids[at + masks :])
                pending.append(dict(zip(range(at, at + len(tokens)), tokens)))
        scores = torch.zeros(len(sequences))
        while active := [s for s, left in enumerate(pending) if left]:
            rows = [sequences[s] for s in active]
            logits, offset = self._logits(
                model, pad(rows, self.tokenizer.pad_token_id).to(device), pad([[1] * len(r) for r in rows], 0).to(device)
            )  # fmt: skip
            for row, s in enumerate(active):
                places, tokens = list(pending[s]), list(pending[s].values())
                logprobs = torch.log_softmax(logits[row, [offset + p for p in places]].float(), dim=-1)
                chances = logprobs[torch.arange(len(places)), tokens]
                best = int(chances.argmax())
                scores[s] += chances[best].cpu()
                sequences[s][places[best]] = tokens[best]
                del pending[s][places[best]]
        return scores_by_row(scores, batch["sizes"])

    def predict_batch(self, model, batch: dict) -> list:
        """The best candidate of each row (for a regression read as text, its value)."""
        scores = self.label_logits(model, batch) if self.one_token else self.decoded_scores(model, batch)
        ranked = scores.argmax(dim=-1).tolist()
        values = self.task.verbalized_values
        return [values[index] for index in ranked] if values else ranked
