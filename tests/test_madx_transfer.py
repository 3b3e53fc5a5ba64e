"""MAD-X's zero-shot cross-lingual transfer (Pfeiffer et al. 2020), end to end on tiny-BERT: language
adapters trained by masked LM on the shipped English and Spanish Wikipedia text (``task=mlm``), a
task adapter trained on English XNLI over the English one and chosen on English dev, and the
Spanish test split scored once with the Spanish language adapter swapped in
(``method.target_language_run``). The swap's defining property: only the language adapter's and
invertible adapter's tensors change, and the swapped model is the model built directly on the
Spanish adapter under the same task adapter. Then the refusals of a target run that cannot be
swapped in, and ``method=adapter_stack``, the issue's name for ``madx``."""

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from peftbench.errors import UserError
from peftbench.methods.adapters import ADAPTER, STACKED
from peftbench.methods.invertible import INVERTIBLE
from peftbench.run import execute, finish, setup, train
from tests.cli import peftbench
from tests.helpers import copied_runs, planned

SHORT = ("trainer.max_steps=2", "trainer.batch_size=2")
LANGUAGE = ("method=pfeiffer", "method.invertible=nice", "task=mlm", "task.max_length=32", *SHORT)
XNLI_ES = ("task=xnli", "task.language=es", *SHORT)

pytestmark = pytest.mark.usefixtures("one_thread")


def madx(source: str, target: str | None = None) -> tuple[str, ...]:
    return ("method=madx", f"method.language_run={source}", *([f"method.target_language_run={target}"] if target else []))


@pytest.fixture(scope="module")
def transfer(tmp_path_factory):
    """The three runs of the recipe; the MAD-X run with a spy on its model that keeps, for each
    forward pass after training (the test split's scoring), the logits and the invertible
    adapter's first weight the model had then."""
    results = tmp_path_factory.mktemp("madx_transfer") / "results"
    en, es = (execute(planned(results, "tiny-bert", *LANGUAGE, f"task.language={code}"))["run_id"] for code in ("en", "es"))
    run = setup(planned(results, "tiny-bert", *madx(en, es), *XNLI_ES))
    result = train(run)
    seen = []
    invertible = getattr(run.model.base_model, INVERTIBLE)
    run.model.register_forward_hook(lambda module, args, output: seen.append(
        (output.logits.detach().clone(), invertible.F[0].weight.detach().clone())))  # fmt: skip
    finish(run, result)
    return results, en, es, run, seen


def language_names(model) -> list[str]:
    return [name for name, _ in model.named_parameters() if f".{ADAPTER}." in name or INVERTIBLE in name]


def direct_model(transfer):
    """MAD-X built directly on the Spanish language adapter (``method.language_run`` = the Spanish
    run), given the trained run's task adapter and head."""
    from peftbench.methods.base import attach
    from peftbench.pipeline import build_model

    results, _, es, run, _ = transfer
    p = planned(results, "tiny-bert", *madx(es), *XNLI_ES)
    model, tokenizer, _ = build_model(p.model_cfg, p.parts[0].task, p.config["seed"], p.parts[0].format, p.config["task"])
    attach(p.method, model, p.anatomy, tokenizer)
    trained = load_file(str(run.folder / "method.safetensors"))
    own = set(language_names(model))
    spanish, state = load_file(str(results / es / "method.safetensors")), model.state_dict()
    assert all(torch.equal(state[name], spanish[name]) for name in own)  # read from the Spanish run
    missing, unexpected = model.load_state_dict({n: v for n, v in trained.items() if n not in own}, strict=False)
    assert not unexpected and not any(STACKED in n or "classifier" in n for n in missing)
    return model.eval()


def test_trained_on_english_selected_on_english_dev_spanish_test_scored_with_the_spanish_adapter(transfer):
    results, en, es, run, seen = transfer
    record = json.loads((run.folder / "record.json").read_text())
    assert record["status"] == "complete" and record["method"] == "madx" and record["task"] == "xnli"
    assert record["language_run"] == {"run_id": en, "task": "mlm"}
    assert record["target_language_run"] == {"run_id": es, "task": "mlm"}
    assert set(record["metrics"]["best"]) == {"validation", "test"} and record["metrics"]["main"]["split"] == "validation"
    splits = run.plan.parts[0].data.splits
    assert {row["language"] for row in splits["train"] + splits["validation"]} == {"en"}
    assert {row["language"] for row in splits["test"]} == {"es"}
    history = [json.loads(line) for line in (run.folder / "history.jsonl").read_text().splitlines()]
    assert [entry["phase"] for entry in history].count("test") == 1
    # the run's test forward ran with the Spanish invertible adapter and gave the directly built model's logits
    (logits, invertible), = seen
    spanish, english = (load_file(str(results / name / "method.safetensors")) for name in (es, en))
    key = f"bert.{INVERTIBLE}.F.0.weight"
    assert torch.equal(invertible, spanish[key]) and not torch.equal(spanish[key], english[key])
    fmt, features = run.pipeline.formats[0], run.pipeline.features[0]["test"]
    with torch.no_grad():
        assert torch.equal(logits, direct_model(transfer)(**fmt.collate(features)).logits)
    # the run keeps the English adapter it trained and was selected with
    saved = load_file(str(run.folder / "method.safetensors"))
    assert all(torch.equal(saved[name], english[name]) for name in language_names(run.model))


