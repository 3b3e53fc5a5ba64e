"""The method registry finds every method file, however the first method got imported."""

import subprocess
import sys

from peftbench.config import available


def test_every_method_yaml_has_a_registered_method_even_after_a_direct_import():
    # a fresh interpreter: import one method module directly first, as a test or a user script may
    code = (
        "import peftbench.methods.lora\n"
        "from peftbench.methods import get_method_class\n"
        "from peftbench.config import available\n"
        "from peftbench.launch import compose\n"
        "for name in available('method'):\n"
        "    get_method_class(compose([f'method={name}']).method.name)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    assert {"lora", "bitfit", "full", "head", "top_k"} <= set(available("method"))


def test_the_registry_and_conf_method_name_the_same_methods():
    """`peftbench list methods` reads conf/method/ (no torch); `run` builds from the registry. Every
    registered method has a preset of its own name, and every preset names a registered method."""
    from peftbench.config import method_preset
    from peftbench.methods import registered

    presets = {name: method_preset(name)["name"] for name in available("method")}
    assert set(registered()) <= set(presets)
    assert set(presets.values()) <= set(registered())


def test_a_preset_read_for_a_combination_is_the_node_hydra_composes():
    """A combination's parts are read from their presets without Hydra (it may be running the job):
    the same nodes Hydra composes for method=<name>, defaults lists (bitfit_qm2 on bitfit) included."""
    from peftbench.config import method_preset
    from peftbench.launch import compose
    from omegaconf import OmegaConf

    for name in available("method"):
        assert method_preset(name) == OmegaConf.to_container(compose([f"method={name}"]).method, resolve=True), name
