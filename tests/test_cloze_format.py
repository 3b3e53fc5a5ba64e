"""The cloze format: a masked LM fills the prompt's [MASK] (PET; P-tuning's BERT runs on SuperGLUE).

Label words of one token are checked against transformers' own fill-mask pipeline on the same text
and model (an outside computation of p(word | text with [MASK])); answers of several tokens
against a direct ``AutoModelForMaskedLM`` computation of PET's decoding written out here
(timoschick/pet ``pet/task_helpers.py``, ``MultiMaskTaskHelper._get_choice_probabilities_batched``:
fill the remaining mask whose candidate token is most probable, add its log-probability) and its
training losses (``CopaTaskHelper.train_step``, ``MultiMaskTaskHelper.train_step``). The rows
are the embedded SuperGLUE slices, except the COPA-style rows below, which are written by us.
"""

import dataclasses
import math

import pytest
import torch

from peftbench.config import identity
from peftbench.errors import UserError
from peftbench.formats import format_name
from peftbench.methods.base import attach
from peftbench.methods.templated_prompt import marker
from peftbench.pipeline import build_model
from peftbench.results.record import run_id
from peftbench.run import execute
from peftbench.tasks import get_task
from tests.cli import peftbench
from tests.helpers import planned, soft_prompt_vectors

pytestmark = pytest.mark.usefixtures("one_thread")

# COPA-style rows written by us (COPA's prompt: the premise, then "so" or "because"): choices of
# one, two and several tokens, so that both PET's one-mask and several-mask paths are met.
COPA_ROWS = [
    {"text": "The man turned on the faucet. What happened as a result?", "choices": ["Water.", "The sink filled up slowly."],
     "label": 0},
    {"text": "The girl was tired. What was the cause of this?", "choices": ["Yes", "She ran a marathon."], "label": 1},
]  # fmt: skip


def _cloze_run(tmp_path, task: str, *overrides: str):
    """A planned method=full cloze run of tiny-bert on ``task``, its model (seeded, untrained) and format."""
    p = planned(tmp_path, "tiny-bert", "method=full", f"task={task}", "task.format=cloze", *overrides)
    model, tokenizer, fmt = build_model(p.model_cfg, p.parts[0].task, 0, "cloze", p.config["task"])
    return p, model.eval(), tokenizer, fmt


def _mask_logits(model, tokenizer, texts: list[str]) -> torch.Tensor:
    """The MLM's logits at each text's [MASK] (one per text), computed directly."""
    inputs = tokenizer(texts, padding=True, return_tensors="pt")
    rows, places = (inputs["input_ids"] == tokenizer.mask_token_id).nonzero(as_tuple=True)
    assert rows.tolist() == list(range(len(texts)))
    return model(**inputs).logits[rows, places]


def test_one_token_label_scores_are_what_the_fill_mask_pipeline_gives(tmp_path):
    from transformers import pipeline

    p, model, tokenizer, fmt = _cloze_run(tmp_path, "rte", "task.max_length=512")
    task, rows = p.parts[0].task, p.parts[0].data.splits["validation"]
    assert task.verbalizers == ("True", "False")
    with torch.no_grad():
        ours = fmt.label_logits(model, fmt.collate(fmt.encode(rows)))
    assert fmt.one_token
    fill = pipeline("fill-mask", model=model, tokenizer=tokenizer)
    for row, scores in zip(rows, ours):
        found = fill(f"{task.prompt(row)} {tokenizer.mask_token}", targets=list(task.verbalizers))
        logp = {result["token"]: math.log(result["score"]) for result in found}
        reference = torch.tensor([logp[i] for i in fmt.label_ids.tolist()])
        # logits and log-probabilities differ by the row's log-partition: compare label to label
        torch.testing.assert_close(scores - scores[0], reference - reference[0], atol=1e-4, rtol=0)
        assert fmt.predict_batch(model, fmt.collate(fmt.encode([row]))) == [int(reference.argmax())]


