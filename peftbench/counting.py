"""Parameter counts: of a run's model, and of any model × method from configs alone.

The papers' parameter columns count the method's own parameters (LoRA's 0.3M for RoBERTa-base
leaves out the classifier); we report that beside the head and the total. Counting from configs
builds the architecture on the meta device (shapes, no weights), so full-size backbones whose
weights are not at hand can be checked against the published columns.
"""

from __future__ import annotations


def parameter_counts(model, method, head: list[str]) -> dict:
    """Trainable parameters (method + head), the method's own, the head's, the total, and the
    bits of the method's binary masks.

    A mask entry is one bit, not a trainable float: ``mask_bits`` counts them apart, and a weight a
    mask removes (pruned, held at 0) is not counted as trainable, though it sits in a trained
    tensor (magnitude pruning trains every weight it keeps). A learned mask's scores
    (``Method.training_only``) are counted nowhere: they train, but the result is the mask."""
    scaffold = set(method.training_only(model))
    sizes = {name: param.numel() for name, param in model.named_parameters() if name not in scaffold}
    own = set(method.parameter_names(model))
    masks = method.binary_masks(model)
    trainable = {name for name, param in model.named_parameters() if param.requires_grad and name not in scaffold}

    def floats(names: set[str]) -> int:
        return sum(sizes[name] for name in names) - sum(mask.zeros for name, mask in masks.items() if name in names)

    return {
        "trainable": floats(trainable),
        "trainable_method": floats(own),
        "head": sum(sizes[name] for name in head),
        "total": sum(sizes.values()),
        "mask_bits": sum(mask.entries for mask in masks.values()),
    }


def counts_from_config(cfg) -> dict:
    """Counts for a composed config's model × method × task, without weights or data; the model,
    method and format are checked as a run plans them (``peftbench.plan``)."""
    from omegaconf import OmegaConf

    from peftbench.formats import FORMATS
    from peftbench.methods.base import attach
    from peftbench.models.anatomy import head_parameter_names
    from peftbench.models.heads import add_task_heads
    from peftbench.models.load import architecture_config, skeleton_for_classification
    from peftbench.plan import checked_anatomy, method_from_config, run_format, run_tasks

    model_cfg = OmegaConf.to_object(cfg.model)
    method_node = OmegaConf.to_container(cfg.method, resolve=True)
    method = method_from_config(method_node)
    _, tasks = run_tasks(OmegaConf.to_container(cfg.task, resolve=True))
    method.tasks = [task.name for task in tasks]
    anatomy = checked_anatomy(model_cfg)
    arch_config = architecture_config(model_cfg)
    method.check_model(anatomy, arch_config)
    task = tasks[0]
    formats = [run_format(each, model_cfg.family, cfg.task.format, method) for each in tasks]
    fmt = formats[0]
    model = skeleton_for_classification(model_cfg, 1 if fmt == "multiple_choice" else task.num_labels,
                                        per_token=fmt == "token_classification")
    if len(tasks) > 1 and FORMATS[fmt].trains_head:  # a head per task, as the run adds them (pipeline.add_heads)
        add_task_heads(model, {each.name: FORMATS[f].head_size(each) for each, f in zip(tasks, formats)})
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
        "method": method_node,
        "task": cfg.task.name,
        "tasks": method.tasks,
        "format": fmt,
        **counts,
    }
