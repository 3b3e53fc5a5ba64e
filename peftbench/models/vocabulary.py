"""Whether a tokenizer's ids run from the most to the least frequent piece.

Prompt tuning's sampled-vocabulary initialisation draws from "the 5,000 most common tokens" of
T5's SentencePiece vocabulary, "which is ordered by likelihood in the pre-training corpus"
(Lester et al. 2021, §3.2): the official code takes the first 5,000 ids
(google-research/prompt-tuning ``from_sample_of_embeddings(population_size=5000)``). That holds for
a SentencePiece unigram model, whose pieces are stored by score (their log-probability), and is
checked here on the scores themselves. Other vocabularies carry no such order to check: WordPiece
(BERT: its first ids are [unused] slots, then characters) and byte-level BPE (GPT-2, Llama 3,
SmolLM2: bytes, then merges in the order they were learnt, not by frequency) are not taken as ordered.
"""

from __future__ import annotations

import json


def piece_scores(tokenizer) -> list[float] | None:
    """The score of every id where the tokenizer's model has scores (SentencePiece unigram), else None."""
    model = getattr(tokenizer, "sp_model", None)
    if model is not None:
        return [model.GetScore(i) for i in range(model.GetPieceSize())]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    spec = json.loads(backend.to_str())["model"]
    return [score for _, score in spec["vocab"]] if spec.get("type") == "Unigram" else None


def frequency_ordered(tokenizer) -> bool:
    """Ids in order of falling score, the special and added tokens (scored 0) aside."""
    scores = piece_scores(tokenizer)
    if not scores:
        return False
    aside = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
    kept = [score for i, score in enumerate(scores) if i not in aside]
    return all(earlier >= later for earlier, later in zip(kept, kept[1:]))
