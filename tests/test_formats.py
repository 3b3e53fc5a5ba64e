"""Formats: which one a task runs in, and each format's scores and losses against direct computation."""

import dataclasses

import pytest
import torch

from peftbench.config import model_config
from peftbench.errors import UserError
from peftbench.formats import format_name, make_format
from peftbench.models.load import load_language_model, load_tokenizer
from peftbench.tasks import get_task
from tests.helpers import apply_method, tiny_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

SST2 = get_task("sst2")
# SST-2 as a verbalised task (the label words of PET / LM-BFF) and as a two-choice task.
VERBALISED = dataclasses.replace(SST2, verbalizers=("terrible", "great"), prompt=lambda row: f"{row['text']} It was")
CHOICES = dataclasses.replace(SST2, kind="multiple_choice", prompt=lambda row: row["text"])
ROWS = [
    {"text": "a gripping, funny film", "text_pair": None, "label": 1},
    {"text": "dull", "text_pair": None, "label": 0},
    {"text": "the plot never settles and the jokes land nowhere near their mark", "text_pair": None, "label": 0},
]
CHOICE_ROWS = [
    {"text": "The man turned on the faucet.", "choices": ["The toilet filled.", "Water flowed from the spout."], "label": 1},
    {"text": "It rained.", "choices": ["The ground got wet.", "The sun set.", "A cat slept."], "label": 0},
]
OPTIONS = {"max_length": 64, "unlikelihood_loss": False, "length_normalized_loss": False}


@pytest.mark.parametrize(
    "task, family, expected",
    [
        (SST2, "encoder", "classification"),
        (SST2, "decoder", "rank_classification"),  # GLUE has label words (GPT-3 style prompts)
        (get_task("stsb"), "encoder", "classification"),  # a regression: a one-output head on an encoder
        (get_task("stsb"), "encoder_decoder", "rank_classification"),  # read as text, as T5 does
        (VERBALISED, "encoder", "classification"),
        (VERBALISED, "decoder", "rank_classification"),
        (VERBALISED, "encoder_decoder", "rank_classification"),
        (CHOICES, "encoder", "multiple_choice"),
        (CHOICES, "decoder", "rank_classification"),
    ],
)
def test_the_format_follows_the_family(task, family, expected):
    assert format_name(task, family) == expected


@pytest.mark.parametrize(
    "task, family, override, message",
    [
        (SST2, "encoder", "tagging", "unknown task.format"),
        (SST2, "decoder", "generation", "not text to write"),
        (CHOICES, "encoder", "classification", "multiple choice"),
        (SST2, "encoder", "multiple_choice", "no choices"),
        (VERBALISED, "encoder", "rank_classification", "needs a language model"),
        (dataclasses.replace(get_task("stsb"), verbalizers=(), prompt=None), "decoder", "rank_classification",
         "no prompt and label words"),
    ],
)
def test_impossible_formats_are_refused(task, family, override, message):
    with pytest.raises(UserError, match=message):
        format_name(task, family, override)


def _language_model(name: str, seed: int = 0):
    model_cfg = model_config(name)
    tokenizer = load_tokenizer(model_cfg)
    torch.manual_seed(seed)
    return load_language_model(model_cfg, tokenizer).eval(), tokenizer, model_cfg


def _format(task, tokenizer, family, **options):
    return make_format("rank_classification", task, tokenizer, {**OPTIONS, **options, "family": family})


