"""P-tuning's templates (Liu et al., arXiv 2103.10385): prompt tokens at the template's places among
the row's words and its anchor tokens, not before the input.

The expected patterns are the official code's for FewGLUE, read from THUDM/P-tuning@f4225d4
``PT-Fewshot/data_utils/task_pvps.py`` (the pattern each ``PT-Fewshot/scripts/<task>_pt_few_shot.sh``
runs: 1, WSC 2), written out here part by part; a run's model must then find its prompt vectors at
exactly the marked places (the code's ``block_flag``), the input's length unchanged.
"""

import pytest
import torch

from peftbench.config import model_config
from peftbench.errors import UserError
from peftbench.methods import build_method
from peftbench.methods.base import attach
from peftbench.methods.templated_prompt import shares
from peftbench.models.load import load_language_model, load_tokenizer
from peftbench.run import execute
from peftbench.tasks import get_task
from peftbench.tasks.ptuning_templates import TEMPLATES
from tests.helpers import planned, soft_prompt_vectors

pytestmark = pytest.mark.usefixtures("one_thread")

P = ("prompt", "")
OFFICIAL = {  # task: (pattern, parts up to [MASK], label words in the task's label order or None)
    "rte": ("RtePVP 1", [("text", "premise"), ("anchor", "Question:"), ("text", "hypothesis"), ("anchor", "?"), P,
                         ("anchor", "Answer:")], ("Yes", "No")),
    "cb": ("CbPVP 1", [("text", "a"), ("sep", ""), ("field", "b"), ("anchor", "?"), P, ("anchor", "answer:")],
           ("Yes", "No", "Maybe")),
    "boolq": ("BoolQPVP 1", [("text", "b"), ("anchor", "."), P, ("anchor", "Question:"), ("text", "a"),
                             ("anchor", "? Answer:")], None),
    "multirc": ("MultiRcPVP 1", [("text", "passage"), ("anchor", ". Question:"), ("field", "question"),
                                 ("anchor", "? Is it"), ("field", "answer"), ("anchor", "?"), P], None),
    "wic": ("WicPVP 1", [("text", "sentence1"), ("sep", ""), ("text", "sentence2"), P, ("field", "word")], None),
    "wsc": ("WscPVP 2", [P, ("text", "sentence"), P, ("anchor", "pronoun '*"), ("field", "pronoun"),
                         ("anchor", "*' refers to"), ("field", "referent"), ("anchor", "?")], None),
    "copa": ("CopaPVP 1", [("field", "choice1"), ("anchor", "or"), ("field", "choice2"), ("anchor", "?"),
                           ("text", "premise"), ("field", "connective"), P], None),
}  # fmt: skip


def test_the_seven_fewglue_tasks_carry_the_official_patterns():
    assert set(TEMPLATES) == set(OFFICIAL)
    for name, (pvp, parts, words) in OFFICIAL.items():
        template = get_task(name).ptuning_template
        assert (template.pvp, list(template.parts), template.verbalizers) == (pvp, parts, words), name
        assert template.slots == (2 if name == "wsc" else 1), name
    assert get_task("record").ptuning_template is None and get_task("sst2").ptuning_template is None
    # the official label order: RtePVP entailment -> Yes; CbPVP entailment/contradiction/neutral -> Yes/No/Maybe
    assert get_task("rte").label_names == ("entailment", "not_entailment")
    assert get_task("cb").label_names == ("entailment", "contradiction", "neutral")


def test_fields_read_the_rows_as_the_tasks_build_them():
    copa = {"text": "The man turned on the faucet. What happened as a result?", "label": 1,
            "choices": ["The toilet filled with water.", "Water flowed from the spout."]}  # fmt: skip
    assert TEMPLATES["copa"].fields(copa) == {
        "premise": "The man turned on the faucet", "connective": "so",
        "choice1": "the toilet filled with water", "choice2": "water flowed from the spout",
    }  # fmt: skip
    wic = {"text": "class: An emerging professional class.", "text_pair": "class: Showed real class.", "label": 0}
    assert TEMPLATES["wic"].fields(wic)["word"] == "*class *?"
    rte = {"text": "A dog barks.", "text_pair": "An animal makes noise.", "label": 0}
    assert TEMPLATES["rte"].fields(rte)["hypothesis"] == "An animal makes noise"


def test_tokens_share_the_places_in_order():
    assert shares(1, 1) == [1] and shares(20, 1) == [20] and shares(5, 2) == [3, 2] and shares(2, 2) == [1, 1]


