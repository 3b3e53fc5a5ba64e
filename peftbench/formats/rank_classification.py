"""Rank classification: the language model scores each label word (or choice) after the prompt.

For decoders and encoder-decoders (T-Few, Liu et al. 2022, §3.1 and §3.2; the verbalisers of
P-tuning, Liu et al. 2021, and PET). For a prompt x and candidates y⁽¹⁾…y⁽ᶜ⁾ (the task's
verbalisers, or the row's choices), the score of a candidate is its length-normalised
log-likelihood

    β(x, y) = (1/T) Σ_t log p(y_t | x, y_<t),

and the prediction is arg max_n β(x, y⁽ⁿ⁾) (for a regression read as text, STS-B, the value of the
word ranked first; its training target is the word of the value nearest the label). Training minimises the language-modelling loss of the
right candidate, L_LM = −β(x, y⁽gold⁾), and, as options (``task.unlikelihood_loss``,
``task.length_normalized_loss``), T-Few's

    L_UL = −Σ_{n≠gold} Σ_t log(1 − p(y⁽ⁿ⁾_t | x, y⁽ⁿ⁾_<t)) / Σ_{n≠gold} T⁽ⁿ⁾     (Eq. 2)
    L_LN = −log( exp β(x, y⁽gold⁾) / Σ_n exp β(x, y⁽ⁿ⁾) )                          (Eq. 3)

summed: L = L_LM + L_UL + L_LN. Decoders read ``prompt + " " + candidate`` as one sequence (the
prompt is cut from the left when too long, so its end, the question, stays); encoder-decoders
read the prompt in the encoder and the candidate as the decoder's target. The pretrained LM head
scores, so no head is added or trained.
"""

from __future__ import annotations

import inspect

import torch

from peftbench.errors import UserError
from peftbench.formats.base import Format, label_index, pad, scores_by_row


