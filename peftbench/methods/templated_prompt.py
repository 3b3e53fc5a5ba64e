"""A soft prompt placed by a template: P-tuning's prompt tokens among the input's words.

P-tuning (Liu et al., arXiv 2103.10385, §3) maps a template T = {[P_0:i], x, [P_i+1:m], y} to
{h_0, …, h_i, e(x), h_i+1, …, h_m, e(y)}: its prompt vectors stand at the template's places, not
before the input. The task's template (``Task.ptuning_template``, ``tasks/ptuning_templates.py``:
the official code's FewGLUE patterns, with their anchor words) becomes the row's prompt text with
a *marker* token at each prompt place; the model's hook then swaps the word embeddings at the
markers for the prompt vectors, in order, as the official code does with its ``block_flag``
(THUDM/P-tuning ``PT-Fewshot/pet/wrapper.py``, ``generate_default_inputs``: the pattern's "the"
at each flagged place, its embedding replaced). The input keeps its length, its mask and its
positions: nothing is prepended.

The marker is a token no text produces: the tokenizer's mask token (BERT-style vocabularies), else
one of its other special tokens (T5's sentinels), else its unknown token (GPT-2's <|endoftext|>,
which pads only where the attention mask is 0: markers are looked for where it is 1). Under cloze
(an encoder read as a masked LM) the mask token is the answer's, written where the pattern's [MASK]
is, followed by the pattern's words after it; the prompt places are then marked by the pad token,
told apart from padding by the attention mask the same way. The n
prompt tokens share the template's k places in order, the first n mod k places one more
(``method.length`` = 1 with the official one-place patterns puts one token there, as the code's
``--pattern_ids 1``). The template's text is shortened, from the end of its longest shortenable
field (PET's ``truncate``), until the prompt and the longest answer fit ``task.max_length``, so the
format never cuts a marker away (under cloze, the answer's masks included).

A batch without markers (a task without a template, an encoder's classification input, which
reads no prompt text) takes the prompt before its input as ``soft_prompt.SoftPrompt`` does.
"""

from __future__ import annotations

import dataclasses

import torch

from peftbench.errors import UserError
from peftbench.methods import soft_prompt
from peftbench.methods.icl import answers, token_count


def marker(tokenizer, cloze: bool = False) -> str:
    """The token that stands for a prompt place in the template's text (one id, never from text);
    ``cloze``: never the mask token, which is the answer's there."""
    common = {tokenizer.pad_token, tokenizer.eos_token, tokenizer.bos_token, tokenizer.unk_token,
              getattr(tokenizer, "cls_token", None), getattr(tokenizer, "sep_token", None)}  # fmt: skip
    others = [t for t in tokenizer.all_special_tokens if t not in common]
    first = [tokenizer.pad_token] if cloze else [getattr(tokenizer, "mask_token", None), *others]
    for token in [*first, tokenizer.unk_token, tokenizer.eos_token]:
        if token and len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1:
            return token
    raise UserError(f"{type(tokenizer).__name__} has no special token to mark P-tuning's prompt places; "
                    "set method.template=false to put the prompt before the input")  # fmt: skip


