"""Translation Edit Rate as tercom 0.7.25 computes it (Snover, Dorr, Schwartz, Micciulla and
Makhoul, 2006, "A Study of Translation Edit Rate with Targeted Human Annotation").

TER is the number of edits that turn a hypothesis into a reference, over the reference's length:

    TER = (insertions + deletions + substitutions + shifts) / |reference|,

where a shift moves a contiguous block of hypothesis words to another position at cost 1. The
WebNLG 2017 challenge and DART score TER with BBN's Java tercom 0.7.25
(``java -jar tercom.7.25.jar -h HYP -r REF``, Yale-LILY/dart ``evaluation/tercom-0.7.25``, whose
``src/TERcalc.java`` and ``src/TERtest.java`` this module follows step by step), with its defaults:
case-insensitive, no normalisation (words are what whitespace separates), punctuation kept, a beam
of width 20 for the edit distance, shifts of at most 10 words over at most 50 positions, unit costs.

tercom searches shifts greedily (``CalcBestShift``): among the candidate shifts of the current
hypothesis (blocks that occur in the reference, that are misaligned, that would move next to the
reference words they match) it takes, longest blocks first, the one that lowers the beam-searched
edit distance most, applies it and searches again, until no shift gains. The result is tercom's
own, not the exact minimum (finding it is NP-hard); sacrebleu's port, with its own beam and
candidate limits, differs from tercom on real data (by one edit over the WebNLG 2017 test set).

With several references (tercom's Trans format: lines ``text (id)`` with the same id), a segment
takes the edits of its best reference (the first of the fewest) and the mean length of all its
references; the corpus score tercom prints as ``Total TER`` is Σ edits / Σ mean lengths.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

MAX_SHIFT_SIZE = 10  # TERcalc.MAX_SHIFT_SIZE
MAX_SHIFT_DIST = 50  # TERcalc.MAX_SHIFT_DIST, tercom's -d default
BEAM_WIDTH = 20  # TERcalc.BEAM_WIDTH, tercom's -b default
_INF = 999999.0

_JAVA_WHITESPACE = re.compile(r"[ \t\n\x0b\f\r]+")  # Java's \s


def corpus_ter(references: list[list[str]], hypotheses: list[str]) -> float:
    """tercom's ``Total TER`` over segments: each hypothesis against its references."""
    total_edits = total_words = 0.0
    for segment_references, hypothesis in zip(references, hypotheses, strict=True):
        edits, words = segment_ter(tuple(segment_references), hypothesis)
        total_edits += edits
        total_words += words
    if total_words == 0:  # Java's double division: Infinity, or NaN for 0/0
        return math.inf if total_edits else math.nan
    return total_edits / total_words


@functools.lru_cache(maxsize=1 << 16)
def segment_ter(references: tuple[str, ...], hypothesis: str) -> tuple[float, float]:
    """(edits to the best reference, mean reference length): ``TERtest.score_all_refs``.

    Kept for the process: a run scores WebNLG's test inputs again as its seen and unseen halves."""
    best = None
    words = 0.0
    for reference in references:
        edits, length = _ter(_java_trim(hypothesis).lower(), _java_trim(reference).lower())
        if best is None or best > edits:
            best = edits
        words += length
    return best, words / len(references)


def _java_trim(text: str) -> str:
    """Java's ``String.trim``: every character up to U+0020 off both ends (tercom trims each line)."""
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


def _ter(hypothesis: str, reference: str) -> tuple[float, float]:
    """(edits, reference words) of one pair: ``TERcalc.TER(String, String)``."""
    hyp_words = _JAVA_WHITESPACE.split(hypothesis)
    ref_words = _JAVA_WHITESPACE.split(reference)
    if not reference or not hypothesis:  # TERnullstr: all deletions, or all insertions
        if not reference and not hypothesis:
            return 0.0, 0.0
        return (float(len(ref_words)), float(len(ref_words))) if not hypothesis else (float(len(hyp_words)), 0.0)
    return _shifted_edit_distance(hyp_words, ref_words), float(len(ref_words))


@dataclass
class _Alignment:
    edits: float
    path: str  # one symbol a step: " " match, "S" substitution, "I" insertion, "D" deletion
    words: list[str]  # the hypothesis after the shifts so far


@dataclass(frozen=True)
class _Shift:
    start: int
    end: int
    newloc: int


def _shifted_edit_distance(hyp: list[str], ref: list[str]) -> float:
    """Shifts that lower the edit distance, greedily, then the edit distance: ``TERcalc.TER``."""
    matches = _ref_blocks(hyp, ref)
    distance = _Levenshtein(ref)
    alignment = _beam_edit_distance(hyp, ref)
    shifts = 0.0
    while True:
        found = _best_shift(alignment, ref, matches, distance)
        if found is None:
            return alignment.edits + shifts
        shifts += 1.0  # TERcost.shift_cost
        alignment = found


