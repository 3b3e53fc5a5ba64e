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

where L̄ is the total reference length divided by the mean number of non-empty references per
instance: the scorer pads instances with fewer references than the most with empty ones, and the
``-sig`` variant of mteval counts, per instance, only the references whose tokens are not empty
(``score_segment``'s ``$nrefs``), then divides the total by the number of instances
(``score_system``: ``nist_score($cum_ref_count / $cum_seg_count, …)``). Neither the largest nor the
padded number of references is L̄'s divisor.

mteval reads the texts from SGML files that measure_scores.py writes without escaping; its
whitespace is Perl's ``\\s`` on Unicode strings, which unlike Python's leaves U+001C–U+001F inside
a token.
"""

from __future__ import annotations

import csv
import math
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from peftbench.errors import UserError

BLEU_ORDER = 4
NIST_ORDER = 5

_SGML_ENTITIES = (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"))
# mteval's `tr/[A-Z]/[a-z]/` (ASCII letters only), then `s/([\{-\~\[-\` -\&\(-\+\:-\@\/])/ $1 /g`
# (ASCII punctuation but the apostrophe, hyphen, period and comma, spaced out), as one table.
_SPLIT_PUNCTUATION = [
    chr(c) for first, last in ("{~", "[`", " &", "(+", ":@", "//") for c in range(ord(first), ord(last) + 1)
]
_LOWERCASE_AND_SPLIT = str.maketrans(
    {**{c: c.lower() for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}, **{c: f" {c} " for c in _SPLIT_PUNCTUATION}}
)
_PERIOD_COMMA_AFTER_NON_DIGIT = re.compile(r"([^0-9])([.,])")
_PERIOD_COMMA_BEFORE_NON_DIGIT = re.compile(r"([.,])([^0-9])")
_DASH_AFTER_DIGIT = re.compile(r"([0-9])(-)")
# Perl's \s on a Unicode string: Python's \s less U+001C..U+001F.
_WHITESPACE = re.compile("[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")

_NIST_BETA = -math.log(0.5) / math.log(1.5) / math.log(1.5)

# measure_scores.py's column names: the meaning representation, the system output, the reference.
_MR_HEADER = r"(mr|src|source|meaning(?:[_ .-]rep(?:resentation)?)?|da|dial(?:ogue)?[_ .-]act)s?"
_OUTPUT_HEADER = r"(out(?:put)?|ref(?:erence)?|sys(?:tem)?(?:[_ .-](?:out(?:put)?|ref(?:erence)?))?)s?"
_REFERENCE_HEADER = r"(trg|tgt|target|ref(?:erence)?|human(?:[_ .-](?:ref(?:erence)?))?)s?"
# Mis-encodings that measure_scores.py repairs in csv/tsv files of the E2E data.
_ENCODING_REPAIRS = (("Ł", "£"), ("Â£", "£"), ("Ã©", "é"), ("ã©", "é"))


# ---------------------------------------------------------------------------------------------
# Reading the scorer's input files


def read_references(path: str | Path, output_mrs: list[str] | None = None) -> list[list[str]]:
    """The references of each instance, from the formats measure_scores.py reads.

    A ``.csv``/``.tsv`` file has an MR column and a reference column. When the outputs came from a
    table too (``output_mrs``, not all empty), each output's references are all the rows with its
    MR, wherever they stand, in the outputs' order; otherwise consecutive rows with the same MR are
    one instance. Any other file is plain text, one reference a line, instances separated by an
    empty line; a text file without an empty line has one reference per instance.
    """
    path = Path(path)
    if _is_table(path):
        rows = _read_table(path, _REFERENCE_HEADER)
        if output_mrs and any(output_mrs):
            return _references_of_mrs(path, rows, output_mrs)
        return _group_consecutive_mrs(rows)
    instances = _read_blank_line_separated_groups(path)
    if len(instances) == 1:
        return [[reference] for reference in instances[0]]
    return instances


def read_files(references_path: str | Path, predictions_path: str | Path) -> tuple[list[list[str]], list[str]]:
    """(references per instance, predictions) from the scorer's two files, paired as
    measure_scores.py pairs them (a table of outputs orders a table of references by its MRs)."""
    output_mrs, predictions = _read_outputs(Path(predictions_path))
    return read_references(references_path, output_mrs), predictions


def read_predictions(path: str | Path) -> list[str]:
    """One prediction per instance: plain text, one a line, or the output column of a csv/tsv."""
    return _read_outputs(Path(path))[1]


def _read_outputs(path: Path) -> tuple[list[str], list[str]]:
    """(MR, output) per instance; the MRs of a text file are empty (measure_scores.py's dummy sources)."""
    if _is_table(path):
        rows = _read_table(path, _OUTPUT_HEADER)
        return [mr for mr, _ in rows], [output for _, output in rows]
    outputs = [line.strip() for line in _read_lines(path)]
    return [""] * len(outputs), outputs


def _is_table(path: Path) -> bool:
    return path.suffix.lower() in (".csv", ".tsv")


def _read_lines(path: Path) -> list[str]:
    """The file's lines as measure_scores.py's ``codecs.open`` gives them: split at every line
    boundary of ``str.splitlines`` (also U+2028, U+0085, form feed, U+001C–U+001E), not only at
    newlines."""
    try:
        return path.read_bytes().decode("utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 (byte {error.start}); save it as UTF-8") from None


def _read_blank_line_separated_groups(path: Path) -> list[list[str]]:
    """measure_scores.py's multi-reference reading: every empty line starts a new instance, so an
    empty line at the start or a second one in a row would make an instance without references."""
    groups: list[list[str]] = [[]]
    for number, line in enumerate(_read_lines(path), start=1):
        line = line.strip()
        if line:
            groups[-1].append(line)
            continue
        if not groups[-1]:
            raise UserError(
                f"{path}:{number}: an empty line {'at the start' if number == 1 else 'after an empty line'} "
                "makes an instance without references; separate instances by exactly one empty line"
            )
        groups.append([])
    if not groups[-1]:
        del groups[-1]
    return groups


def _read_table(path: Path, text_header: str) -> list[tuple[str, str]]:
    """(MR, text) rows of a csv/tsv file, tab-separated when its first line has a tab.

    A header row is recognised, as measure_scores.py does, by exactly one column named like an MR
    and one named like ``text_header``. A file without one is read as two columns, MR then text,
    as measure_scores.py means to (its test for that case compares lists with 0, so it stops there).
    """
    lines = [line.strip() for line in _read_lines(path)]
    if lines:
        lines[0] = lines[0].replace("\ufeff", "")  # the byte order mark, removed from the first line only
    lines = [_repair_encoding(line) for line in lines]
    lines = [line for line in lines if line]
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


def _references_of_mrs(path: Path, rows: list[tuple[str, str]], output_mrs: list[str]) -> list[list[str]]:
    by_mr: dict[str, list[str]] = {}
    for mr, reference in rows:
        by_mr.setdefault(mr, []).append(reference)
    missing = [mr for mr in output_mrs if mr not in by_mr]
    if missing:
        raise UserError(f"{path} has no reference for the MR {missing[0]!r} of the outputs; score outputs of its MRs")
    return [by_mr[mr] for mr in output_mrs]


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
    return score_systems([(references, predictions)])[0]


def score_systems(systems: list[tuple[list[list[str]], list[str]]]) -> list[dict[str, float]]:
    """``score`` of each (references, predictions) system, with one PTB tokenizer run and one
    METEOR process for all of them (starting Java is most of the time on small systems)."""
    for references, predictions in systems:
        _check_paired(references, predictions)
    meteor = _start_meteor()  # Java loads METEOR's paraphrase table while mteval counts
    mteval = [_MatchStatistics.collect(*system, max(BLEU_ORDER, NIST_ORDER)) for system in systems]
    return [
        {"bleu": statistics.bleu(BLEU_ORDER), "nist": statistics.nist(NIST_ORDER), **coco}
        for statistics, coco in zip(mteval, _coco_scores(systems, meteor))
    ]


def score_files(references_path: str | Path, predictions_path: str | Path) -> dict[str, float]:
    """``score`` on files as measure_scores.py reads them (see ``read_files``)."""
    return score(*read_files(references_path, predictions_path))


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
    return _MatchStatistics.collect(references, predictions, max_order).bleu(max_order)


def nist(references: list[list[str]], predictions: list[str], max_order: int = NIST_ORDER) -> float:
    """mteval-v13a's corpus NIST over orders 1..max_order (5 is the reported score)."""
    _check_paired(references, predictions)
    return _MatchStatistics.collect(references, predictions, max_order).nist(max_order)


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
    text = f" {text} ".translate(_LOWERCASE_AND_SPLIT)
    text = _PERIOD_COMMA_AFTER_NON_DIGIT.sub(r"\1 \2 ", text)
    text = _PERIOD_COMMA_BEFORE_NON_DIGIT.sub(r" \1 \2", text)
    text = _DASH_AFTER_DIGIT.sub(r"\1 \2 ", text)
    return [token for token in _WHITESPACE.split(text) if token]


def _ngram_counts(tokens: list[str], max_order: int) -> Counter[tuple[str, ...]]:
    """How often each n-gram of orders 1..max_order occurs in ``tokens``."""
    counts: Counter[tuple[str, ...]] = Counter()
    for order in range(1, max_order + 1):
        counts.update(zip(*(tokens[start:] for start in range(order))))
    return counts


def _information(reference_counts: list[list[Counter]]) -> Callable[[tuple[str, ...]], float]:
    """NIST's Info(w_1 … w_n) = log2(count(w_1 … w_{n−1}) / count(w_1 … w_n)), counted over all
    references (from each reference's n-gram counts), for any n-gram they hold."""
    counts: Counter[tuple[str, ...]] = Counter()
    for instance in reference_counts:
        for reference in instance:
            counts.update(reference)
    total_words = sum(count for ngram, count in counts.items() if len(ngram) == 1)

    def information(ngram: tuple[str, ...]) -> float:
        # mteval tests the joined prefix for truth, and Perl reads the string "0" as false.
        prefix_count = total_words if len(ngram) == 1 or ngram[:-1] == ("0",) else counts[ngram[:-1]]
        return -math.log(counts[ngram] / prefix_count) / math.log(2)

    return information


def _closest_reference_length(reference_lengths: list[int], hypothesis_length: int) -> int:
    """mteval's "closest" length, the shorter on a tie; empty references after the first are skipped."""
    first, *others = reference_lengths
    candidates = [first] + [length for length in others if length]
    return min(candidates, key=lambda length: (abs(hypothesis_length - length), length))


@dataclass
class _MatchStatistics:
    """mteval's corpus totals, from which BLEU and NIST of any order up to the collected one
    follow; the lists are indexed by order − 1."""

    matches: list[int]
    hypothesis_ngrams: list[int]
    information: list[float]
    instances: int = 0
    closest_reference_length: int = 0
    reference_words: int = 0
    nonempty_references: int = 0

    @classmethod
    def collect(
        cls, references: list[list[str]], predictions: list[str], max_order: int
    ) -> _MatchStatistics:
        tokenized = [[mteval_tokenize(r) for r in instance] for instance in references]
        counts = [[_ngram_counts(r, max_order) for r in instance] for instance in tokenized]
        information_of = _information(counts)
        statistics = cls([0] * max_order, [0] * max_order, [0.0] * max_order)
        for instance, instance_counts, prediction in zip(tokenized, counts, predictions):
            statistics._add_instance(instance, instance_counts, mteval_tokenize(prediction), information_of)
        return statistics

    def _add_instance(
        self,
        references: list[list[str]],
        reference_counts: list[Counter],
        hypothesis: list[str],
        information_of: Callable[[tuple[str, ...]], float],
    ) -> None:
        max_order = len(self.matches)
        max_reference_counts: dict[tuple[str, ...], int] = {}
        for counts in reference_counts:
            for ngram, count in counts.items():
                if count > max_reference_counts.get(ngram, 0):
                    max_reference_counts[ngram] = count
        for ngram, count in _ngram_counts(hypothesis, max_order).items():
            clipped = min(count, max_reference_counts.get(ngram, 0))
            if clipped:
                self.matches[len(ngram) - 1] += clipped
                self.information[len(ngram) - 1] += information_of(ngram) * clipped
        for order in range(1, max_order + 1):
            self.hypothesis_ngrams[order - 1] += max(len(hypothesis) - order + 1, 0)
        lengths = [len(reference) for reference in references]
        self.instances += 1
        self.closest_reference_length += _closest_reference_length(lengths, len(hypothesis))
        self.reference_words += sum(lengths)
        self.nonempty_references += sum(1 for length in lengths if length)

    def bleu(self, max_order: int) -> float:
        hypothesis_words = self.hypothesis_ngrams[0]
        if not hypothesis_words:
            return 0.0
        brevity_penalty = math.exp(min(0.0, 1 - self.closest_reference_length / hypothesis_words))
        log_precision_sum = 0.0
        smoothing = 1
        for matches, hypothesis_ngrams in zip(self.matches[:max_order], self.hypothesis_ngrams[:max_order]):
            if hypothesis_ngrams == 0:
                continue  # mteval's log precision 0 for an order the prediction is too short for
            if matches == 0:
                smoothing *= 2
                log_precision_sum += math.log(1 / (smoothing * hypothesis_ngrams))
            else:
                log_precision_sum += math.log(matches / hypothesis_ngrams)
        return math.exp(log_precision_sum / max_order) * brevity_penalty

    def nist(self, max_order: int) -> float:
        if not self.reference_words:
            raise UserError("every reference is empty once tokenized: NIST needs reference words")
        information = sum(
            info / max(hypothesis_ngrams, 1)
            for info, hypothesis_ngrams in zip(self.information[:max_order], self.hypothesis_ngrams[:max_order])
        )
        mean_reference_length = self.reference_words / (self.nonempty_references / self.instances)
        return information * _nist_length_penalty(self.hypothesis_ngrams[0] / mean_reference_length)


def _start_meteor():
    """pycocoevalcap's METEOR 1.5, a Java process that reads its paraphrase table before it answers."""
    if shutil.which("java") is None:
        raise UserError(
            "METEOR and the PTB tokenizer of the E2E metrics need Java: install a JRE "
            "(e.g. `apt-get install default-jre-headless`) so that `java` is on PATH"
        )
    from pycocoevalcap.meteor.meteor import Meteor

    return Meteor()


def _coco_scores(systems: list[tuple[list[list[str]], list[str]]], meteor) -> list[dict[str, float]]:
    """METEOR, ROUGE-L and CIDEr by pycocoevalcap on PTB-tokenized text, as the scorer runs them.

    The tokenizer keeps one caption a line, so one run over all systems' captions gives each the
    tokens a run of its own would; METEOR's ``EVAL`` line scores exactly the statistics it is given.
    """
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({
        (s, i): [{"caption": reference} for reference in instance]
        for s, (references, _) in enumerate(systems) for i, instance in enumerate(references)
    })  # fmt: skip
    res = tokenizer.tokenize({
        (s, i): [{"caption": prediction}]
        for s, (_, predictions) in enumerate(systems) for i, prediction in enumerate(predictions)
    })  # fmt: skip
    scores = []
    for s, (_, predictions) in enumerate(systems):
        system_gts = {i: gts[s, i] for i in range(len(predictions))}
        system_res = {i: res[s, i] for i in range(len(predictions))}
        scores.append({
            "meteor": float(meteor.compute_score(system_gts, system_res)[0]),
            "rouge_l": float(Rouge().compute_score(system_gts, system_res)[0]),
            "cider": float(Cider().compute_score(system_gts, system_res)[0]),
        })  # fmt: skip
    return scores
