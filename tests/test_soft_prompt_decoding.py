"""Soft prompts decode on encoder–decoders: ``generate`` on T5 (which encodes once, then decodes from
the encoder's output) sees the prompt exactly as a full forward pass does (Lester et al. §2: the
prompt is part of the encoder's input). Prompt tuning's MRQA runs generate their answers so.
"""

from __future__ import annotations

import pytest
import torch

from peftbench.config import model_config
from peftbench.errors import UserError
from peftbench.models.load import load_language_model, load_tokenizer
from tests.helpers import apply_method

pytestmark = pytest.mark.usefixtures("one_thread")

METHODS = {
    "prompt": {"name": "prompt", "length": 5, "init": "sampled_vocab"},
    "ptuning": {"name": "ptuning", "length": 5, "encoder": "mlp", "hidden_size": 24},
}
TEXTS = ["question : who ? context : a b c", "a longer input , with more words in it than the first"]


def _t5(method: str | None):
    model_cfg = model_config("tiny-t5")
    tokenizer = load_tokenizer(model_cfg)
    torch.manual_seed(0)
    model = load_language_model(model_cfg, tokenizer).eval()
    if method:
        apply_method(model, METHODS[method], "tiny-t5")
        with torch.no_grad():  # a trained-looking prompt: far from the vocabulary it was drawn from
            for param in (p for p in model.parameters() if p.requires_grad):
                param.copy_(torch.randn(param.shape, generator=torch.Generator().manual_seed(1)) * 3)
        model.eval()
    inputs = dict(tokenizer(TEXTS, padding=True, return_tensors="pt", return_token_type_ids=False))
    return model, inputs


def _log_likelihoods(model, inputs, sequences) -> torch.Tensor:
    """Each decoded sequence's mean token log-probability, from one uncached forward pass each."""
    logits = model(**inputs, decoder_input_ids=sequences[:, :-1], use_cache=False).logits
    chosen = torch.log_softmax(logits, -1).gather(-1, sequences[:, 1:, None])[..., 0]
    return chosen.sum(-1) / chosen.shape[1]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_greedy_decoding_is_the_full_forward_argmax(method):
    model, inputs = _t5(method)
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=6, do_sample=False, num_beams=1)
        decoded = torch.full((len(TEXTS), 1), model.config.decoder_start_token_id)
        for _ in range(6):  # no cache, no separate encoder call: the prompt goes in through the model's forward
            step = model(**inputs, decoder_input_ids=decoded, use_cache=False).logits[:, -1]
            decoded = torch.cat([decoded, step.argmax(-1, keepdim=True)], dim=1)
        plain, _ = _t5(None)
        start = torch.full((len(TEXTS), 1), model.config.decoder_start_token_id)
        with_prompt = model(**inputs, decoder_input_ids=start).logits
        without = plain(**inputs, decoder_input_ids=start).logits
    assert torch.equal(generated, decoded)
    assert (with_prompt - without).abs().max() > 1e-3  # the prompt is in there


def test_beam_search_scores_are_the_prompted_models_likelihoods():
    model, inputs = _t5("prompt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False, num_beams=3, length_penalty=1.0,
                             early_stopping=True, output_scores=True, return_dict_in_generate=True)  # fmt: skip
        expected = _log_likelihoods(model, inputs, out.sequences)
    torch.testing.assert_close(out.sequences_scores, expected, atol=1e-5, rtol=0)


def test_the_prompt_lives_under_t5s_encoder_and_only_it_trains():
    model, _ = _t5("prompt")
    trainable = [name for name, param in model.named_parameters() if param.requires_grad]
    assert trainable == ["encoder.soft_prompt.embedding.weight"]


def test_generation_runs_plan_on_t5_and_are_refused_on_decoders(tmp_path):
    from peftbench.launch import compose
    from peftbench.plan import plan

    for method in METHODS:
        vocabulary = ["method.vocab_top=0"] if method == "prompt" else []  # tiny-t5's WordPiece ids have no frequency order
        planned = plan(compose(["model=tiny-t5", "task=mrqa_squad", f"method={method}", *vocabulary, f"results_dir={tmp_path}"]))
        assert planned.parts[0].format == "generation"
        with pytest.raises(UserError, match=f"method '{method}' cannot decode text yet on decoder models"):
            plan(compose(["model=tiny-gpt2", "task=mrqa_squad", f"method={method}", *vocabulary, f"results_dir={tmp_path}"]))
    assert not any(tmp_path.iterdir())