def test_one_token_loss_is_cross_entropy_over_the_label_words_logits(tmp_path):
    p, model, tokenizer, fmt = _cloze_run(tmp_path, "rte", "task.max_length=512")
    task, rows = p.parts[0].task, p.parts[0].data.splits["validation"]
    with torch.no_grad():
        loss = fmt.loss(model, fmt.collate(fmt.encode(rows), training=True))
        logits = _mask_logits(model, tokenizer, [f"{task.prompt(row)} {tokenizer.mask_token}" for row in rows])
    words = [tokenizer.convert_tokens_to_ids(word.lower()) for word in task.verbalizers]
    expected = torch.nn.functional.cross_entropy(logits[:, words], torch.tensor([row["label"] for row in rows]))
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=0)


def _decoded(model, tokenizer, prompt: str, tokens: list[int]) -> float:
    """PET's ``default`` decoding of one candidate, one row at a time: len(tokens) masks after the
    prompt; fill the remaining mask whose token is most probable; sum the log-probabilities."""
    ids = tokenizer(prompt + f" {tokenizer.mask_token}" * len(tokens))["input_ids"]
    start = ids.index(tokenizer.mask_token_id)
    left, total = dict(zip(range(start, start + len(tokens)), tokens)), 0.0
    while left:
        probs = torch.softmax(model(input_ids=torch.tensor([ids])).logits[0], dim=-1)
        place = max(left, key=lambda at: probs[at, left[at]].item())
        total += math.log(probs[place, left[place]].item())
        ids[place] = left.pop(place)
    return total


def test_choices_are_decoded_most_confident_mask_first(tmp_path):
    from transformers import pipeline

    p, model, tokenizer, fmt = _cloze_run(tmp_path, "copa")
    task = p.parts[0].task
    features = fmt.encode(COPA_ROWS)
    assert [len(c) for c in features[0]["candidates"]] == [2, 6] and features[1]["candidates"][0] == [2748]
    with torch.no_grad():
        scores = fmt.decoded_scores(model, fmt.collate(features))
        expected = [[_decoded(model, tokenizer, task.prompt(row), c) for c in f["candidates"]]
                    for row, f in zip(COPA_ROWS, features)]  # fmt: skip
    torch.testing.assert_close(scores, torch.tensor(expected), atol=1e-4, rtol=0)
    # a one-token choice: its score is log p at the single mask, as the fill-mask pipeline gives it
    (found,) = pipeline("fill-mask", model=model, tokenizer=tokenizer)(
        f"{task.prompt(COPA_ROWS[1])} {tokenizer.mask_token}", targets=["yes"]
    )
    assert scores[1, 0].item() == pytest.approx(math.log(found["score"]), abs=1e-4)
    assert fmt.predict_batch(model, fmt.collate(features)) == scores.argmax(-1).tolist()


def _token_losses(model, tokenizer, prompt: str, candidates: list[list[int]]) -> list[torch.Tensor]:
    """Each candidate's token cross-entropies at the first masks of the prompt with as many masks
    as the longest candidate (one forward pass, as the helpers' train_step)."""
    ids = tokenizer(prompt + f" {tokenizer.mask_token}" * max(len(c) for c in candidates))["input_ids"]
    start = ids.index(tokenizer.mask_token_id)
    logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], dim=-1)
    return [-logprobs[range(start, start + len(c)), c] for c in candidates]


def test_two_choices_train_with_copas_hinge_on_token_averaged_losses(tmp_path):
    p, model, tokenizer, fmt = _cloze_run(tmp_path, "copa")
    task = p.parts[0].task
    features = fmt.encode(COPA_ROWS)
    with torch.no_grad():
        loss = fmt.loss(model, fmt.collate(features, training=True))
        right, wrong = [], []
        for row, f in zip(COPA_ROWS, features):
            losses = _token_losses(model, tokenizer, task.prompt(row), f["candidates"])
            right.append(losses[row["label"]])
            wrong.append(losses[1 - row["label"]])
    # CopaTaskHelper: CrossEntropyLoss() over the batch's right (wrong) tokens, then 1 + right - wrong, floored at 0
    expected = (1 + torch.cat(right).mean() - torch.cat(wrong).mean()).clamp(min=0)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5) and loss.item() > 0


