"""Parameter counts: of a run's model, and of any model × method from configs alone.

The papers' parameter columns count the method's own parameters (LoRA's 0.3M for RoBERTa-base
leaves out the classifier); we report that beside the head and the total. Counting from configs
builds the architecture on the meta device (shapes, no weights), so full-size backbones whose
weights are not at hand can be checked against the published columns.
"""

from __future__ import annotations


def parameter_counts(model, method, head: list[str]) -> dict:
    """Trainable parameters (method + head), the method's own, the head's, and the total."""
    sizes = {name: param.numel() for name, param in model.named_parameters()}
    own = set(method.parameter_names(model))
    return {
        "trainable": sum(param.numel() for param in model.parameters() if param.requires_grad),
        "trainable_method": sum(sizes[name] for name in own),
        "head": sum(sizes[name] for name in head),
        "total": sum(sizes.values()),
    }


def counts_from_config(cfg) -> dict:
    """Counts for a composed config's model × method × task, without weights or data."""
    from omegaconf import OmegaConf

    from peftbench.formats import FORMATS, format_name
    from peftbench.methods import build_method
    from peftbench.methods.base import attach
    from peftbench.models.anatomy import anatomy_of, head_parameter_names
    from peftbench.models.load import architecture_config, model_type, skeleton_for_classification
    from peftbench.tasks import get_task

    model_cfg = OmegaConf.to_object(cfg.model)
    method = build_method(OmegaConf.to_container(cfg.method, resolve=True))
    tasks = list(cfg.task.get("tasks") or [cfg.task.name])
    method.tasks = tasks
    anatomy = anatomy_of(model_type(model_cfg))
    arch_config = architecture_config(model_cfg)
    method.check_model(anatomy, arch_config)
    task = get_task(tasks[0])
    fmt = format_name(task, model_cfg.family, cfg.task.format)
    method.check_format(task, fmt)
    model = skeleton_for_classification(model_cfg, 1 if fmt == "multiple_choice" else task.num_labels)
    classifier = sum(param.numel() for name, param in model.named_parameters() if name in head_parameter_names(model))
    backbone = sum(param.numel() for param in model.parameters()) - classifier
    counts = parameter_counts(model, method, attach(method, model, anatomy, train_head=FORMATS[fmt].trains_head))
    counts["backbone"] = backbone
    if not FORMATS[fmt].trains_head:  # the language model scores with its own (tied) head: no classifier
        counts["total"] -= classifier
    return {
        "model": model_cfg.name,
        "model_type": arch_config.model_type,
        "layers": getattr(arch_config, anatomy.layers_key),
        "hidden": getattr(arch_config, anatomy.hidden_size_key),
        "method": OmegaConf.to_container(cfg.method, resolve=True),
        "task": cfg.task.name,
        "tasks": tasks,
        "format": fmt,
        **counts,
    }

