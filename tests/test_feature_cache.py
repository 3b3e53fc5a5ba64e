"""The tokenised-features cache (``peftbench/formats/cache.py``): reused, invalidated, repaired.

A second encoding of the same rows with the same tokenizer, length and format reads the entry
(the format's ``encode`` is not called) and gives features equal to a fresh encoding; a change of
rows, ``max_length`` or task options names another entry; a damaged entry is ignored with a
warning and written again; ``data.cache=false`` writes nothing and keeps the run id.
"""

from __future__ import annotations

import pytest

from tests.helpers import planned


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("PEFTBENCH_CACHE", str(folder))
    return folder / "features"


def _format(tmp_path, *overrides):
    from peftbench.formats import make_format
    from peftbench.models.load import load_tokenizer

    p = planned(tmp_path, "tiny-bert", "method=lora", "task=rte", "data.max_eval_samples=20", *overrides)
    part = p.parts[0]
    fmt = make_format(part.format, part.task, load_tokenizer(p.model_cfg), {**p.config["task"], "family": "encoder"})
    return fmt, part.data.splits["validation"]


def _refusing(fmt, monkeypatch):
    def encode(rows):
        raise AssertionError("encoded again: the cache entry was not used")

    monkeypatch.setattr(fmt, "encode", encode)


def test_second_encoding_reads_the_entry(tmp_path, cache, monkeypatch):
    from peftbench.formats import cache as feature_cache

    fmt, rows = _format(tmp_path)
    fresh = fmt.encode(rows)
    assert feature_cache.encode(fmt, rows) == fresh
    (entry,) = cache.glob("*.safetensors")
    again, _ = _format(tmp_path)  # a later run: a new format and tokenizer object
    _refusing(again, monkeypatch)
    assert feature_cache.encode(again, rows) == fresh
    assert list(cache.glob("*.safetensors")) == [entry] and not list(cache.glob(".*"))  # no leftover temporary


@pytest.mark.parametrize("change", ["rows", "max_length", "options"])
def test_a_change_that_changes_features_misses(tmp_path, cache, change):
    from peftbench.formats import cache as feature_cache

    fmt, rows = _format(tmp_path)
    feature_cache.encode(fmt, rows)
    if change == "rows":
        rows = [{**rows[0], "text": rows[0]["text"] + " more"}, *rows[1:]]
    elif change == "max_length":
        fmt, rows = _format(tmp_path, "task.max_length=16")
    else:
        fmt, rows = _format(tmp_path, "task.label_smoothing=0.1")
    assert feature_cache.encode(fmt, rows) == fmt.encode(rows)
    assert len(list(cache.glob("*.safetensors"))) == 2
    if change == "max_length":
        assert max(len(f["input_ids"]) for f in feature_cache.encode(fmt, rows)) == 16


def test_a_damaged_entry_is_ignored_and_rebuilt(tmp_path, cache, capsys):
    from peftbench.formats import cache as feature_cache

    fmt, rows = _format(tmp_path)
    fresh = feature_cache.encode(fmt, rows)
    (entry,) = cache.glob("*.safetensors")
    whole = entry.read_bytes()
    entry.write_bytes(whole[: len(whole) // 2])  # a truncated file
    assert feature_cache.encode(fmt, rows) == fresh
    assert "ignoring cached features" in capsys.readouterr().err
    assert feature_cache.read_entry(entry, feature_cache.entry_key(fmt, rows), len(rows)) == fresh  # written again, whole
    feature_cache.encode(fmt, rows)
    assert "ignoring" not in capsys.readouterr().err


def test_an_entry_under_another_name_is_refused(tmp_path, cache, capsys):
    from peftbench.formats import cache as feature_cache

    fmt, rows = _format(tmp_path)
    feature_cache.encode(fmt, rows)
    other = rows[:-1]
    (entry,) = cache.glob("*.safetensors")
    entry.rename(cache / f"{feature_cache.entry_key(fmt, other)}.safetensors")  # a name that is not its own
    assert feature_cache.encode(fmt, other) == fmt.encode(other)
    assert "differs from its name" in capsys.readouterr().err


def test_cache_off_writes_nothing_and_keeps_the_run_id(tmp_path, cache):
    from peftbench.pipeline import build_model, build_pipeline

    p = planned(tmp_path, "tiny-bert", "method=lora", "task=rte", "data.cache=false")
    assert p.run_id == planned(tmp_path, "tiny-bert", "method=lora", "task=rte").run_id
    part = p.parts[0]
    _, tokenizer, fmt = build_model(p.model_cfg, part.task, 0, part.format, p.config["task"])
    build_pipeline(p, fmt, tokenizer)
    assert not cache.exists()


def test_a_run_pipeline_reuses_its_features(tmp_path, cache):
    from peftbench.pipeline import build_model, build_pipeline

    features = []
    for _ in range(2):
        p = planned(tmp_path, "tiny-bert", "method=lora", "task=rte")
        part = p.parts[0]
        _, tokenizer, fmt = build_model(p.model_cfg, part.task, 0, part.format, p.config["task"])
        features.append(build_pipeline(p, fmt, tokenizer).features)
    assert features[0] == features[1]
    assert len(list(cache.glob("*.safetensors"))) == len(p.parts[0].data.splits)  # one entry per split


def test_a_format_that_keeps_state_is_not_cached(tmp_path, cache):
    from peftbench.formats import cache as feature_cache

    fmt, rows = _format(tmp_path, "task=sst2", "task.format=cloze")
    assert not fmt.cache_features
    feature_cache.encode(fmt, rows)
    assert not cache.exists()
