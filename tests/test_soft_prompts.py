"""Prompt tuning and P-tuning against HF peft 0.21 (same count, same outputs), on every tiny family.

HF peft hands a sequence-classification model ``inputs_embeds`` = [P; E(x)], so a decoder's head
(GPT-2, Llama) cannot see the padding and pools the *last position*: under right padding that is a
pad token for every row shorter than the batch. Ours keeps ``input_ids`` visible to the head, so
it pools the last real token; the decoder parity tests therefore compare each row of our padded
batch with peft on that row alone (where peft is right). T5ForSequenceClassification refuses
``inputs_embeds`` under peft (NotImplementedError); ours puts the prompt on the encoder input.
"""

import copy

import pytest
import torch

from peftbench.config import model_config
from peftbench.errors import UserError
from peftbench.methods import build_method
from peftbench.models.anatomy import anatomy_of, head_parameter_names
from peftbench.models.load import skeleton_for_classification
from tests.helpers import adamw_step, apply_method, assert_save_load_round_trip, assert_step_touches_only
from tests.helpers import method_and_head, tiny_classifier

ALL_MODELS = ["tiny-bert", "tiny-roberta", "tiny-gpt2", "tiny-llama", "tiny-t5"]
PEFT_MODELS = ["tiny-bert", "tiny-roberta", "tiny-gpt2", "tiny-llama"]  # peft cannot run T5 SEQ_CLS prompts
DECODERS = {"tiny-gpt2", "tiny-llama"}
N = 5
PROMPT = {"name": "prompt", "length": N, "init": "sampled_vocab"}
PTUNING = {
    "lstm": {"name": "ptuning", "length": N, "encoder": "lstm", "hidden_size": 12},
    "mlp": {"name": "ptuning", "length": N, "encoder": "mlp", "hidden_size": 24},
    "emb": {"name": "ptuning", "length": N, "encoder": "emb"},
}
TEXTS = ["a tiny test sentence", "another, somewhat longer test sentence here"]
PAIRS = ["pair one", "the second pair text"]

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore::FutureWarning")]


def _inputs(tokenizer, rows=None):
    texts, pairs = TEXTS, PAIRS
    if rows is not None:
        texts, pairs = [TEXTS[i] for i in rows], [PAIRS[i] for i in rows]
    return tokenizer(texts, pairs, padding=True, return_tensors="pt")  # right padding, token_type_ids for BERT


def _trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _own(model, method) -> int:
    names = set(method.parameter_names(model))
    return sum(p.numel() for n, p in model.named_parameters() if n in names)


def _copy_into_peft(ours, theirs, generator) -> None:
    """Random values for our prompt parameters, the same values in peft's ``prompt_encoder.default``."""
    their_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        if ".soft_prompt." not in name:
            continue
        value = torch.randn(param.shape, generator=generator) * 0.5
        with torch.no_grad():
            param.copy_(value)
            their_params["prompt_encoder.default." + name.split(".soft_prompt.", 1)[1]].copy_(value)


def _assert_same_logits(ours, theirs, tokenizer, name, plain):
    inputs = _inputs(tokenizer)
    with torch.no_grad():
        got = ours(**inputs).logits
        assert (got - plain(**inputs).logits).abs().max() > 1e-4, "the prompt must change the outputs"
        if name in DECODERS:  # peft pools the last position: compare row by row, unpadded
            expected = torch.cat([theirs(**_inputs(tokenizer, [i])).logits for i in range(len(TEXTS))])
        else:
            expected = theirs(**inputs).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", PEFT_MODELS)
def test_prompt_tuning_same_count_and_logits_as_peft(name):
    from peft import PromptTuningConfig, get_peft_model

    model, tokenizer = tiny_classifier(name)
    config = PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=N)
    theirs = get_peft_model(copy.deepcopy(model), config).eval()
    ours = copy.deepcopy(model)
    method = apply_method(ours, PROMPT, name)
    assert _own(ours, method) == N * 32
    assert _trainable(ours) == _trainable(theirs)
    _copy_into_peft(ours, theirs, torch.Generator().manual_seed(1))
    _assert_same_logits(ours, theirs, tokenizer, name, model)


@pytest.mark.parametrize("encoder", ["lstm", "mlp"])
@pytest.mark.parametrize("name", PEFT_MODELS)
def test_ptuning_same_count_and_logits_as_peft(name, encoder):
    from peft import PromptEncoderConfig, get_peft_model

    model, tokenizer = tiny_classifier(name)
    node = PTUNING[encoder]
    config = PromptEncoderConfig(
        task_type="SEQ_CLS", num_virtual_tokens=N, encoder_reparameterization_type=encoder.upper(),
        encoder_hidden_size=node["hidden_size"],
    )  # fmt: skip
    theirs = get_peft_model(copy.deepcopy(model), config).eval()
    ours = copy.deepcopy(model)
    method = apply_method(ours, node, name)
    their_encoder = sum(p.numel() for n, p in theirs.named_parameters() if n.startswith("prompt_encoder."))
    assert _own(ours, method) == their_encoder
    assert _trainable(ours) == _trainable(theirs)
    _copy_into_peft(ours, theirs, torch.Generator().manual_seed(2))
    _assert_same_logits(ours, theirs, tokenizer, name, model)


