"""Full fine-tuning: every weight of the backbone trains (the FT rows of every PEFT table)."""

from peftbench.methods import register
from peftbench.methods.base import Method


@register
class FullFineTuning(Method):
    name = "full"
    composable = False

    def apply(self, model, anatomy) -> None:
        model.requires_grad_(True)

    def parameter_names(self, model) -> list[str]:
        from peftbench.models.anatomy import head_parameter_names

        head = set(head_parameter_names(model))
        return [name for name, _ in model.named_parameters() if name not in head]
