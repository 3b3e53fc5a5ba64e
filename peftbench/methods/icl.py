"""In-context learning: the no-training baseline (Brown et al. 2020, "Language Models are Few-Shot
Learners", §2 and Appendix G), the row T-Few (Liu et al. 2022, Table 1) and the seeds set PEFT
against.

No parameter changes. Each evaluated row x is preceded by k solved examples drawn at random from
the training split, each written as the task's prompt followed by its answer (the label's word, the
right choice, or the reference text), separated by a blank line:

    prompt(x₁) y₁ ⏎⏎ … ⏎⏎ prompt(x_k) y_k ⏎⏎ prompt(x)

and the model ranks the candidates (or generates) after it exactly as a tuned model would. As in
GPT-3, the k examples are drawn afresh for every evaluated row (seeded: the same seed gives the same
draws), never the row itself, and demonstrations that would not fit ``task.max_length`` with the
row and its longest answer are dropped, whole, from the front (GPT-3 fills its 2,048-token window
the same way). k = 0 is the zero-shot baseline.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from peftbench.methods import register
from peftbench.methods.base import Method, MethodConfig, require

SEPARATOR = "\n\n"


@register
class InContextLearning(Method):
    name = "icl"
    composable = False
    families = frozenset({"decoder", "encoder_decoder"})
    trains = False

    @dataclass
    class Config(MethodConfig):
        shots: int = 4  # k demonstrations before each evaluated row

        def check(self) -> None:
            require(self.shots >= 0, f"method.shots must be ≥ 0, got {self.shots}; set method.shots=0 for zero-shot or k for k-shot")

    def apply(self, model, anatomy) -> None:
        """Nothing to add: every weight stays frozen."""

    def parameter_names(self, model) -> list[str]:
        return []

    def check_format(self, task, format_name: str) -> None:
        require(
            format_name in {"rank_classification", "generation"},
            f"method icl needs the language model to read the task as text, but task {task.name} runs as "
            f"{format_name}; pick a task with label words or text to write (e.g. task=rte, task=e2e) "
            "and leave task.format unset",
        )

    def prompt_task(self, task, train_rows: list[dict], seed: int, tokenizer, max_length: int):
        """``task`` with its prompt preceded by k demonstrations from ``train_rows``."""
        k = self.config.shots
        if k == 0:
            return task
        solved = [row for row in train_rows if row["label"] is not None]

        def prompt(row: dict) -> str:
            question = task.prompt(row)
            draw = random.Random(f"{seed}\x00{question}")  # str seeds hash with sha512: same in every process
            pool = [r for r in draw.sample(solved, min(len(solved), k + 1)) if task.prompt(r) != question][:k]
            longest = max(token_count(tokenizer, a) for a in answers(task, row))
            budget = max_length - token_count(tokenizer, question) - longest
            shown = [f"{task.prompt(r)} {_answer(task, r)}" for r in pool]
            while shown and sum(token_count(tokenizer, s + SEPARATOR) for s in shown) > budget:
                shown.pop(0)
            return SEPARATOR.join([*shown, question])

        return dataclasses.replace(task, prompt=prompt)


def _answer(task, row: dict) -> str:
    """The row's right answer as text: the label's word, the right choice or the reference."""
    if task.kind == "generation":
        return row["label"]
    if task.kind == "multiple_choice":
        return row["choices"][row["label"]]
    return task.verbalizers[row["label"]]


def answers(task, row: dict) -> list[str]:
    """Every answer the row's prompt may be followed by (to keep room for the longest)."""
    if task.kind == "generation":
        return [row["label"] or ""]
    return list(row["choices"]) if task.kind == "multiple_choice" else list(task.verbalizers)


def token_count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])
