"""The E2E NLG Challenge metrics, reproducing the official scorer exactly.

The official scorer is ``measure_scores.py`` of ``tuetschek/e2e-metrics`` (Dušek, Novikova and
Rieser, 2020, "Evaluating the state-of-the-art of End-to-End Natural Language Generation: The E2E
NLG Challenge"). It reports five corpus-level scores:

- BLEU (Papineni et al., 2002, "BLEU: a Method for Automatic Evaluation of Machine Translation")
  and NIST (Doddington, 2002, "Automatic Evaluation of Machine Translation Quality Using N-gram
  Co-Occurrence Statistics"), both by NIST's ``mteval-v13a.pl`` in the variant the scorer ships
  (``mteval-v13a-sig.pl``: a variable number of references per instance, lowercased). This module
  re-implements that script; see below.
- METEOR 1.5 (Banerjee and Lavie, 2005; Denkowski and Lavie, 2014, "Meteor Universal:
  Language Specific Translation Evaluation for Any Target Language"), ROUGE-L (Lin, 2004,
  "ROUGE: A Package for Automatic Evaluation of Summaries") and CIDEr (Vedantam, Zitnick and
  Parikh, 2015, "CIDEr: Consensus-based Image Description Evaluation"), by the MS-COCO caption
  evaluation code (PyPI ``pycocoevalcap``, which needs Java) after its PTB tokenizer, as the
  scorer runs them. CIDEr is plain ``Cider`` (not CIDEr-D), with document frequencies taken from
  the references being scored.

mteval, as run by the scorer
----------------------------
Every text is tokenized by mteval's default (non-international) rules: ASCII letters lowercased,
most ASCII punctuation split off, periods and commas split off unless between digits, a dash split
off after a digit. For each instance i with prediction c_i and references R_i, and n-gram order n:

- m_n = Σ_i Σ_{g ∈ n-grams(c_i)} min(count_{c_i}(g), max_{r ∈ R_i} count_r(g)), the clipped matches;
- t_n = Σ_i max(|c_i| − n + 1, 0), the predicted n-grams;
- ρ = Σ_i ρ_i, where ρ_i is the length of the reference of R_i closest to |c_i| (the shorter on a
  tie; empty references are skipped, the first reference always counts).

BLEU (corpus level, N = 4):

    BLEU_N = BP · exp((1/N) Σ_{n=1}^{N} log p_n),   BP = exp(min(0, 1 − ρ / t_1)),

with p_n = m_n / t_n; mteval smooths a zero match count to p_n = 1 / (2^k · t_n) for the k-th such
order, and takes p_n = 1 when t_n = 0.

NIST (N = 5) weighs each matched n-gram g = w_1 … w_n by its information in the references of
the whole corpus,

    Info(g) = log2(count(w_1 … w_{n−1}) / count(w_1 … w_n))   (count(empty prefix) = all words),

    NIST_N = Σ_{n=1}^{N} [Σ_{matched g of order n} Info(g)] / max(t_n, 1)
             · exp(−β · log²(min(t_1 / L̄, 1))),   β = −log 0.5 / log² 1.5,

where L̄ is the total reference length divided by the largest number of references of any
instance (the scorer pads instances with fewer references with empty ones, and mteval divides by
the number of reference sets). That division is why the scorer's built-in Python variant, which
averages per instance, prints a different NIST.
"""

from __future__ import annotations

import csv
import math
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from peftbench.errors import UserError

BLEU_ORDER = 4
NIST_ORDER = 5

