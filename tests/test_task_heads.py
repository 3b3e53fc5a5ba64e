"""A head per task in multi-task runs on models whose formats train a head (peftbench.models.heads):
each task's head has its task's outputs, is selected with the task, and HF's loss follows it
(cross-entropy for classes, MSE for a regression); a task's batch reaches only its own head."""

import pytest
import torch

from peftbench.models.anatomy import head_parameter_names
from peftbench.models.heads import PerTask, add_task_heads, select_head
from tests.helpers import tiny_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("model_name", ["tiny-bert", "tiny-deberta-v2", "tiny-gpt2"])
def test_each_task_has_its_own_head_and_loss(model_name):
    model, tokenizer = tiny_classifier(model_name, num_labels=2)
    own = {name: p for name, p in model.named_parameters() if name in head_parameter_names(model)}
    add_task_heads(model, {"rte": 2, "stsb": 1, "cb": 3})
    heads = [m for m in model.modules() if isinstance(m, PerTask)]
    assert heads and all(list(m.heads) == ["rte", "stsb", "cb"] for m in heads)
    names = head_parameter_names(model)
    for name, p in own.items():  # the first task keeps the head the model was built with
        head, _, rest = name.partition(".")
        assert model.get_parameter(f"{head}.heads.rte.{rest}") is p
    assert {n.split(".")[2] for n in names} == {"rte", "stsb", "cb"}
    assert all(bool(torch.isfinite(model.get_parameter(n)).all()) for n in names)

    inputs = tokenizer(["a tiny test sentence", "another, longer test sentence"], padding=True, return_tensors="pt")
    with torch.no_grad():
        select_head(model, "stsb")
        scores = torch.tensor([0.5, 4.0])
        out = model(**inputs, labels=scores)
        assert out.logits.shape == (2, 1)
        assert torch.allclose(out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(), scores))
        select_head(model, "cb")
        labels = torch.tensor([2, 0])
        out = model(**inputs, labels=labels)
        assert out.logits.shape == (2, 3)
        assert torch.allclose(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))

    select_head(model, "rte")
    model(**inputs, labels=torch.tensor([0, 1])).loss.backward()
    moved = {n for n in names if model.get_parameter(n).grad is not None}
    assert moved and all(".heads.rte." in n for n in moved)