def test_more_choices_train_with_pets_multimask_hinge(tmp_path):
    p, model, tokenizer, fmt = _cloze_run(tmp_path, "copa")
    rows = [dict(COPA_ROWS[0], choices=[*COPA_ROWS[0]["choices"], "Nothing"]), COPA_ROWS[1]]
    features = fmt.encode(rows)
    with torch.no_grad():
        loss = fmt.loss(model, fmt.collate(features, training=True))
        per_row = []
        for row, f in zip(rows, features):
            summed = [losses.sum() for losses in _token_losses(model, tokenizer, p.parts[0].task.prompt(row), f["candidates"])]
            gold = summed[row["label"]]
            per_row.append(sum((1 + gold - s).clamp(min=0) for i, s in enumerate(summed) if i != row["label"]))
    assert loss.item() == pytest.approx(torch.stack(per_row).mean().item(), abs=1e-4)


def test_templates_carry_the_official_patterns_words_after_their_mask():
    # THUDM/P-tuning@f4225d4 PT-Fewshot/data_utils/task_pvps.py: [..., MASK, "."] for RtePVP, BoolQPVP,
    # MultiRcPVP and CopaPVP, masks + "." for WscPVP; CbPVP and WicPVP end with the mask.
    tails = {"rte": ".", "cb": "", "boolq": ".", "multirc": ".", "wic": "", "wsc": ".", "copa": "."}
    assert {name: get_task(name).ptuning_template.tail for name in tails} == tails
    assert get_task("copa").ptuning_template.answer("The sink filled up slowly.") == "the sink filled up slowly"


def test_ptuning_vectors_fill_the_template_places_and_the_mask_stays_the_answers(tmp_path):
    p = planned(tmp_path, "tiny-bert", "method=ptuning", "task=rte", "method.length=3")
    assert p.parts[0].format == "cloze" and p.method.placements == {"rte": "template"}
    model, tokenizer, fmt = build_model(p.model_cfg, p.parts[0].task, 0, "cloze", p.config["task"])
    fmt.task = p.method.prompt_task(p.parts[0].task, [], 0, tokenizer, fmt.max_length)
    assert marker(tokenizer, cloze=True) == tokenizer.pad_token != tokenizer.mask_token
    row = p.parts[0].data.splits["validation"][0]
    (feature,) = fmt.encode([row])
    assert fmt.label_ids.tolist() == tokenizer.convert_tokens_to_ids(["yes", "no"])  # RtePVP's words, not the task's
    ids = torch.tensor([feature["input_ids"]])
    tokens = tokenizer.convert_ids_to_tokens(feature["input_ids"])
    # RtePVP 1: [premise, "Question:", hypothesis, "?", P, "Answer:", MASK, "."]
    places = [i for i, t in enumerate(tokens) if t == tokenizer.pad_token]
    assert places == list(range(places[0], places[0] + 3)) and tokens[places[0] - 1] == "?"
    assert tokens[places[-1] + 1 :] == ["answer", ":", tokenizer.mask_token, ".", tokenizer.sep_token]
    assert feature["at"] == tokens.index(tokenizer.mask_token) and feature["at"] not in places

    attach(p.method, model, p.anatomy, tokenizer, train_head=False)
    seen = {}
    model.base_model.register_forward_pre_hook(lambda m, a, kw: seen.update(kw), with_kwargs=True)
    with torch.no_grad():
        fmt.label_logits(model.eval(), fmt.collate([feature]))
        embedded = seen["inputs_embeds"][0]
        assert embedded.shape[0] == ids.shape[1]  # nothing prepended
        torch.testing.assert_close(embedded[places], soft_prompt_vectors(model), rtol=0, atol=0)
        words = model.get_input_embeddings()(ids[0])
        others = [i for i in range(ids.shape[1]) if i not in places]
        torch.testing.assert_close(embedded[others], words[others], rtol=0, atol=0)  # the [MASK] among them


