"""Loading is safe by default: safetensors only, no remote code unless a model's YAML asks, and
the hub reached only for a model named by hub id."""

from __future__ import annotations

import pytest

from peftbench.config import model_config
from peftbench.errors import UserError
from peftbench.models import load


def _captured_kwargs(model_cfg, source):
    seen = {}

    def loader(name, **kwargs):
        seen.update(kwargs, name=name)

    load._from_source(loader, model_cfg, source)
    return seen


def test_a_local_folder_loads_without_the_hub_and_without_remote_code(tmp_path):
    kwargs = _captured_kwargs(model_config("minilm-l6"), str(tmp_path))
    assert kwargs["local_files_only"] is True and kwargs["trust_remote_code"] is False


def test_a_hub_id_may_reach_the_hub_and_remote_code_needs_the_yaml():
    cfg = model_config("roberta-base")
    assert "local_files_only" not in _captured_kwargs(cfg, cfg.hub_id)
    cfg.trust_remote_code = True
    assert _captured_kwargs(cfg, cfg.hub_id)["trust_remote_code"] is True


def test_a_pickle_checkpoint_is_refused(tmp_path):
    cfg = model_config("tiny-bert")
    load.architecture_config(cfg).save_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04 a pickle")
    cfg.path, cfg.random_init = str(tmp_path), False
    with pytest.raises(UserError, match="only safetensors are loaded"):
        load.check_weights(cfg)