def test_swapping_changes_only_the_language_adapter_and_gives_the_model_built_on_the_target(transfer):
    """Inside ``testing``: each language-adapter and invertible-adapter tensor is the Spanish run's,
    every other tensor (task adapter, head, backbone) bit-identical; the outputs are those of MAD-X
    built on the Spanish adapter; after it, every tensor is back bit for bit."""
    results, _, es, run, _ = transfer
    model, method = run.model.eval(), run.plan.method
    swapped = set(language_names(model))
    assert len(swapped) == 4 * 2 + 8 and any(INVERTIBLE in name for name in swapped)  # 2 blocks' LA; F and G
    spanish = load_file(str(results / es / "method.safetensors"))
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    batch = run.pipeline.formats[0].collate(run.pipeline.features[0]["test"])
    with torch.no_grad():
        unswapped = model(**batch).logits
        with method.testing(model):
            during = {name: tensor.clone() for name, tensor in model.state_dict().items()}
            logits = model(**batch).logits
        expected = direct_model(transfer)(**batch).logits
    assert during.keys() == before.keys()
    assert {name for name in before if not torch.equal(before[name], during[name])} <= swapped
    assert all(torch.equal(during[name], spanish[name]) for name in swapped)
    assert any(not torch.equal(during[name], before[name]) for name in swapped)
    assert any(STACKED in name for name in before)  # the task adapter: among the untouched tensors
    assert torch.equal(logits, expected) and not torch.equal(logits, unswapped)
    assert all(torch.equal(tensor, before[name]) for name, tensor in model.state_dict().items())


@pytest.fixture(scope="module")
def faked(transfer):
    """Runs faked from the Spanish run's record, each in a folder named by its run id."""
    results, _, es, _, _ = transfer
    record = json.loads((results / es / "record.json").read_text())
    config = record["method_config"]
    fakes = {
        "INCOMPLETE": {**record, "status": "running", "finished": None},
        "PLAIN": {**record, "method_config": {**config, "invertible": "none"}},
        "HOULSBY": {**record, "method": "houlsby", "method_config": {**config, "name": "houlsby"}},
        "ROBERTA": {**record, "model": "tiny-roberta"},
        "WIDER": {**record, "method_config": {**config, "reduction_factor": 8}},
        "GELU": {**record, "method_config": {**config, "activation": "gelu"}},
    }
    return copied_runs(results, results / es, fakes)


@pytest.mark.parametrize(
    "target, task, message",
    [
        ("nope", XNLI_ES, "method.target_language_run: run 'nope' in"),
        ("INCOMPLETE", XNLI_ES, "is not complete; finish it first"),
        ("PLAIN", XNLI_ES, "is a pfeiffer run without an invertible adapter; MAD-X stacks on a language adapter"),
        ("HOULSBY", XNLI_ES, "is a houlsby run; MAD-X stacks on a language adapter"),
        ("ROBERTA", XNLI_ES, "adapted tiny-roberta, not tiny-bert; name a language run of model=tiny-bert"),
        ("WIDER", XNLI_ES, "has a language adapter with bottleneck 4, run '{en}' one with 2"),
        ("GELU", XNLI_ES, "has a language adapter with activation gelu, run '{en}' one with relu"),
        ("EN", XNLI_ES, "adapted to en, but the test split is es; name a language run of task.language=es"),
        ("ES", ("task=mrpc", *SHORT), "method.target_language_run: task mrpc has no target language"),
    ],
)
def test_a_target_run_that_cannot_be_swapped_in_is_refused_while_planning(transfer, faked, target, task, message):
    results, en, es, _, _ = transfer
    named = {"EN": en, "ES": es, **faked}.get(target, target)
    with pytest.raises(UserError, match=re.escape(message.format(en=en))):
        planned(results, "tiny-bert", *madx(en, named), *task)


def test_the_command_refuses_it_in_one_line_exit_2_and_writes_nothing(transfer, faked):
    results, en, _, _, _ = transfer
    before = sorted(p.name for p in results.iterdir())
    done = peftbench("run", "model=tiny-bert", "data.source=embedded", *madx(en, faked["WIDER"]), *XNLI_ES,
                     f"results_dir={results}", cwd=results.parent)  # fmt: skip
    assert done.returncode == 2 and "has a language adapter with bottleneck 4" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert sorted(p.name for p in results.iterdir()) == before


def test_adapter_stack_is_madx_under_its_generic_name(transfer):
    """``method=adapter_stack`` composes to the same config, hence the same run, as ``method=madx``."""
    results, en, es, run, _ = transfer
    alias = planned(results, "tiny-bert", "method=adapter_stack", f"method.language_run={en}",
                    f"method.target_language_run={es}", *XNLI_ES)  # fmt: skip
    assert alias.run_id == run.plan.run_id and alias.config["method"] == run.plan.config["method"]
    assert planned(results, "tiny-bert", *madx(en), *XNLI_ES).run_id != run.plan.run_id  # the target is part of the id
