"""Multi-task batches: each batch from one task, the task drawn by temperature sampling.

A task with n_i training rows is drawn with probability

    p_i = r_i^(1/T) / Σ_j r_j^(1/T),   r_i = n_i / Σ_j n_j

(Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
Transformer", §3.5.2; Karimi Mahabadi et al. 2021, "Parameter-efficient Multi-task Fine-tuning
for Transformers via Shared Hypernetworks", §3, T = 10): T = 1 samples in proportion to the data,
T → ∞ uniformly. An epoch is as many batches as the tasks' own epochs together; within a task,
batches are length-grouped (``peftbench.train.batching``) and a task that runs out starts a fresh
order of its rows. Batches hold one task each, so a task's format (and a task-conditioned method)
sees only its own rows.
"""

from __future__ import annotations

import torch

from peftbench.train.batching import EpochBatches, length_grouped_batches


def task_probabilities(sizes: list[int], temperature: float) -> list[float]:
    """p_i ∝ (n_i / Σ n)^(1/T) for the tasks' training sizes ``sizes``."""
    total = sum(sizes)
    weights = [(n / total) ** (1 / temperature) for n in sizes]
    return [w / sum(weights) for w in weights]


class TemperatureBatches(EpochBatches):
    """A batch sampler over the tasks' features laid end to end (task i's rows at ``offsets[i]``),
    checkpointed as ``EpochBatches``: a resumed epoch is drawn again and its done batches skipped."""

    def __init__(self, lengths: list[list[int]], batch_size: int, seed: int, temperature: float, group: int = 50):
        super().__init__(lengths, batch_size, seed, group)
        self.probabilities = task_probabilities([len(rows) for rows in lengths], temperature)
        self.offsets = [sum(len(rows) for rows in lengths[:i]) for i in range(len(lengths))]

    def __len__(self) -> int:
        return sum(-(-len(rows) // self.batch_size) for rows in self.lengths)

    def epoch(self) -> list[list[int]]:
        tasks = torch.multinomial(torch.tensor(self.probabilities), len(self), replacement=True, generator=self.generator)
        queues: list[list[list[int]]] = [[] for _ in self.lengths]
        batches = []
        for task in tasks.tolist():
            if not queues[task]:
                queues[task] = length_grouped_batches(self.lengths[task], self.batch_size, self.generator, self.group)
            batches.append([self.offsets[task] + i for i in queues[task].pop()])
        return batches


def multitask_loader(formats: list, features: list[list[dict]], batch_size: int, seed: int, temperature: float,
                     group_by_length: bool = True):  # fmt: skip
    """Training batches over several tasks: each collated by its task's format and tagged with
    the task's index (``batch["task"]``), drawn by ``TemperatureBatches``."""
    lengths = [[fmt.length(f) for f in rows] for fmt, rows in zip(formats, features)]
    items = [(task, feature) for task, rows in enumerate(features) for feature in rows]

    def collate(batch: list[tuple[int, dict]]) -> dict:
        task = batch[0][0]
        return {**formats[task].collate([feature for _, feature in batch], training=True), "task": task}

    return torch.utils.data.DataLoader(
        items,
        batch_sampler=TemperatureBatches(lengths, batch_size, seed, temperature, group=50 if group_by_length else 1),
        collate_fn=collate,
        generator=torch.Generator().manual_seed(seed),
    )