def test_ptuning_parameter_counts_by_hand():
    """d = 32, n = 5. LSTM (h = d/2 = 16 by default, the paper's code): 2 bi-layers + MLP 32→32→32."""
    model, _ = tiny_classifier("tiny-bert")
    method = apply_method(model, {"name": "ptuning", "length": N, "encoder": "lstm"}, "tiny-bert")
    d, h = 32, 16
    lstm = 2 * (4 * h * (d + h) + 8 * h) + 2 * (4 * h * (2 * h + h) + 8 * h)  # per direction: W_ih, W_hh, 2 biases
    mlp = (2 * h * 2 * h + 2 * h) + (2 * h * d + d)
    assert _own(model, method) == N * d + lstm + mlp
    model, _ = tiny_classifier("tiny-bert")
    method = apply_method(model, {"name": "ptuning", "length": N, "encoder": "emb"}, "tiny-bert")
    assert _own(model, method) == N * d


@pytest.mark.parametrize("name", ALL_MODELS)
def test_right_padding_gives_each_row_its_unpadded_logits(name):
    model, tokenizer = tiny_classifier(name)
    apply_method(model, PROMPT, name)
    with torch.no_grad():
        padded = model(**_inputs(tokenizer)).logits
        alone = torch.cat([model(**_inputs(tokenizer, [i])).logits for i in range(len(TEXTS))])
    assert _inputs(tokenizer)["attention_mask"].eq(0).any(), "the batch must have padding"
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=0)


def test_t5_prompt_goes_to_the_encoder_only():
    model, tokenizer = tiny_classifier("tiny-t5")
    apply_method(model, PROMPT, "tiny-t5")
    lengths = {}
    model.transformer.encoder.register_forward_hook(lambda m, a, out: lengths.__setitem__("enc", out[0].shape[1]))
    model.transformer.decoder.register_forward_hook(lambda m, a, out: lengths.__setitem__("dec", out[0].shape[1]))
    inputs = _inputs(tokenizer)
    with torch.no_grad():
        model(**inputs)
    width = inputs["input_ids"].shape[1]
    assert lengths == {"enc": width + N, "dec": width}


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-gpt2"])
def test_deep_copy_keeps_its_own_prompt(name):
    model, tokenizer = tiny_classifier(name)
    apply_method(model, PTUNING["mlp"], name)
    twin = copy.deepcopy(model)
    inputs = _inputs(tokenizer)
    with torch.no_grad():
        before = twin(**inputs).logits
        model.base_model.soft_prompt.embedding.weight.mul_(3)
        torch.testing.assert_close(twin(**inputs).logits, before, atol=0, rtol=0)
        assert not torch.equal(model(**inputs).logits, before)


# --- initialisation (Lester et al. §3.2) ------------------------------------------------------


def _apply(name, node, tokenizer=None):
    model, tok = tiny_classifier(name)
    method = build_method(node)
    method.tokenizer = tokenizer
    model.requires_grad_(False)
    method.apply(model, anatomy_of(model_config(name).architecture["model_type"]))
    return model, tok


def _is_vocab_row(rows, table):
    return bool((rows[:, None, :] == table[None, :, :]).all(dim=-1).any(dim=1).all())


def test_random_uniform_init_is_in_range():
    model, _ = _apply("tiny-bert", {"name": "prompt", "length": 100, "init": "random_uniform"})
    weight = model.bert.soft_prompt.embedding.weight
    assert weight.abs().max() <= 0.5 and weight.abs().max() > 0.45 and weight.std() > 0.2


@pytest.mark.parametrize("top", [0, 100])
def test_sampled_vocab_init_takes_vocabulary_rows(top):
    model, _ = _apply("tiny-roberta", {"name": "prompt", "length": 20, "init": "sampled_vocab", "vocab_top": top})
    table = model.get_input_embeddings().weight
    prompt = model.roberta.soft_prompt.embedding.weight.detach()
    assert prompt.dtype == torch.float32
    assert _is_vocab_row(prompt, table[: top or None])


