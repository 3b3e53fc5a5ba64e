"""Corpus BLEU as Moses' ``multi-bleu.perl`` computes it (Papineni, Roukos, Ward and Zhu, 2002,
"BLEU: a Method for Automatic Evaluation of Machine Translation"), the BLEU of the WebNLG 2017
challenge and of DART (Yale-LILY/dart ``evaluation/multi-bleu.perl``, the script both run).

    BLEU = BP · exp((1/4) Σ_{n=1}^{4} log p_n),   BP = exp(1 − r / c) if c < r else 1,

p_n = Σ_i Σ_g min(count_i(g), max_ref count_ref(g)) / Σ_i (number of n-grams of hypothesis i),
c the hypotheses' words, r the sum over segments of the reference length closest to the
hypothesis's (the shorter on a tie). Where it differs from NIST's ``mteval`` (the E2E scorer's,
``tasks/e2e_metrics.py``): no tokenization beyond splitting at whitespace (the callers normalise
first), no smoothing (a precision of zero makes BLEU 0), and every reference line counts for the
closest length, an empty one too (a segment with fewer references than the file has columns
carries empty lines, and a short hypothesis can take the empty line's length 0 as its closest).
``-lc`` lowercases ASCII letters of hypotheses and references (Perl's ``lc`` on bytes).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from peftbench.tasks.e2e_metrics import _ngram_counts

ORDER = 4
_PERL_WHITESPACE = re.compile(r"[ \t\n\x0b\f\r]+")  # Perl's \s on bytes
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class MultiBleu:
    """What multi-bleu.perl prints: BLEU, the four precisions, BP, and the two lengths."""

    bleu: float
    precisions: tuple[float, ...]
    brevity_penalty: float
    hypothesis_length: int
    reference_length: int

    def line(self) -> str:
        """The script's output line, e.g. ``BLEU = 58.06, 87.7/68.0/52.3/40.5 (BP=0.974, …)``."""
        if self.reference_length == 0:
            return "BLEU = 0, 0/0/0/0 (BP=0, ratio=0, hyp_len=0, ref_len=0)"
        return (
            f"BLEU = {100 * self.bleu:.2f}, " + "/".join(f"{100 * p:.1f}" for p in self.precisions)
            + f" (BP={self.brevity_penalty:.3f}, ratio={self.hypothesis_length / self.reference_length:.3f},"
            f" hyp_len={self.hypothesis_length}, ref_len={self.reference_length})"
        )  # fmt: skip


def multi_bleu(references: list[list[str]], hypotheses: list[str], lowercase: bool = False) -> MultiBleu:
    """multi-bleu.perl [-lc] over segments: ``references[i]`` are segment i's reference lines
    (one per reference file, empty ones included), ``hypotheses[i]`` its hypothesis.

    Where the script stops without a score, the result is BLEU 0: no reference words (it prints
    ``BLEU = 0``), or no hypothesis words at all (Perl dies dividing by zero)."""
    correct, total = [0] * ORDER, [0] * ORDER
    hypothesis_length = reference_length = 0
    for segment_references, hypothesis in zip(references, hypotheses, strict=True):
        words = _words(hypothesis, lowercase)
        closest_diff, closest_length = 9999, 9999
        most: dict[tuple[str, ...], int] = {}
        for reference in segment_references:
            reference_words = _words(reference, lowercase)
            diff = abs(len(words) - len(reference_words))
            if diff < closest_diff or (diff == closest_diff and len(reference_words) < closest_length):
                closest_diff, closest_length = diff, len(reference_words)
            for ngram, count in _ngram_counts(reference_words, ORDER).items():
                most[ngram] = max(most.get(ngram, 0), count)
        hypothesis_length += len(words)
        reference_length += closest_length
        for ngram, count in _ngram_counts(words, ORDER).items():
            total[len(ngram) - 1] += count
            correct[len(ngram) - 1] += min(count, most.get(ngram, 0))
    precisions = tuple(c / t if t else 0.0 for c, t in zip(correct, total))
    if reference_length == 0 or hypothesis_length == 0:
        return MultiBleu(0.0, precisions, 0.0, hypothesis_length, reference_length)
    brevity_penalty = math.exp(1 - reference_length / hypothesis_length) if hypothesis_length < reference_length else 1.0
    # the script's my_log: log(0) is -9999999999, so a zero precision gives BLEU exp(-2.5e9) = 0
    logs = sum(math.log(p) if p else -9999999999 for p in precisions)
    return MultiBleu(brevity_penalty * math.exp(logs / ORDER), precisions, brevity_penalty, hypothesis_length, reference_length)


def _words(line: str, lowercase: bool) -> list[str]:
    if lowercase:
        line = line.translate(_ASCII_LOWER)
    return [word for word in _PERL_WHITESPACE.split(line) if word]
