"""Which vocabularies are ordered by frequency (peftbench/models/vocabulary.py): a SentencePiece
unigram model stores its pieces by score, which is checked; WordPiece and BPE carry no order to check.

The unigram and BPE tokenizers are built here with ``tokenizers`` (no T5 or GPT-2 files offline);
the WordPiece one is MiniLM's, shipped with the package the tiny models read.
"""

import random

from peftbench.config import model_config
from peftbench.models.load import load_tokenizer
from peftbench.models.vocabulary import frequency_ordered, piece_scores


def unigram(scores, extra=("<extra_id_0>",)):
    """A T5-like unigram tokenizer: <pad>, </s>, <unk> scored 0, then one piece per score, then
    sentinels added as special tokens (T5 keeps its <extra_id_*> after the scored pieces)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(f"\u2581w{i}", s) for i, s in enumerate(scores)]
    backend = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   additional_special_tokens=list(extra))  # fmt: skip


def test_a_unigram_vocabulary_stored_by_falling_score_is_ordered():
    scores = [-2.0 - 0.25 * i for i in range(40)]
    tokenizer = unigram(scores)
    assert piece_scores(tokenizer)[3:43] == scores
    assert frequency_ordered(tokenizer)


def test_a_unigram_vocabulary_out_of_score_order_is_not():
    scores = [-2.0 - 0.25 * i for i in range(40)]
    random.Random(0).shuffle(scores)
    assert not frequency_ordered(unigram(scores))


def test_wordpiece_and_bpe_have_no_order():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    assert not frequency_ordered(load_tokenizer(model_config("tiny-bert")))  # MiniLM's WordPiece
    bpe = Tokenizer(models.BPE(vocab={"a": 0, "b": 1, "ab": 2}, merges=[("a", "b")]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe)
    assert piece_scores(tokenizer) is None and not frequency_ordered(tokenizer)