def _direct_beta(model, tokenizer, family, prompt: str, candidate: str) -> float:
    """β(x, y) computed on one unpadded sequence with the full logits."""
    if family == "encoder_decoder":
        source = torch.tensor([tokenizer(prompt)["input_ids"]])
        target = torch.tensor([tokenizer(candidate)["input_ids"]])
        logits = model(input_ids=source, labels=target).logits[0]
        return torch.log_softmax(logits, -1).gather(-1, target[0][:, None]).mean().item()
    prompt_ids = tokenizer(prompt)["input_ids"]
    ids = prompt_ids + tokenizer(" " + candidate, add_special_tokens=False)["input_ids"]
    logits = model(input_ids=torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits[:-1], -1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
    return logp[len(prompt_ids) - 1 :].mean().item()


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama", "tiny-t5"])
def test_rank_scores_are_length_normalised_likelihoods(name):
    model, tokenizer, model_cfg = _language_model(name)
    fmt = _format(VERBALISED, tokenizer, model_cfg.family)
    features = fmt.encode(ROWS)
    with torch.no_grad():
        batch = fmt.collate(features)  # three rows of different lengths, padded together
        beta = fmt.scores(*fmt.token_logprobs(model, batch), batch["sizes"])
        for row, scores in zip(ROWS, beta):
            expected = [_direct_beta(model, tokenizer, model_cfg.family, VERBALISED.prompt(row), word)
                        for word in VERBALISED.verbalizers]  # fmt: skip
            torch.testing.assert_close(scores, torch.tensor(expected), atol=1e-5, rtol=0)
        assert fmt.predict(model, features, batch_size=2) == beta.argmax(-1).tolist()


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5"])
def test_stsb_read_as_text_trains_on_the_nearest_value_and_predicts_the_ranked_value(name):
    """STS-B as T5 reads it: the target is the score rounded to 0.2 ("3.8"), one of 26 words; the
    prediction is the value of the word ranked first, scored by Pearson/Spearman as a regression."""
    stsb = get_task("stsb")
    assert stsb.verbalizers[:3] == ("0.0", "0.2", "0.4") and stsb.verbalizers[-1] == "5.0" and len(stsb.verbalizers) == 26
    model, tokenizer, model_cfg = _language_model(name)
    fmt = _format(stsb, tokenizer, model_cfg.family)
    rows = [{"text": "A man plays a guitar.", "text_pair": "A man plays music.", "label": 3.8299999},
            {"text": "A cat sleeps.", "text_pair": "Stocks fell today.", "label": 0.1},
            {"text": "Two dogs run.", "text_pair": "Two dogs are running.", "label": 4.9}]  # fmt: skip
    features = fmt.encode(rows)
    assert [stsb.verbalizers[f["labels"]] for f in features] == ["3.8", "0.0", "5.0"]
    with torch.no_grad():
        batch = fmt.collate(features)
        ranked = fmt.scores(*fmt.token_logprobs(model, batch), batch["sizes"]).argmax(-1).tolist()
        predicted = fmt.predict(model, features, batch_size=2)
    assert predicted == [index / 5 for index in ranked]
    assert set(stsb.score(predicted, rows)) == {"pearson", "spearman"}


def test_rank_choices_per_row_and_losses():
    model, tokenizer, model_cfg = _language_model("tiny-gpt2")
    fmt = _format(CHOICES, tokenizer, "decoder", unlikelihood_loss=True, length_normalized_loss=True)
    features = fmt.encode(CHOICE_ROWS)
    batch = fmt.collate(features, training=True)
    assert batch["sizes"] == [2, 3]  # every choice scored when a loss compares them
    logprobs, mask = fmt.token_logprobs(model, batch)
    beta = fmt.scores(logprobs, mask, batch["sizes"])
    assert beta[0, 2] == float("-inf") and torch.isfinite(beta[1]).all()
    # L = L_LM + L_UL + L_LN, each written out for the two rows (gold 1 and gold 0).
    lm = -(beta[0, 1] + beta[1, 0]) / 2
    ln = torch.nn.functional.cross_entropy(beta, torch.tensor([1, 0]))

    def ul(rows):
        p = logprobs[rows].exp()
        return -(torch.log1p(-p) * mask[rows]).sum() / mask[rows].sum()

    expected = lm + (ul([0]) + ul([3, 4])) / 2 + ln  # flat sequences: row 0 → 0, 1; row 1 → 2, 3, 4
    torch.testing.assert_close(fmt.loss(model, batch), expected, atol=1e-5, rtol=0)

    plain = _format(CHOICES, tokenizer, "decoder")
    gold_only = plain.collate(features, training=True)
    assert gold_only["sizes"] == [1, 1]  # the LM loss needs the right choice alone
    torch.testing.assert_close(plain.loss(model, gold_only), lm, atol=1e-5, rtol=0)


def test_rank_classification_under_prompt_tuning():
    """A soft prompt lengthens the decoder's output: the scores read the last positions."""
    model, tokenizer, model_cfg = _language_model("tiny-gpt2")
    apply_method(model, {"name": "prompt", "length": 4, "init": "random_uniform"}, "tiny-gpt2")
    fmt = _format(VERBALISED, tokenizer, "decoder")
    loss = fmt.loss(model, fmt.collate(fmt.encode(ROWS), training=True))
    loss.backward()
    prompt = next(p for p in model.parameters() if p.requires_grad)
    assert prompt.grad is not None and prompt.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


def test_multiple_choice_scores_each_pair_with_the_head():
    model, tokenizer = tiny_classifier("tiny-bert", num_labels=1)
    fmt = make_format("multiple_choice", CHOICES, tokenizer, {**OPTIONS, "family": "encoder"})
    features = fmt.encode(CHOICE_ROWS)
    with torch.no_grad():
        batch = fmt.collate(features, training=True)
        scores = fmt.scores(model, {k: v for k, v in batch.items()})
        for row, row_scores in zip(CHOICE_ROWS, scores):
            one_by_one = [model(**tokenizer(row["text"], choice, return_tensors="pt")).logits[0, 0] for choice in row["choices"]]
            torch.testing.assert_close(row_scores[: len(one_by_one)], torch.stack(one_by_one), atol=1e-5, rtol=0)
        assert scores[0, 2] == float("-inf")
        torch.testing.assert_close(fmt.loss(model, batch), torch.nn.functional.cross_entropy(scores, torch.tensor([1, 0])))
        assert fmt.predict(model, features, batch_size=1) == scores.argmax(-1).tolist()


E2E_ROWS = [
    {"text": "name[The Vaults], eatType[pub]", "label": "The Vaults is a pub.", "group": "name[The Vaults], eatType[pub]"},
    {"text": "name[The Vaults], eatType[pub]", "label": "A pub: The Vaults.", "group": "name[The Vaults], eatType[pub]"},
    {"text": "name[Alimentum], area[city centre], familyFriendly[no]", "label": "Alimentum is in the city centre.",
     "group": "name[Alimentum], area[city centre], familyFriendly[no]"},
]
GENERATE = {**OPTIONS, "label_smoothing": 0.0, "num_beams": 1, "length_penalty": 1.0, "no_repeat_ngram_size": 0,
            "max_new_tokens": 5}  # fmt: skip


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5"])
def test_generation_loss_is_the_reference_tokens_cross_entropy(name):
    model, tokenizer, model_cfg = _language_model(name)
    fmt = make_format("generation", get_task("e2e"), tokenizer, {**GENERATE, "family": model_cfg.family})
    batch = fmt.collate(fmt.encode(E2E_ROWS), training=True)
    with torch.no_grad():
        # transformers' own loss for the same labels (-100 on the prompt and the padding)
        output = model(**batch)
        torch.testing.assert_close(fmt.loss(model, batch), output.loss, atol=1e-5, rtol=0)
        # with label smoothing ε: (1 − ε)·(−log p(y)) + ε·mean over the vocabulary of (−log p), per target token
        logits, labels = output.logits, batch["labels"]
        if model_cfg.family == "decoder":
            logits, labels = logits[:, :-1], labels[:, 1:]
        logp, mask = torch.log_softmax(logits, -1), labels != -100
        nll = -logp.gather(-1, labels.clamp(min=0)[..., None])[..., 0]
        expected = (0.9 * nll - 0.1 * logp.mean(-1))[mask].mean()
        smoothed = make_format("generation", get_task("e2e"), tokenizer,
                               {**GENERATE, "label_smoothing": 0.1, "family": model_cfg.family})  # fmt: skip
        torch.testing.assert_close(smoothed.loss(model, batch), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5"])
def test_generation_once_per_group_and_padding_free(name):
    model, tokenizer, model_cfg = _language_model(name)
    fmt = make_format("generation", get_task("e2e"), tokenizer, {**GENERATE, "family": model_cfg.family})
    features = fmt.encode(E2E_ROWS)
    with torch.no_grad():
        texts = fmt.predict(model, features, batch_size=8)  # two inputs of different lengths, padded together
        assert texts[0] == texts[1]  # one MR, one generation
        alone = fmt.predict(model, features[2:], batch_size=1)
    assert texts[2] == alone[0]
    assert all(isinstance(text, str) for text in texts)