def _planned(tmp_path, model, *overrides):
    return planned(tmp_path, model, "method=ptuning", *overrides)


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-t5"])
def test_cb_prompt_tokens_stand_at_the_template_places_not_before_the_input(tmp_path, model):
    p = _planned(tmp_path, model, "task=cb", "method.length=3")
    assert p.method.placements == {"cb": "template"}
    part = p.parts[0]
    model_cfg = model_config(model)
    tokenizer = load_tokenizer(model_cfg)
    prompted = p.method.prompt_task(part.task, [], 0, tokenizer, 128)
    assert prompted.verbalizers == ("Yes", "No", "Maybe")
    row = part.data.splits["validation"][0]
    text = prompted.prompt(row)
    # [premise, [SEP], hypothesis, "?", P P P, "answer:"]: the anchor "?" just before the places
    assert text.endswith(f"{row['text_pair']} ? [MASK][MASK][MASK] answer:") and text.startswith(row["text"][:20])
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    marker = tokenizer.convert_tokens_to_ids("[MASK]")
    places = (ids[0] == marker).nonzero()[:, 0].tolist()
    tail = tokenizer.convert_ids_to_tokens(ids[0, places[0] - 1 : places[-1] + 3].tolist())
    assert tail[0] == "?" and tail[-2:] == ["answer", ":"] and len(places) == 3
    assert places == list(range(places[0], places[0] + 3))

    lm = load_language_model(model_cfg, tokenizer).eval()
    attach(p.method, lm, p.anatomy, tokenizer, train_head=False)
    stack = lm.get_encoder() if model == "tiny-t5" else lm.base_model
    seen = {}
    stack.register_forward_pre_hook(lambda m, a, kw: seen.update(kw), with_kwargs=True)
    with torch.no_grad():
        lm(input_ids=ids, attention_mask=torch.ones_like(ids), **({"labels": ids[:, :2]} if model == "tiny-t5" else {}))
        embedded = seen["inputs_embeds"][0]
        assert embedded.shape[0] == ids.shape[1]  # nothing prepended
        torch.testing.assert_close(embedded[places], soft_prompt_vectors(lm), rtol=0, atol=0)
        words = lm.get_input_embeddings()(ids[0])
        others = [i for i in range(ids.shape[1]) if i not in places]
        torch.testing.assert_close(embedded[others], words[others], rtol=0, atol=0)


def test_wsc_splits_its_tokens_over_its_two_places(tmp_path):
    p = _planned(tmp_path, "tiny-gpt2", "task=wsc", "method.length=3")
    tokenizer = load_tokenizer(model_config("tiny-gpt2"))
    prompted = p.method.prompt_task(p.parts[0].task, [], 0, tokenizer, 128)
    row = p.parts[0].data.splits["validation"][0]
    pronoun, _, sentence = row["text"].partition(": ")
    assert prompted.prompt(row) == (
        f"[MASK][MASK] {sentence} [MASK] pronoun '* {pronoun} *' refers to {row['text_pair']} ?"
    )


def test_a_long_passage_is_shortened_and_keeps_its_places(tmp_path):
    p = _planned(tmp_path, "tiny-gpt2", "task=boolq", "method.length=4")
    tokenizer = load_tokenizer(model_config("tiny-gpt2"))
    prompted = p.method.prompt_task(p.parts[0].task, [], 0, tokenizer, 48)
    for row in p.parts[0].data.splits["validation"][:10]:
        ids = tokenizer(prompted.prompt(row))["input_ids"]
        assert len(ids) <= 48 - 1 and ids.count(tokenizer.convert_tokens_to_ids("[MASK]")) == 4
        assert prompted.prompt(row).endswith(f"Question: {row['text']} ? Answer:")  # the question kept whole


def test_fewer_tokens_than_places_is_refused_before_loading(tmp_path):
    with pytest.raises(UserError, match=r"method.length=1 is fewer than the 2 prompt places of wsc's P-tuning "
                                        r"template \(WscPVP 2\); set method.length=2 or method.template=false"):
        _planned(tmp_path, "tiny-gpt2", "task=wsc", "method.length=1")
    assert not any(tmp_path.iterdir())
    unplaced = _planned(tmp_path, "tiny-gpt2", "task=wsc", "method.length=1", "method.template=false")
    assert unplaced.method.placements == {"wsc": "prepend"}


def test_prepended_elsewhere(tmp_path):
    assert _planned(tmp_path, "tiny-gpt2", "task=sst2").method.placements == {"sst2": "prepend"}  # no template
    method = build_method({"name": "ptuning"})
    method.check_format(get_task("record"), "rank_classification")  # the code has no ReCoRD pattern
    assert method.placements == {"record": "prepend"}
    for off in ("method.template=false", "task.format=classification"):  # a classification head reads no prompt text
        encoder = _planned(tmp_path, "tiny-bert", "task=cb", off)
        assert encoder.method.placements == {"cb": "prepend"} and encoder.parts[0].format == "classification"
    encoder = _planned(tmp_path, "tiny-bert", "task=cb")  # the paper's reading: a masked LM (tests/test_cloze_format.py)
    assert encoder.method.placements == {"cb": "template"} and encoder.parts[0].format == "cloze"


def test_the_record_says_where_the_prompt_went(tmp_path):
    record = execute(_planned(tmp_path, "tiny-gpt2", "task=cb", "trainer.max_steps=1", "trainer.batch_size=2"))
    assert record["status"] == "complete" and record["prompt_placement"] == {"cb": "template"}
    assert record["method_config"]["template"] is True