def _ref_blocks(hyp: list[str], ref: list[str]) -> dict[tuple[str, ...], list[int]]:
    """Every block of up to MAX_SHIFT_SIZE + 1 reference words that all occur in the hypothesis,
    with its start positions in ascending order: ``BuildWordMatches``."""
    in_hyp = set(hyp)
    found = [word in in_hyp for word in ref]
    blocks: dict[tuple[str, ...], list[int]] = {}
    for start in range(len(ref)):
        end = start
        while found[start] and end < len(ref) and end - start <= MAX_SHIFT_SIZE and found[end]:
            blocks.setdefault(tuple(ref[start : end + 1]), []).append(start)
            end += 1
    return blocks


def _errors(alignment: _Alignment, hyp_length: int, ref_length: int) -> tuple[list[bool], list[bool], list[int]]:
    """Which hypothesis and reference words are misaligned, and the hypothesis position each
    reference word is aligned after: ``FindAlignErr``."""
    hyp_error, ref_error, ref_align = [False] * hyp_length, [False] * ref_length, [0] * ref_length
    h = r = -1
    for symbol in alignment.path:
        if symbol in " S":
            h += 1
            r += 1
            hyp_error[h] = ref_error[r] = symbol == "S"
            ref_align[r] = h
        elif symbol == "I":
            h += 1
            hyp_error[h] = True
        else:
            r += 1
            ref_error[r] = True
            ref_align[r] = h
    return hyp_error, ref_error, ref_align


def _best_shift(current: _Alignment, ref: list[str], matches, distance) -> _Alignment | None:
    """The alignment after the shift that gains most, None when none gains: ``CalcBestShift``."""
    words = current.words
    hyp_error, ref_error, ref_align = _errors(current, len(words), len(ref))
    candidates = _candidate_shifts(words, matches, hyp_error, ref_error, ref_align)
    best_cost, best_edits, best_words = 0.0, current.edits, None
    for size in range(len(candidates) - 1, -1, -1):
        most = 2 * (1 + size)  # the most edits a shift of size + 1 words can remove
        fixed = current.edits - (best_cost + best_edits)
        if fixed > most or (best_cost != 0 and fixed == most):
            break
        for shift in candidates[size]:
            fixed = current.edits - (best_cost + best_edits)
            if fixed > most or (best_cost != 0 and fixed == most):
                break
            shifted = _perform_shift(words, shift)
            edits = distance(shifted)
            if edits > BEAM_WIDTH and edits + 1.0 <= best_edits + best_cost:
                edits = _beam_edit_distance(shifted, ref).edits  # the beam may count more
            gain = (best_edits + best_cost) - (edits + 1.0)
            if gain > 0 or (best_cost == 0 and gain == 0):
                best_cost, best_edits, best_words = 1.0, edits, shifted
    return None if best_words is None else _beam_edit_distance(best_words, ref)


def _candidate_shifts(hyp, matches, hyp_error, ref_error, ref_align) -> list[list[_Shift]]:
    """Candidate shifts by block size − 1, in tercom's order: ``GatherAllPossShifts``."""
    shifts: list[list[_Shift]] = [[] for _ in range(MAX_SHIFT_SIZE + 1)]
    for start in range(len(hyp)):
        targets = matches.get((hyp[start],))
        if targets is None or not any(
            start != ref_align[to] and ref_align[to] - start <= MAX_SHIFT_DIST and start - ref_align[to] - 1 <= MAX_SHIFT_DIST
            for to in targets
        ):
            continue
        end, ok = start, True
        while ok and end < len(hyp) and end < start + MAX_SHIFT_SIZE:
            block = tuple(hyp[start : end + 1])
            ok = False
            if block in matches:
                if not any(hyp_error[start : end + 1]):
                    ok = True
                else:
                    for moveto in matches[block]:
                        aligned = ref_align[moveto]
                        if not (aligned != start and (aligned < start or aligned > end)
                                and aligned - start <= MAX_SHIFT_DIST and start - aligned <= MAX_SHIFT_DIST):  # fmt: skip
                            continue
                        ok = True
                        if not any(ref_error[moveto : moveto + end - start + 1]):
                            continue
                        for offset in range(-1, end - start + 1):
                            if offset == -1 and moveto == 0:
                                shifts[end - start].append(_Shift(start, end, -1))
                            elif start != ref_align[moveto + offset] and (
                                offset == 0 or ref_align[moveto + offset] != ref_align[moveto]
                            ):
                                shifts[end - start].append(_Shift(start, end, ref_align[moveto + offset]))
            end += 1
    return shifts