def test_class_label_init_embeds_the_label_words_then_samples():
    model, tokenizer = tiny_classifier("tiny-bert")
    words = ["negative", "unbelievably positive"]
    node = {"name": "prompt", "length": 6, "init": "class_label", "init_words": words, "vocab_top": 0}  # WordPiece: no order
    model, _ = _apply("tiny-bert", node, tokenizer)
    table = model.get_input_embeddings().weight.detach()
    prompt = model.bert.soft_prompt.embedding.weight.detach()
    for row, word in zip(prompt, words):
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        torch.testing.assert_close(row, table[ids].mean(dim=0))
    assert len(tokenizer("unbelievably positive", add_special_tokens=False)["input_ids"]) > 1
    assert _is_vocab_row(prompt[len(words) :], table)


def test_class_label_words_need_the_tokenizer():
    with pytest.raises(UserError, match="tokenizer"):
        _apply("tiny-bert", {"name": "prompt", "length": 4, "init": "class_label", "init_words": ["yes"]})


def test_class_label_without_words_falls_back_to_sampled_vocab():
    with pytest.warns(UserWarning, match="sampled vocabulary"):
        model, _ = _apply("tiny-bert", {"name": "prompt", "length": 4, "init": "class_label"})
    assert _is_vocab_row(model.bert.soft_prompt.embedding.weight.detach(), model.get_input_embeddings().weight)


# --- the paper's defaults: class labels from the task, samples from the 5,000 most frequent ids -----


def _planned_prompt(tmp_path, *overrides):
    from peftbench.launch import compose, expand_lists
    from peftbench.plan import plan

    return plan(compose(expand_lists(["method=prompt", "data.source=embedded", f"results_dir={tmp_path}", *overrides])))


def _attached(p):
    """The planned run's method on its tiny language model, with the run's tokenizer (as a run does)."""
    from peftbench.methods.base import attach
    from peftbench.models.load import load_language_model, load_tokenizer

    tokenizer = load_tokenizer(p.model_cfg)
    model = load_language_model(p.model_cfg, tokenizer)
    attach(p.method, model, p.anatomy, tokenizer, train_head=False)
    from peftbench.methods.soft_prompt import SoftPrompt

    (module,) = [m for m in model.modules() if isinstance(m, SoftPrompt)]
    return model, tokenizer, module.embedding.weight.detach()


def test_class_label_default_embeds_the_tasks_label_words_first(tmp_path):
    """Lester et al. §3.2 and the official from_embedded_list: prompt[i] = mean embedding of class
    label i's tokens, the rest sampled; the labels are the run's tasks' verbalisers, each once."""
    p = _planned_prompt(tmp_path, "model=tiny-gpt2", "task=[rte,cb]", "method.vocab_top=0", "method.length=12")
    assert p.method.config.init == "class_label" and not p.method.config.init_words
    words = ["True", "False", "true", "false", "neither"]  # rte's, then cb's (cb's "true"/"false" are new words)
    assert p.method.class_labels == words
    model, tokenizer, prompt = _attached(p)
    table = model.get_input_embeddings().weight.detach()
    for row, word in zip(prompt, words):
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        torch.testing.assert_close(row, table[ids].float().mean(dim=0), rtol=0, atol=0)
    assert _is_vocab_row(prompt[len(words) :], table)


def test_single_token_labels_are_the_rows_peft_embeds_for_their_text(tmp_path):
    """Outside reference: HF peft's PromptTuningInit.TEXT embeds the tokens of a text, special tokens
    included ([CLS] t1 t2 t3 [SEP] for MiniLM's tokenizer). For cb's single-token labels, our first
    rows are peft's rows 1-3 for the text "true false neither"."""
    from peft import PromptTuningConfig, PromptTuningInit
    from peft.tuners.prompt_tuning.model import PromptEmbedding

    from peftbench.models.load import weights_folder

    p = _planned_prompt(tmp_path, "model=tiny-gpt2", "task=cb", "method.vocab_top=0", "method.length=5")
    model, tokenizer, prompt = _attached(p)
    assert all(len(tokenizer(w, add_special_tokens=False)["input_ids"]) == 1 for w in p.method.class_labels)
    config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=5, token_dim=prompt.shape[1],
                                num_transformer_submodules=1, prompt_tuning_init=PromptTuningInit.TEXT,
                                prompt_tuning_init_text=" ".join(p.method.class_labels),
                                tokenizer_name_or_path=str(weights_folder(p.model_cfg)))  # fmt: skip
    theirs = PromptEmbedding(config, model.get_input_embeddings()).embedding.weight.detach()
    torch.testing.assert_close(prompt[:3], theirs[1:4], rtol=0, atol=0)


