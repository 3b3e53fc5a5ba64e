"""Small builders shared by tests: tiny models from conf/model, with a method applied."""

from __future__ import annotations


def tiny_classifier(name: str, num_labels: int = 2, seed: int = 0):
    """A randomly initialised tiny model of ``conf/model/<name>.yaml`` with a classification head."""
    import torch

    from peftbench.config import model_config
    from peftbench.models.load import load_for_classification, load_tokenizer

    model_cfg = model_config(name)
    tokenizer = load_tokenizer(model_cfg)
    torch.manual_seed(seed)
    return load_for_classification(model_cfg, num_labels, tokenizer).eval(), tokenizer


def planned(results_dir, model: str, *overrides: str):
    """The plan of a short run of ``model`` on the embedded data (four evaluation rows) into ``results_dir``."""
    from peftbench.launch import compose
    from peftbench.plan import plan

    return plan(compose([f"model={model}", "data.source=embedded", "trainer.progress=false", "data.max_eval_samples=4",
                         f"results_dir={results_dir}", *overrides]))  # fmt: skip


def soft_prompt_vectors(model):
    """The vectors of the model's one soft prompt (prompt tuning, P-tuning), (n, d)."""
    from peftbench.methods.soft_prompt import SoftPrompt

    (module,) = [m for m in model.modules() if isinstance(m, SoftPrompt)]
    return module.prompts()


def apply_method(model, method_node: dict, model_name: str):
    """Freeze ``model``, apply the method, unfreeze the head (as a run does); return the method."""
    from peftbench.config import model_config
    from peftbench.methods.base import attach
    from peftbench.models.anatomy import anatomy_of
    from peftbench.models.load import model_type
    from peftbench.plan import method_from_config

    method = method_from_config(method_node)
    attach(method, model, anatomy_of(model_type(model_config(model_name))))
    return method


def fresh_adapted(model_name: str, method_node: dict):
    """A new tiny classifier (seed 0) with the method applied: the untrained twin of a test model."""
    model, _ = tiny_classifier(model_name)
    apply_method(model, method_node, model_name)
    return model


def method_and_head(model, method):
    """The method's and the head's parameter names; asserts the trainable set is exactly their
    disjoint union."""
    from peftbench.models.anatomy import head_parameter_names

    own, head = set(method.parameter_names(model)), set(head_parameter_names(model))
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert trainable == own | head and not own & head
    return own, head


def batch(tokenizer, texts=("a tiny test sentence", "another, somewhat longer test sentence here")):
    return tokenizer(list(texts), padding=True, return_tensors="pt")


# --- shared checks: one optimiser step, save/load round trip, parity with peft --------------------


def adamw_step(model, tokenizer, lr=1e-2, inputs=None) -> None:
    """One AdamW step on everything marked trainable, as the trainer would (labels [0, 1]).

    ``inputs`` defaults to ``batch(tokenizer)``; it is not modified."""
    import torch

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    inputs = batch(tokenizer) if inputs is None else inputs
    model(**{**inputs, "labels": torch.tensor([0, 1])}).loss.backward()
    optimizer.step()
    model.eval()


def changed(before, after, names) -> list:
    """The ``names`` whose parameter in ``after`` differs (bit for bit) from its copy in ``before``."""
    import torch

    return [name for name in names if not torch.equal(after[name], before[name])]


def assert_step_touches_only(model, allowed_names, tokenizer, inputs=None, label="the step"):
    """One AdamW step leaves every parameter outside ``allowed_names`` bit-identical.

    Returns ``(before, after)``: clones taken before the step and the live parameters after it."""
    allowed = set(allowed_names)
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    adamw_step(model, tokenizer, inputs=inputs)
    after = dict(model.named_parameters())
    moved = changed(before, after, [name for name in before if name not in allowed])
    assert not moved, f"{label} changed parameters that are neither the method's nor the head's: {moved[:5]}"
    return before, after


def assert_save_load_round_trip(model, tokenizer, rebuild, tmp_path, method, inputs=None):
    """Save the trained weights with peftbench.train.weights, load them into ``rebuild()`` (a fresh
    model with the method applied): the logits differ before the load and are identical after.

    The saved state must be exactly the method's and the head's parameters. Returns
    ``(path, inputs, trained_logits, fresh)`` for extra checks."""
    import torch

    from peftbench.models.anatomy import head_parameter_names
    from peftbench.train.weights import load_weights, save_weights, trainable_state

    path = tmp_path / "method.safetensors"
    state = trainable_state(model)
    assert set(state) == set(method.parameter_names(model)) | set(head_parameter_names(model))
    save_weights(state, path)

    fresh = rebuild()
    inputs = batch(tokenizer) if inputs is None else inputs
    with torch.no_grad():
        trained = model(**inputs).logits
        assert not torch.equal(fresh(**inputs).logits, trained), "the step changed nothing: the round trip proves nothing"
        load_weights(fresh, path)
        assert torch.equal(fresh(**inputs).logits, trained)
    return path, inputs, trained, fresh


