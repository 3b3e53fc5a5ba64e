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
