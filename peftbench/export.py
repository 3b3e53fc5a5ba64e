"""``peftbench export RUN_DIR --format peft``: a finished run as an HF peft adapter folder.

The run's model is rebuilt as the run built it and its trained weights loaded; the method maps
itself to peft (``Method.to_peft``: config + weights under peft's names), the head becomes peft's
``modules_to_save``, and peft's own ``get_peft_model`` / ``save_pretrained`` write the folder, so
``PeftModel.from_pretrained(base, DIR)`` loads it and gives the run's outputs.

Prompt-learning methods (prompt, ptuning) export with ``task_type=SEQ_CLS``; peft saves the
prompt itself (for P-tuning, the encoder's output, not the encoder). peft then gives the run's
logits on encoders, and on decoders for unpadded input only: peft hands a decoder
``inputs_embeds`` alone, and HF's decoder classifiers then pool the last position, a pad token
under right padding, where the run pools the last real token (``methods/soft_prompt.py``).
The method declares this (``Method.export_limitation``) and the provenance file records it.

A ``method=peft`` run already holds peft's own save, head included (``RUN/peft``, written by the
run in any format): export copies it, with the provenance file.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

from peftbench.errors import UserError

PROVENANCE = "peftbench_export.json"


def export_peft(run_dir: Path, out: Path) -> Path:
    import torch
    from omegaconf import OmegaConf
    from peft import get_peft_model

    from peftbench.atomic import write_text_atomic
    from peftbench.config import ModelConfig
    from peftbench.methods.peft_backed import FOLDER as PEFT_FOLDER
    from peftbench.methods.base import attach
    from peftbench.models.anatomy import anatomy_of
    from peftbench.models.load import model_type
    from peftbench.pipeline import build_model
    from peftbench.plan import method_from_config
    from peftbench.results.record import WEIGHTS_FILE, read_record
    from peftbench.tasks import get_task
    from peftbench.train.weights import load_weights

    record = read_record(run_dir)
    if record["status"] != "complete":
        raise UserError(f"run {run_dir} is {record['status']}, not complete; export a finished run")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; pass a new --out folder")
    method = method_from_config(record["method_config"])
    model_cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), record["config"]["model"]))
    if (Path(run_dir) / PEFT_FOLDER).is_dir():  # method=peft: the run kept peft's own save (head included)
        shutil.copytree(Path(run_dir) / PEFT_FOLDER, out, dirs_exist_ok=True)
        write_text_atomic(out / PROVENANCE, json.dumps(_provenance(record, model_cfg, method), indent=2) + "\n")
        return out
    if not method.in_peft:
        method.to_peft(None)  # the refusal, before any weights load
    if record.get("format", "classification") != "classification":
        raise UserError(
            f"run {run_dir} ran in the {record['format']} format; export supports classification runs "
            "(peft's SEQ_CLS task type)"
        )
    task = get_task(record["task"])
    if task.declared_classes:  # its label set is the data's, as the run read it
        task = task.with_labels(record["data"]["label_names"])
    base, tokenizer, _ = build_model(model_cfg, task, record["seed"], "classification", record["config"]["task"])
    model = copy.deepcopy(base)
    head = attach(method, model, anatomy_of(model_type(model_cfg)), tokenizer)
    load_weights(model, Path(run_dir) / WEIGHTS_FILE)

    config, state = method.to_peft(model)
    config.modules_to_save = sorted({name.split(".")[0] for name in head})
    twin = get_peft_model(base, config)
    if config.modules_to_save:  # a task_type may have added its head names: keep each once
        config.modules_to_save = list(dict.fromkeys(config.modules_to_save))
    # where peft keeps the transformers model: base_model.model (tuners), base_model (prompt learning)
    inner = next(name for name, module in twin.named_modules() if module is twin.get_base_model())
    values = dict(model.named_parameters())
    for name in head:
        top, _, rest = name.partition(".")
        state[f"{inner}.{top}.modules_to_save.default.{rest}"] = values[name].detach()
    twin_parameters = dict(twin.named_parameters())
    trained = {name for name, param in twin_parameters.items() if param.requires_grad}
    if set(state) != trained:
        raise RuntimeError(f"peft mapping mismatch: {sorted(set(state) ^ trained)[:4]}")
    with torch.no_grad():
        for name, value in state.items():
            twin_parameters[name].copy_(value.reshape(twin_parameters[name].shape))
    twin.eval()  # prompt learning saves the prompt encoder's output: no dropout in it
    twin.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    write_text_atomic(out / PROVENANCE, json.dumps(_provenance(record, model_cfg, method), indent=2) + "\n")
    return out


def _provenance(record: dict, model_cfg, method) -> dict:
    """Where the exported adapter comes from: the run, its backbone, method and main metric."""
    provenance = {
        "run_id": record["run_id"],
        "model": record["model"],
        "base": model_cfg.hub_id or model_cfg.package or model_cfg.path,
        "random_init_seed": record["seed"] if model_cfg.random_init else None,
        "method_config": record["method_config"],
        "task": record["task"],
        "main_metric": record["metrics"]["main"],
    }
    if method.export_limitation:
        provenance["limitation"] = method.export_limitation
    return provenance