def copy_into_peft(ours, theirs, select, peft_name, draw, widen=None) -> None:
    """The same random values (``draw(shape, generator)``, seed 1) in our parameters picked by
    ``select(name)`` and in peft's ``peft_name(name)``; ``widen(value, target)`` fits a value to
    peft's tensor where it holds more."""
    import torch

    generator = torch.Generator().manual_seed(1)
    their_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        if not select(name):
            continue
        value = draw(param.shape, generator)
        target = their_params[peft_name(name)]
        with torch.no_grad():
            param.copy_(value)
            if widen is not None:
                value = widen(value, target)
            target.copy_(value.reshape(target.shape))


def assert_same_logits_as_peft(ours, theirs, plain, tokenizer, differs, message) -> None:
    """Our adapted model and peft's give the same logits, and (``differs(got, plain_logits)``) not
    those of the plain model."""
    import torch

    inputs = batch(tokenizer)
    with torch.no_grad():
        expected = theirs(**inputs).logits
        got = ours(**inputs).logits
        plain_logits = plain(**inputs).logits
    assert differs(got, plain_logits), message
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def assert_merge_equals_unmerged_and_unmerge_restores(model, method, tokenizer, frozen_rtol=0.0) -> None:
    """Merging keeps the logits, unmerging keeps them too and restores the frozen weights."""
    import torch

    frozen = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    inputs = batch(tokenizer)
    with torch.no_grad():
        unmerged = model(**inputs).logits
        method.merge(model)
        merged = model(**inputs).logits
        method.unmerge(model)
        again = model(**inputs).logits
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=0)
    torch.testing.assert_close(again, unmerged, atol=1e-5, rtol=0)
    for param_name, param in model.named_parameters():
        if param_name in frozen:
            torch.testing.assert_close(param, frozen[param_name], atol=1e-6, rtol=frozen_rtol)


# --- a run trained in process, and its folder loaded back ---------------------------------------


def finished_run(results_dir, model: str, *overrides: str):
    """A short run of ``model`` on the embedded data, set up, trained and finished in this process
    (``peftbench.run``'s steps): the session, its model holding the best weights."""
    from peftbench.run import finish, setup, train

    run = setup(planned(results_dir, model, *overrides))
    finish(run, train(run))
    return run


def reloaded(run):
    """A fresh model for ``run``'s plan, built as the run builds it (heads per task included), with
    the run's method and its saved weights loaded; returns (model, method)."""
    from peftbench.methods.base import attach
    from peftbench.pipeline import add_heads, build_model
    from peftbench.plan import method_from_config
    from peftbench.results.record import WEIGHTS_FILE
    from peftbench.train.weights import load_weights

    p, first = run.plan, run.plan.parts[0]
    model, tokenizer, fmt = build_model(p.model_cfg, first.task, p.config["seed"], first.format, p.config["task"])
    add_heads(p, model, run.pipeline)
    method = method_from_config(p.config["method"])
    method.tasks = [part.task.name for part in p.parts]
    attach(method, model, p.anatomy, tokenizer, train_head=fmt.trains_head)
    load_weights(model, run.folder / WEIGHTS_FILE)
    return model.eval(), method


def task_losses(run, model, method, rows: int = 4) -> dict:
    """Each task's training loss on its first ``rows`` validation features, its task (and head) selected."""
    import torch

    from peftbench.models.heads import select_head

    losses = {}
    model.eval()
    for part, fmt, features in zip(run.plan.parts, run.pipeline.formats, run.pipeline.features):
        method.select_task(part.task.name)
        select_head(model, part.task.name)
        with torch.no_grad():
            losses[part.task.name] = float(fmt.loss(model, fmt.collate(features[part.task.main_split][:rows], training=True)))
    return losses


def copied_runs(results_dir, source, fakes: dict) -> dict:
    """Copies of the finished run folder ``source`` in ``results_dir``, one per entry of ``fakes``
    (key -> the record to write there), each named ``<source>-<key>`` and recorded under that run
    id; returns key -> run id."""
    import json
    import shutil
    from pathlib import Path

    names = {}
    for key, record in fakes.items():
        folder = Path(results_dir) / f"{Path(source).name}-{key.lower()}"
        shutil.copytree(source, folder)
        (folder / "record.json").write_text(json.dumps({**record, "run_id": folder.name}))
        names[key] = folder.name
    return names


def refused_before_a_model_loads(capsys, monkeypatch, argv: list[str]) -> str:
    """Run ``peftbench`` with ``argv``; assert it exits 2 with one ``error:`` line and loads no model.
    Returns the line."""
    import pytest

    import peftbench.pipeline
    from peftbench.cli import main

    def never(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(peftbench.pipeline, "build_model", never)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    return err
