"""Head only (linear probe): the backbone stays frozen, only the task head trains.

The baseline the adapter papers compare against (Houlsby et al. 2019, "fine-tune the top layer").
"""

from peftbench.methods import register
from peftbench.methods.base import Method


@register
class HeadOnly(Method):
    name = "head"
    composable = False

    def apply(self, model, anatomy) -> None:
        """Nothing to add: the run unfreezes the head for every method."""

    def parameter_names(self, model) -> list[str]:
        return []