def shares(tokens: int, places: int) -> list[int]:
    """How many of ``tokens`` prompt tokens go to each of ``places`` places, in order."""
    return [tokens // places + (i < tokens % places) for i in range(places)]


def templated_task(task, length: int, tokenizer, max_length: int, cloze: bool = False):
    """``task`` whose prompt is its P-tuning template (and whose label words are the template's);
    ``cloze``: the whole pattern, the mask token at its [MASK] and the words after it, and its
    choices as the pattern's [MASK] stands for them."""
    template = task.ptuning_template
    token = marker(tokenizer, cloze)
    sizes = shares(length, template.slots)
    shaped = dataclasses.replace(task, verbalizers=template.verbalizers or task.verbalizers,
                                 choice_answer=template.answer if cloze else task.choice_answer)  # fmt: skip

    def prompt(row: dict) -> str:
        values, places = template.fields(row), iter(sizes)
        pieces, shortenable = [], []
        for kind, value in template.parts:
            if kind == "prompt":
                pieces.append(token * next(places))
            elif kind == "sep":
                pieces.append(getattr(tokenizer, "sep_token", None) or "")
            elif kind == "anchor":
                pieces.append(value)
            else:
                shortenable += [len(pieces)] if kind == "text" else []
                pieces.append(values[value])
        if cloze:  # one mask stands in the text for the answer's tokens
            pieces += [tokenizer.mask_token, template.tail]
        budget = max_length - max(token_count(tokenizer, " " + a) for a in answers(shaped, row)) + (1 if cloze else 0)
        return _fitted(pieces, shortenable, tokenizer, budget, task.name)

    return dataclasses.replace(shaped, prompt=prompt)


def _fitted(pieces: list[str], shortenable: list[int], tokenizer, budget: int, task: str) -> str:
    """The pieces joined, the longest shortenable one cut from its end until the text fits ``budget``."""
    for _ in range(8):
        text = " ".join(piece for piece in pieces if piece)
        over = len(tokenizer(text)["input_ids"]) - budget
        if over <= 0:
            return text
        longest = max(shortenable, key=lambda i: token_count(tokenizer, pieces[i]), default=None)
        ids = tokenizer(pieces[longest], add_special_tokens=False)["input_ids"] if longest is not None else []
        if not ids:
            break
        pieces[longest] = tokenizer.decode(ids[: max(len(ids) - over, 0)]).strip()
    raise UserError(f"task.max_length cannot hold {task}'s P-tuning template with its prompt tokens and answer; "
                    "raise task.max_length")  # fmt: skip


class TemplatedSoftPrompt(soft_prompt.SoftPrompt):
    """A soft prompt that fills the template's marked places of its input, where there are any."""

    marker_id: int | None = None  # set when the run's prompts are written from templates

    def places(self, args, kwargs) -> torch.Tensor | None:
        """The marked places of the batch (rows × tokens, True at each), or None when it has none."""
        input_ids = args[0] if args else kwargs.get("input_ids")
        if self.marker_id is None or input_ids is None:
            return None
        found = input_ids == self.marker_id
        mask = kwargs.get("attention_mask")
        if mask is not None:
            found &= mask.bool()
        counts = found.sum(dim=1)
        if not counts.any():
            return None
        if (counts != self.length).any():
            raise RuntimeError(f"P-tuning template: rows hold {sorted(set(counts.tolist()))} prompt places, "
                               f"each must hold {self.length}")  # fmt: skip
        return found

    def placed(self, embedded: torch.Tensor, found: torch.Tensor) -> torch.Tensor:
        """``embedded`` with the prompt vectors, in order, at each row's marked places."""
        prompt = self.prompts().to(embedded.dtype).unsqueeze(0).expand(embedded.shape[0], -1, -1)
        return embedded.masked_scatter(found.unsqueeze(-1), prompt)

    def before_model(self, model, args, kwargs):
        found = self.places(args, kwargs)
        if found is None:
            return super().before_model(model, args, kwargs)
        if self.family == "encoder_decoder":  # the encoder's hook places the prompt; no mask grows
            return None
        input_ids = args[0] if args else kwargs["input_ids"]
        self._pending = self.placed(model.get_input_embeddings()(input_ids), found)
        return None  # the stack's hook hands it the placed embeddings; ids, mask and positions stay

    def before_encoder(self, encoder, args, kwargs):
        found = self.places(args, kwargs)
        if found is None:
            return super().before_encoder(encoder, args, kwargs)
        kwargs = dict(kwargs)
        if args:
            kwargs["input_ids"], args = args[0], args[1:]
        embedded = encoder.get_input_embeddings()(kwargs["input_ids"])
        kwargs["input_ids"], kwargs["inputs_embeds"] = None, self.placed(embedded, found)
        return args, kwargs
