"""GSM8K accuracy as HF peft's method_comparison scores it (huggingface/peft@5d602fdb,
``method_comparison/MetaMathQA/utils.py``: ``parse_answer``, ``convert_to_decimal``, ``get_accuracy``).

The final answer is the text after the last of the first delimiter found, in this order:
"The answer is: ", "The answer is ", "The final answer is: ", "The final answer is " (MetaMath's
responses) and "#### " (GSM8K's), after stripping the text and its trailing ".!?"; then its first
line, stripped of " .!?$%". Both answers become numbers where they parse (an integer, a decimal or a
fraction a/b; ``Decimal`` then ``float``, so "20/35" equals "0.5714285714285714"); a prediction that
does not parse as a number is compared as text. A row is right when both are present and equal.
Ported line for line, quirks kept: where the reference is not a number, it is kept as text only when
the *prediction* was parsed (``get_accuracy``'s ``elif parsed_prediction is not None``). peft parses
the whole decoded sequence, prompt included; the generation format hands over the continuation
alone, which differs only where the question itself holds a delimiter and the answer none.
``tests/test_gsm8k_answer.py`` checks this against the official functions' own output
(``scripts/reference/peft_gsm8k_accuracy.py``).
"""

from __future__ import annotations

from decimal import Decimal, DivisionByZero, InvalidOperation
from typing import Optional, Sequence

DELIMITERS = ("The answer is: ", "The answer is ", "The final answer is: ", "The final answer is ", "#### ")


def parse_answer(text: str) -> Optional[str]:
    """The final answer's text, or None when no delimiter occurs."""
    text = text.strip().rstrip(".!?")
    delimiter = next((d for d in DELIMITERS if d in text), None)
    if delimiter is None:
        return None
    answer = text.rpartition(delimiter)[-1].strip()
    return answer.split("\n", 1)[0].strip(" .!?$%")


def to_decimal(text: Optional[str]) -> Optional[Decimal]:
    """``text`` as a number (integer, decimal or fraction a/b), None where it is none."""
    if text is None:
        return None
    try:
        text = text.strip()
        if "/" in text:
            parts = text.split("/")
            if len(parts) != 2:
                return None
            numerator, denominator = Decimal(parts[0].strip()), Decimal(parts[1].strip())
            return None if denominator == 0 else numerator / denominator
        return Decimal(text)
    except (DivisionByZero, InvalidOperation, ValueError):
        return None


def accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """The fraction of predictions whose final answer equals the reference's (``get_accuracy``)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    correct = 0
    for prediction, reference in zip(predictions, references):
        parsed_prediction, parsed_reference = parse_answer(prediction), parse_answer(reference)
        if parsed_reference is None:
            raise ValueError(f"the reference has no final answer: {reference[-80:]!r}")
        number, truth = to_decimal(parsed_prediction), to_decimal(parsed_reference)
        predicted = float(number) if number is not None else parsed_prediction
        if truth is not None:
            expected = float(truth)
        else:
            expected = parsed_reference if parsed_prediction is not None else None
        correct += expected is not None and predicted is not None and expected == predicted
    return correct / len(predictions)