class RankClassificationFormat(Format):
    name = "rank_classification"
    trains_head = False

    def __init__(self, task, tokenizer, options: dict):
        super().__init__(task, tokenizer, options)
        self.seq2seq = options["family"] == "encoder_decoder"
        self.every_choice_in_training = options["unlikelihood_loss"] or options["length_normalized_loss"]
        self._keeps_logits = None

    @classmethod
    def check(cls, task, family: str) -> None:
        if family == "encoder":
            raise UserError("rank_classification needs a language model (decoder or encoder_decoder); "
                            "encoders run classification or multiple_choice")  # fmt: skip
        if task.prompt is None or not (task.verbalizers or task.kind == "multiple_choice"):
            raise UserError(
                f"task {task.name} has no prompt and label words to rank; run it with task.format=classification"
            )

    def load_model(self, model_cfg):
        from peftbench.models.load import load_language_model

        return load_language_model(model_cfg, self.tokenizer)

    def encode(self, rows: list[dict]) -> list[dict]:
        features = []
        for row in rows:
            choices = row["choices"] if self.task.kind == "multiple_choice" else self.task.verbalizers
            candidates = [self._candidate_ids(choice) for choice in choices]
            budget = self.max_length - (0 if self.seq2seq else max(len(c) for c in candidates))
            prompt = self.tokenizer(self.task.prompt(row))["input_ids"][-max(budget, 1) :]
            feature = {"prompt": prompt, "candidates": candidates}
            if row["label"] is not None:
                feature["labels"] = label_index(self.task, row["label"])
            features.append(feature)
        return features

    def _candidate_ids(self, text: str) -> list[int]:
        if self.seq2seq:
            return self.tokenizer(text)["input_ids"]  # the target, with the end-of-sequence token
        return self.tokenizer(" " + text, add_special_tokens=False)["input_ids"]

    def length(self, feature: dict) -> int:
        return len(feature["prompt"]) + max(len(c) for c in feature["candidates"])

    def collate(self, features: list[dict], training: bool = False) -> dict:
        """Every (row, candidate) pair as one sequence; in training only the right candidate
        unless a loss compares candidates."""
        only_gold = training and not self.every_choice_in_training
        prompts, targets, sizes = [], [], []
        for f in features:
            candidates = [f["candidates"][f["labels"]]] if only_gold else f["candidates"]
            prompts += [f["prompt"]] * len(candidates)
            targets += candidates
            sizes.append(len(candidates))
        pad_id = self.tokenizer.pad_token_id
        if self.seq2seq:
            batch = {"input_ids": pad(prompts, pad_id), "targets": pad(targets, -100)}
            batch["attention_mask"] = (pad([[1] * len(p) for p in prompts], 0)).long()
        else:
            sequences = [p + t for p, t in zip(prompts, targets)]
            batch = {
                "input_ids": pad(sequences, pad_id),
                "attention_mask": pad([[1] * len(s) for s in sequences], 0),
                "target_mask": pad([[0] * len(p) + [1] * len(t) for p, t in zip(prompts, targets)], 0),
                "prompt_floor": min(len(p) for p in prompts),
            }
        batch["sizes"] = sizes
        if training:
            batch["gold"] = torch.tensor([0 if only_gold else f["labels"] for f in features])
        return batch

    def token_logprobs(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """log p of every candidate token, [sequences, tokens], and the mask of real tokens."""
        if self.seq2seq:
            targets = batch["targets"]
            mask = targets != -100
            labels = targets.masked_fill(~mask, 0)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).logits
            return _gather(logits, labels), mask
        input_ids, width = batch["input_ids"], batch["input_ids"].shape[1]
        keep = width - batch["prompt_floor"] + 1  # logits from the last prompt token on
        kwargs = {"logits_to_keep": keep} if self._accepts_logits_to_keep(model) else {}
        logits = model(input_ids=input_ids, attention_mask=batch["attention_mask"], **kwargs).logits[:, -keep:]
        targets = input_ids[:, width - keep + 1 :]
        return _gather(logits[:, :-1], targets), batch["target_mask"][:, width - keep + 1 :].bool()

    def _accepts_logits_to_keep(self, model) -> bool:
        if self._keeps_logits is None:
            self._keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
        return self._keeps_logits

    def scores(self, logprobs: torch.Tensor, mask: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        """β(x, y) of every candidate, [rows, most candidates] (−∞ where a row has fewer)."""
        beta = (logprobs * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return scores_by_row(beta, sizes)

    def loss(self, model, batch: dict) -> torch.Tensor:
        logprobs, mask = self.token_logprobs(model, batch)
        beta = self.scores(logprobs, mask, batch["sizes"])
        gold = batch["gold"]
        loss = -beta.gather(1, gold[:, None]).mean()  # L_LM
        if self.options["length_normalized_loss"]:
            loss = loss + torch.nn.functional.cross_entropy(beta, gold)
        if self.options["unlikelihood_loss"]:
            loss = loss + _unlikelihood(logprobs, mask, batch["sizes"], gold)
        return loss

    def predict_batch(self, model, batch: dict) -> list:
        """The best-ranked candidate of each row (for a regression read as text, its value)."""
        logprobs, mask = self.token_logprobs(model, batch)
        ranked = self.scores(logprobs, mask, batch["sizes"]).argmax(dim=-1).tolist()
        values = self.task.verbalized_values
        return [values[index] for index in ranked] if values else ranked


def _gather(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(targets) under ``logits`` (same leading shape), in float32."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[..., None])[..., 0]


def _unlikelihood(logprobs: torch.Tensor, mask: torch.Tensor, sizes: list[int], gold: torch.Tensor) -> torch.Tensor:
    """T-Few's Eq. 2, averaged over rows: the wrong candidates' tokens pushed towards p = 0."""
    losses, start = [], 0
    for size, right in zip(sizes, gold.tolist()):
        wrong = [start + n for n in range(size) if n != right]
        start += size
        if wrong:
            p = logprobs[wrong].exp().clamp(max=1 - 1e-6)
            losses.append(-(torch.log1p(-p) * mask[wrong]).sum() / mask[wrong].sum().clamp(min=1))
    return torch.stack(losses).mean() if losses else logprobs.new_zeros(())