def test_default_samples_the_5000_most_frequent_ids_without_replacement(tmp_path):
    """vocab_top 5000 (§3.2; population_size = 5000 in the official configs) on a vocabulary stored by
    score (a SentencePiece unigram tokenizer in the tiny T5's folder): every sampled vector is one of
    the first 5,000 rows, each drawn once. The whole table has 30,522 rows: 40 draws from it would all
    land below 5,000 with probability (5000/30522)^40 ≈ 4e-32."""
    from tests.test_vocabulary_order import unigram

    unigram([-2.0 - 0.25 * i for i in range(40)]).save_pretrained(tmp_path / "model")
    p = _planned_prompt(tmp_path, "model=tiny-t5", f"model.path={tmp_path / 'model'}", "task=rte",
                        "method.init=sampled_vocab", "method.length=40")  # fmt: skip
    assert p.method.config.vocab_top == 5000
    model, _, prompt = _attached(p)
    table = model.get_input_embeddings().weight.detach()
    assert table.shape[0] == 30522
    hits = (prompt[:, None, :] == table[None, :, :]).all(dim=-1)
    ids = hits.float().argmax(dim=1)
    assert hits.any(dim=1).all() and (ids < 5000).all() and len(set(ids.tolist())) == 40


def test_a_vocabulary_without_frequency_order_is_refused_before_loading(tmp_path):
    with pytest.raises(UserError) as error:
        _planned_prompt(tmp_path, "model=tiny-t5", "task=rte")  # MiniLM's WordPiece
    assert "method.vocab_top=5000" in str(error.value) and "set method.vocab_top=0" in str(error.value)
    assert "\n" not in str(error.value) and not any(tmp_path.iterdir())
    # no vector is sampled: nothing to refuse
    _planned_prompt(tmp_path, "model=tiny-t5", "task=rte", "method.init=random_uniform")
    _planned_prompt(tmp_path, "model=tiny-t5", "task=rte", "method.length=2")  # rte's two labels fill it
    _planned_prompt(tmp_path, "model=tiny-t5", "task=rte", "method.vocab_top=0")


def test_labels_beyond_the_prompt_are_dropped_with_a_warning():
    from peftbench.methods.prompt import label_words

    config = build_method({"name": "prompt", "length": 2}).config
    with pytest.warns(UserWarning, match="3 label words for 2 prompt tokens"):
        assert label_words(config, ["a", "b", "c"]) == ["a", "b"]


def test_counts_from_config_alone_on_meta():
    model_cfg = model_config("roberta-base")
    model = skeleton_for_classification(model_cfg)
    model.requires_grad_(False)
    method = build_method({"name": "prompt", "length": 100})
    method.apply(model, anatomy_of("roberta"))
    assert _own(model, method) == 100 * 768
    assert all(n.startswith("classifier.") for n in head_parameter_names(model))


# --- training and saving ------------------------------------------------------------------------

CASES = [(k, node, m) for k, node in [("prompt", PROMPT)] + list(PTUNING.items()) for m in ALL_MODELS]
IDS = [f"{k}-{m}" for k, _, m in CASES]


@pytest.mark.parametrize("kind, node, name", CASES, ids=IDS)
def test_one_step_moves_only_method_and_head(kind, node, name):
    model, tokenizer = tiny_classifier(name)
    method = apply_method(model, node, name)
    own, head = method_and_head(model, method)
    assert own
    before, after = assert_step_touches_only(model, own | head, tokenizer, inputs=_inputs(tokenizer))
    assert all(not torch.equal(after[n], before[n]) for n in own if n.endswith("embedding.weight"))


@pytest.mark.parametrize("kind, node, name", CASES, ids=IDS)
def test_save_load_round_trip(kind, node, name, tmp_path):
    model, tokenizer = tiny_classifier(name)
    method = apply_method(model, node, name)
    adamw_step(model, tokenizer, inputs=_inputs(tokenizer))

    def rebuild():
        torch.manual_seed(123)  # another random prompt in the fresh build
        fresh, _ = tiny_classifier(name)
        apply_method(fresh, node, name)
        return fresh

    assert_save_load_round_trip(model, tokenizer, rebuild, tmp_path, method, inputs=_inputs(tokenizer))


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "node, fragment",
    [
        ({"name": "prompt", "length": 0}, "length must be a positive"),
        ({"name": "prompt", "init": "zeros"}, "init 'zeros' is unknown"),
        ({"name": "prompt", "init_range": 0.0}, "init_range"),
        ({"name": "prompt", "vocab_top": -1}, "vocab_top"),
        ({"name": "prompt", "length": 1, "init_words": ["yes", "no"]}, "2 words for a prompt of 1"),
        ({"name": "ptuning", "length": 0}, "length must be a positive"),
        ({"name": "ptuning", "encoder": "gru"}, "encoder 'gru' is unknown"),
        ({"name": "ptuning", "hidden_size": -1}, "hidden_size"),
        ({"name": "ptuning", "num_layers": 0}, "num_layers"),
        ({"name": "ptuning", "dropout": 1.0}, "dropout"),
    ],
)
def test_config_refusals(node, fragment):
    with pytest.raises(UserError, match=fragment) as error:
        build_method(node)
    assert "\n" not in str(error.value)