# mteval's `tr/[A-Z]/[a-z]/`: ASCII letters only.
_ASCII_LOWERCASE = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_SGML_ENTITIES = (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"))
# The same character ranges as mteval's `[\{-\~\[-\` -\&\(-\+\:-\@\/]`: ASCII punctuation except
# the apostrophe, hyphen, period and comma.
_SPLIT_PUNCTUATION = re.compile(r"([{-~\[-` -&(-+:-@/])")
_PERIOD_COMMA_AFTER_NON_DIGIT = re.compile(r"([^0-9])([.,])")
_PERIOD_COMMA_BEFORE_NON_DIGIT = re.compile(r"([.,])([^0-9])")
_DASH_AFTER_DIGIT = re.compile(r"([0-9])(-)")
_WHITESPACE = re.compile(r"\s+")

_NIST_BETA = -math.log(0.5) / math.log(1.5) / math.log(1.5)

# measure_scores.py's column names: the meaning representation, the system output, the reference.
_MR_HEADER = r"(mr|src|source|meaning(?:[_ .-]rep(?:resentation)?)?|da|dial(?:ogue)?[_ .-]act)s?"
_OUTPUT_HEADER = r"(out(?:put)?|ref(?:erence)?|sys(?:tem)?(?:[_ .-](?:out(?:put)?|ref(?:erence)?))?)s?"
_REFERENCE_HEADER = r"(trg|tgt|target|ref(?:erence)?|human(?:[_ .-](?:ref(?:erence)?))?)s?"
# Mis-encodings that measure_scores.py repairs in csv/tsv files of the E2E data.
_ENCODING_REPAIRS = (("Ł", "£"), ("Â£", "£"), ("Ã©", "é"), ("ã©", "é"))


# ---------------------------------------------------------------------------------------------
# Reading the scorer's input files


def read_references(path: str | Path) -> list[list[str]]:
    """The references of each instance, from the formats measure_scores.py reads.

    A ``.csv``/``.tsv`` file has an MR column and a reference column; consecutive rows with the
    same MR are one instance. Any other file is plain text, one reference a line, instances
    separated by an empty line; a text file without an empty line has one reference per instance.
    """
    path = Path(path)
    if _is_table(path):
        return _group_consecutive_mrs(_read_table(path, _REFERENCE_HEADER))
    instances = _read_blank_line_separated_groups(path)
    if len(instances) == 1:
        return [[reference] for reference in instances[0]]
    return instances


def read_predictions(path: str | Path) -> list[str]:
    """One prediction per instance: plain text, one a line, or the output column of a csv/tsv."""
    path = Path(path)
    if _is_table(path):
        return [output for _, output in _read_table(path, _OUTPUT_HEADER)]
    return [line.strip() for line in _read_lines(path)]


def _is_table(path: Path) -> bool:
    return path.suffix.lower() in (".csv", ".tsv")


def _read_lines(path: Path) -> list[str]:
    """The file's lines, split at newlines only (as iterating over the file does)."""
    try:
        with path.open(encoding="utf-8") as handle:
            return [line.rstrip("\n") for line in handle]
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None


def _read_blank_line_separated_groups(path: Path) -> list[list[str]]:
    groups: list[list[str]] = [[]]
    for line in _read_lines(path):
        line = line.strip()
        if line:
            groups[-1].append(line)
        elif groups[-1]:
            groups.append([])
    return [group for group in groups if group]


def _read_table(path: Path, text_header: str) -> list[tuple[str, str]]:
    """(MR, text) rows of a csv/tsv file, tab-separated when its first line has a tab.

    A header row is recognised, as measure_scores.py does, by exactly one column named like an MR
    and one named like ``text_header``; a file without one must have exactly two columns.
    """
    lines = [line.strip() for line in _read_lines(path)]
    lines = [_repair_encoding(line.lstrip("\ufeff")) for line in lines if line]
    if not lines:
        raise UserError(f"{path}: no rows")
    rows = list(csv.reader(lines, delimiter="\t" if "\t" in lines[0] else ","))
    first_row, width = rows[0], len(rows[0])
    mr_columns = [i for i, name in enumerate(first_row) if re.match(_MR_HEADER, name, re.I)]
    text_columns = [i for i, name in enumerate(first_row) if re.match(text_header, name, re.I)]
    if len(mr_columns) == len(text_columns) == 1:
        mr_column, text_column, rows = mr_columns[0], text_columns[0], rows[1:]
    elif not mr_columns and not text_columns and width == 2:
        mr_column, text_column = 0, 1
    else:
        raise UserError(
            f"{path}: expected a header with one MR column and one text column, or no header and "
            f"two columns (MR, text); found the first row {first_row}"
        )
    ragged = [number for number, row in enumerate(rows, start=1) if len(row) != width]
    if ragged:
        raise UserError(f"{path}: rows {ragged} do not have {width} columns")
    return [(row[mr_column], row[text_column]) for row in rows]


def _repair_encoding(line: str) -> str:
    for broken, repaired in _ENCODING_REPAIRS:
        line = line.replace(broken, repaired)
    return line


def _group_consecutive_mrs(rows: list[tuple[str, str]]) -> list[list[str]]:
    groups: list[list[str]] = []
    previous_mr = None
    for mr, reference in rows:
        if mr != previous_mr:
            groups.append([])
        groups[-1].append(reference)
        previous_mr = mr
    return groups


# ---------------------------------------------------------------------------------------------
# Scoring


def score(references: list[list[str]], predictions: list[str]) -> dict[str, float]:
    """The five official E2E scores: BLEU, NIST, METEOR, ROUGE-L, CIDEr (full precision)."""
    _check_paired(references, predictions)
    return {
        "bleu": bleu(references, predictions),
        "nist": nist(references, predictions),
        **_coco_scores(references, predictions),
    }


def score_files(references_path: str | Path, predictions_path: str | Path) -> dict[str, float]:
    """``score`` on files as measure_scores.py reads them (see the two readers)."""
    return score(read_references(references_path), read_predictions(predictions_path))


def _check_paired(references: list[list[str]], predictions: list[str]) -> None:
    if len(references) != len(predictions):
        raise UserError(
            f"{len(references)} instances of references but {len(predictions)} predictions: "
            "there must be one prediction per instance"
        )
    if not references:
        raise UserError("no instances to score")
    unreferenced = [i for i, instance in enumerate(references) if not instance]
    if unreferenced:
        raise UserError(f"instances {unreferenced} have no reference: each needs at least one")


def bleu(references: list[list[str]], predictions: list[str], max_order: int = BLEU_ORDER) -> float:
    """mteval-v13a's corpus BLEU over orders 1..max_order (4 is the reported score)."""
    _check_paired(references, predictions)
    statistics = _MatchStatistics.collect(references, predictions, max_order)
    hypothesis_words = statistics.hypothesis_ngrams[0]
    if not hypothesis_words:
        return 0.0
    brevity_penalty = math.exp(min(0.0, 1 - statistics.closest_reference_length / hypothesis_words))
    log_precision_sum = 0.0
    smoothing = 1
    for matches, hypothesis_ngrams in zip(statistics.matches, statistics.hypothesis_ngrams):
        if hypothesis_ngrams == 0:
            continue  # mteval's log precision 0 for an order the prediction is too short for
        if matches == 0:
            smoothing *= 2
            log_precision_sum += math.log(1 / (smoothing * hypothesis_ngrams))
        else:
            log_precision_sum += math.log(matches / hypothesis_ngrams)
    return math.exp(log_precision_sum / max_order) * brevity_penalty


def nist(references: list[list[str]], predictions: list[str], max_order: int = NIST_ORDER) -> float:
    """mteval-v13a's corpus NIST over orders 1..max_order (5 is the reported score)."""
    _check_paired(references, predictions)
    statistics = _MatchStatistics.collect(references, predictions, max_order)
    information = sum(
        info / max(hypothesis_ngrams, 1)
        for info, hypothesis_ngrams in zip(statistics.information, statistics.hypothesis_ngrams)
    )
    reference_sets = max(len(instance) for instance in references)
    mean_reference_length = statistics.reference_words / reference_sets
    return information * _nist_length_penalty(statistics.hypothesis_ngrams[0] / mean_reference_length)


def _nist_length_penalty(length_ratio: float) -> float:
    """exp(−β log² ratio), 1 for a ratio of at least 1: 0.5 at ratio 2/3."""
    if length_ratio >= 1:
        return 1.0
    if length_ratio <= 0:
        return 0.0
    return math.exp(-_NIST_BETA * math.log(length_ratio) ** 2)


def mteval_tokenize(text: str) -> list[str]:
    """mteval-v13a's default tokenization, lowercased as the E2E scorer runs it."""
    text = _WHITESPACE.sub(" ", text).replace("<skipped>", "")
    for entity, character in _SGML_ENTITIES:
        text = text.replace(entity, character)
    text = f" {text} ".translate(_ASCII_LOWERCASE)
    text = _SPLIT_PUNCTUATION.sub(r" \1 ", text)
    text = _PERIOD_COMMA_AFTER_NON_DIGIT.sub(r"\1 \2 ", text)
    text = _PERIOD_COMMA_BEFORE_NON_DIGIT.sub(r" \1 \2", text)
    text = _DASH_AFTER_DIGIT.sub(r"\1 \2 ", text)
    return text.split()


def _ngram_counts(tokens: list[str], max_order: int) -> Counter[tuple[str, ...]]:
    """How often each n-gram of orders 1..max_order occurs in ``tokens``."""
    return Counter(
        tuple(tokens[start : start + order])
        for order in range(1, max_order + 1)
        for start in range(len(tokens) - order + 1)
    )


def _information_weights(
    tokenized_references: list[list[list[str]]], max_order: int
) -> dict[tuple[str, ...], float]:
    """NIST's Info(w_1 … w_n) = log2(count(w_1 … w_{n−1}) / count(w_1 … w_n)) over all references."""
    counts: Counter[tuple[str, ...]] = Counter()
    for instance in tokenized_references:
        for reference in instance:
            counts.update(_ngram_counts(reference, max_order))
    total_words = sum(count for ngram, count in counts.items() if len(ngram) == 1)

    def prefix_count(ngram: tuple[str, ...]) -> int:
        # mteval tests the joined prefix for truth, and Perl reads the string "0" as false.
        if len(ngram) == 1 or ngram[:-1] == ("0",):
            return total_words
        return counts[ngram[:-1]]

    return {
        ngram: -math.log(count / prefix_count(ngram)) / math.log(2) for ngram, count in counts.items()
    }


def _closest_reference_length(reference_lengths: list[int], hypothesis_length: int) -> int:
    """mteval's "closest" length, the shorter on a tie; empty references after the first are skipped."""
    first, *others = reference_lengths
    candidates = [first] + [length for length in others if length]
    return min(candidates, key=lambda length: (abs(hypothesis_length - length), length))


@dataclass
class _MatchStatistics:
    """mteval's corpus totals; the lists are indexed by order − 1."""

    matches: list[int]
    hypothesis_ngrams: list[int]
    information: list[float]
    closest_reference_length: int = 0
    reference_words: int = 0

    @classmethod
    def collect(
        cls, references: list[list[str]], predictions: list[str], max_order: int
    ) -> _MatchStatistics:
        tokenized_references = [[mteval_tokenize(r) for r in instance] for instance in references]
        weights = _information_weights(tokenized_references, max_order)
        statistics = cls([0] * max_order, [0] * max_order, [0.0] * max_order)
        for instance, prediction in zip(tokenized_references, predictions):
            statistics._add_instance(instance, mteval_tokenize(prediction), weights)
        return statistics

    def _add_instance(
        self,
        references: list[list[str]],
        hypothesis: list[str],
        weights: dict[tuple[str, ...], float],
    ) -> None:
        max_order = len(self.matches)
        max_reference_counts: Counter[tuple[str, ...]] = Counter()
        for reference in references:
            max_reference_counts |= _ngram_counts(reference, max_order)
        for ngram, count in _ngram_counts(hypothesis, max_order).items():
            clipped = min(count, max_reference_counts[ngram])
            if clipped:
                self.matches[len(ngram) - 1] += clipped
                self.information[len(ngram) - 1] += weights[ngram] * clipped
        for order in range(1, max_order + 1):
            self.hypothesis_ngrams[order - 1] += max(len(hypothesis) - order + 1, 0)
        lengths = [len(reference) for reference in references]
        self.closest_reference_length += _closest_reference_length(lengths, len(hypothesis))
        self.reference_words += sum(lengths)


def _coco_scores(references: list[list[str]], predictions: list[str]) -> dict[str, float]:
    """METEOR, ROUGE-L and CIDEr by pycocoevalcap on PTB-tokenized text, as the scorer runs them."""
    if shutil.which("java") is None:
        raise UserError(
            "METEOR and the PTB tokenizer of the E2E metrics need Java: install a JRE "
            "(e.g. `apt-get install default-jre-headless`) so that `java` is on PATH"
        )
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize(
        {i: [{"caption": reference} for reference in instance] for i, instance in enumerate(references)}
    )
    res = tokenizer.tokenize({i: [{"caption": prediction}] for i, prediction in enumerate(predictions)})
    return {
        "meteor": float(Meteor().compute_score(gts, res)[0]),
        "rouge_l": float(Rouge().compute_score(gts, res)[0]),
        "cider": float(Cider().compute_score(gts, res)[0]),
    }
