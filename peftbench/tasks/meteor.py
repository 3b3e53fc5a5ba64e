"""METEOR 1.5 (Denkowski and Lavie, 2014, "Meteor Universal: Language Specific Translation
Evaluation for Any Target Language") as the WebNLG 2017 and DART evaluations run it:
``java -Xmx2G -jar meteor-1.5.jar HYP REFS -l en -norm -r N``, the system-level ``Final score``.

The jar is the one PyPI's ``pycocoevalcap`` ships (its resources, the English synonym, function
word and paraphrase files, are byte-identical to Yale-LILY/dart's ``evaluation/meteor-1.5``),
driven in its ``-stdio`` mode with the same ``-l en -norm``: one ``SCORE`` line per segment gives
the segment's statistics against its best reference, and one ``EVAL`` line over all of them the
score of their sum, which is what the file mode prints as the final score. The padding lines of
the file mode (``-r N`` reads N lines per segment, empty ones where a segment has fewer
references) are never a segment's best reference, so only the references themselves are sent.

Java starts and METEOR loads its paraphrase table (about 10 s) once per process; the process then
serves every later call.
"""

from __future__ import annotations

import shutil

from peftbench.errors import UserError

_process = None


def meteor(references: list[list[str]], hypotheses: list[str]) -> float:
    """METEOR 1.5's final score (a fraction) of the hypotheses, each against its references."""
    global _process
    if shutil.which("java") is None:
        raise UserError(
            "METEOR 1.5 runs on Java: install a JRE (e.g. `apt-get install default-jre-headless`) "
            "so that `java` is on PATH"
        )
    if _process is None:
        from pycocoevalcap.meteor.meteor import Meteor

        _process = Meteor()
    gts = {i: list(segment) for i, segment in enumerate(references)}
    res = {i: [hypothesis] for i, hypothesis in enumerate(hypotheses)}
    return float(_process.compute_score(gts, res)[0])