def test_a_prompt_put_before_the_input_shifts_the_mask_it_is_read_at(tmp_path):
    import copy

    p = planned(tmp_path, "tiny-bert", "method=ptuning", "task=rte", "method.template=false", "task.format=cloze",
                "method.length=4", "task.max_length=512")  # fmt: skip
    assert p.method.placements == {"rte": "prepend"}
    model, tokenizer, fmt = build_model(p.model_cfg, p.parts[0].task, 0, "cloze", p.config["task"])
    plain = copy.deepcopy(model).eval()
    attach(p.method, model, p.anatomy, tokenizer, train_head=False)
    rows = p.parts[0].data.splits["validation"][:2]
    with torch.no_grad():
        ours = fmt.label_logits(model.eval(), fmt.collate(fmt.encode(rows)))
        expected = []
        for row in rows:  # the model reads [P; E(x)] as inputs_embeds, its [MASK] 4 places later
            ids = tokenizer(f"{p.parts[0].task.prompt(row)} {tokenizer.mask_token}", return_tensors="pt")["input_ids"]
            embeds = torch.cat([soft_prompt_vectors(model), plain.get_input_embeddings()(ids[0])])[None]
            logits = plain(inputs_embeds=embeds).logits[0, 4 + ids[0].tolist().index(tokenizer.mask_token_id)]
            expected.append(logits[fmt.label_ids])
    torch.testing.assert_close(ours, torch.stack(expected), atol=1e-5, rtol=0)


def test_ptuning_run_on_an_encoder_records_cloze_and_its_template(tmp_path):
    p = planned(tmp_path, "tiny-bert", "method=ptuning", "task=rte", "trainer.max_steps=2", "trainer.batch_size=2")
    before = run_id(identity(p.config), prefix=p.run_id.rsplit(".", 1)[0])  # its id when encoders read a head
    assert p.run_id != before
    record = execute(p)
    assert record["status"] == "complete" and record["format"] == "cloze"
    assert record["prompt_placement"] == {"rte": "template"} and record["method_config"]["template"] is True
    assert record["params"]["trainable"] == record["params"]["trainable_method"]  # the MLM head stays frozen


@pytest.mark.parametrize("task", ["rte", "copa"])
def test_full_fine_tuning_runs_in_the_cloze_format(tmp_path, task):
    p = planned(tmp_path, "tiny-bert", "method=full", f"task={task}", "task.format=cloze", "trainer.max_steps=1",
                "trainer.batch_size=2")  # fmt: skip
    record = execute(p)
    assert record["status"] == "complete" and record["format"] == "cloze"
    assert record["params"]["trainable"] == record["params"]["total"]
    assert 0 <= record["metrics"]["best"]["validation"]["accuracy"] <= 1


def test_tasks_without_label_words_and_non_encoders_are_refused():
    words = dataclasses.replace(get_task("rte"), verbalizers=(), prompt=None)  # a classification head's task
    with pytest.raises(UserError, match="rte has no prompt and label words to fill a \\[MASK\\] with; run it with "
                                        "task.format=classification"):  # fmt: skip
        format_name(words, "encoder", "cloze")
    with pytest.raises(UserError, match="needs a masked language model"):
        format_name(get_task("rte"), "decoder", "cloze")
    assert format_name(get_task("rte"), "encoder", None, "cloze") == "cloze"  # a method's preference
    assert format_name(get_task("rte"), "encoder", "classification", "cloze") == "classification"  # task.format wins


def test_the_command_refuses_cloze_without_label_words_in_one_line_before_loading(tmp_path):
    done = peftbench("run", "model=tiny-bert", "task=e2e", "task.format=cloze", "data.source=embedded",
                     f"results_dir={tmp_path / 'results'}", cwd=tmp_path)  # fmt: skip
    message = "task e2e has no prompt and label words to fill a [MASK] with; run it with task.format=classification"
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and message in done.stderr
    assert not (tmp_path / "results").exists()