def _perform_shift(words: list[str], shift: _Shift) -> list[str]:
    """The words with words[start..end] moved after position newloc: ``PerformShift``."""
    start, end, newloc = shift.start, shift.end, shift.newloc
    block = words[start : end + 1]
    if newloc == -1:
        return block + words[:start] + words[end + 1 :]
    if newloc < start:
        return words[: newloc + 1] + block + words[newloc + 1 : start] + words[end + 1 :]
    if newloc > end:
        return words[:start] + words[end + 1 : newloc + 1] + block + words[newloc + 1 :]
    # a move inside the block itself
    middle_end = min(len(words), end + (newloc - start) + 1)
    return words[:start] + words[end + 1 : middle_end] + block + words[end + (newloc - start) + 1 :]


class _Levenshtein:
    """The exact word edit distance of a hypothesis to ``ref``, by Myers' bit-vector algorithm
    (Myers, 1999, "A fast bit-vector algorithm for approximate string matching based on dynamic
    programming", in Hyyrö's formulation for the global distance), reference words as the pattern.

    It stands in for ``MinEditDist`` when scoring candidate shifts: the beam search skips a cell
    only when its cost exceeds BEAM_WIDTH plus the least cost of the previous column, so every
    cell that costs at most BEAM_WIDTH is reached with its exact cost, and a distance of at most
    BEAM_WIDTH is what the beam search finds. Above it the beam search can only count more, so it
    is run (``_best_shift``) only for a shift that could still be chosen.
    """

    def __init__(self, ref: list[str]):
        self.ref = ref
        self.positions: dict[str, int] = {}
        for i, word in enumerate(ref):
            self.positions[word] = self.positions.get(word, 0) | (1 << i)
        self.full = (1 << len(ref)) - 1
        self.last = 1 << (len(ref) - 1)

    def __call__(self, hyp: list[str]) -> float:
        full, last, positions = self.full, self.last, self.positions
        pv, mv, distance = full, 0, len(self.ref)
        for word in hyp:
            eq = positions.get(word, 0)
            xv = eq | mv
            xh = (((eq & pv) + pv) ^ pv) | eq
            ph = mv | (~(xh | pv) & full)
            mh = pv & xh
            if ph & last:
                distance += 1
            elif mh & last:
                distance -= 1
            ph = ((ph << 1) | 1) & full
            mh = (mh << 1) & full
            pv = mh | (~(xv | ph) & full)
            mv = ph & xv
        return float(distance)


def _beam_edit_distance(hyp: list[str], ref: list[str]) -> _Alignment:
    """The word edit distance by tercom's beam search over the hypothesis: ``MinEditDist``.

    Column j holds the costs of aligning hyp[:j] (tercom's S[·][j], here one list a column); a
    cell more than BEAM_WIDTH above the least cost written into its column from the previous one
    is not expanded. Ties keep the first operation written: match/substitution, then insertion,
    then deletion, as tercom's order of updates does.
    """
    H, R = len(hyp), len(ref)
    costs = [[-1.0] * (R + 1) for _ in range(H + 1)]
    moves = [["0"] * (R + 1) for _ in range(H + 1)]
    costs[0][0] = 0.0
    current_best = _INF
    current_first_good, cur_last_good = 0, 0
    for j in range(H + 1):
        last_best, current_best = current_best, _INF
        first_good, current_first_good = current_first_good, -1
        last_good, cur_last_good = cur_last_good, -1
        column, move = costs[j], moves[j]
        inner = j < H
        if inner:
            word, following, follow_move = hyp[j], costs[j + 1], moves[j + 1]
            ceiling = last_best + BEAM_WIDTH
        i = first_good
        while i <= R and i <= last_good:
            score = column[i]
            if score < 0 or (inner and score > ceiling):
                i += 1
                continue
            if current_first_good == -1:
                current_first_good = i
            if inner:
                if i < R:  # the cell below-right is always unwritten here: a match or substitution
                    cost = score if ref[i] == word else score + 1.0
                    following[i + 1], follow_move[i + 1] = cost, " " if cost == score else "S"
                    if cost < current_best:
                        current_best = cost
                if following[i] < 0 or following[i] > score + 1.0:
                    following[i], follow_move[i] = score + 1.0, "I"
            cur_last_good = i + 1
            if i < R and (column[i + 1] < 0.0 or column[i + 1] > score + 1.0):
                column[i + 1], move[i + 1] = score + 1.0, "D"
                if i >= last_good:
                    last_good = i + 1
            i += 1
    path = []
    i, j = R, H
    while i > 0 or j > 0:
        symbol = moves[j][i]
        path.append(symbol)
        if symbol in " S":
            i, j = i - 1, j - 1
        elif symbol == "D":
            i -= 1
        else:
            j -= 1
    return _Alignment(costs[H][R], "".join(reversed(path)), hyp)
