"""The method registry: every module in this folder that defines a ``@register``-ed Method joins it.

Lookups import the method modules lazily (they import torch); listing names for the command line
reads ``conf/method/`` instead and stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil

from peftbench.errors import UserError

_REGISTRY: dict[str, type] = {}
_DISCOVERED = False


def register(cls):
    """Class decorator: make ``cls`` available as ``method=<cls.name>``."""
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    """Import every module of this folder once (only @register-ed classes join the registry).

    A flag, not an empty registry, says whether this happened: importing one method module
    directly registers that method alone.
    """
    global _DISCOVERED
    if not _DISCOVERED:
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
        _DISCOVERED = True


def registered() -> dict[str, type]:
    """Every registered method class by name."""
    _discover()
    return dict(_REGISTRY)


def get_method_class(name: str):
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(
            f"unknown method '{name}'; known: {', '.join(sorted(_REGISTRY))} (peftbench list methods)"
        ) from None


def build_method(method_node: dict):
    """A Method from its config node (``{"name": "lora", "r": 8, ...}``), type-checked and checked."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    cls = get_method_class(method_node.get("name", ""))
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls.Config), method_node)
    except OmegaConfBaseException as error:
        raise UserError(f"method.{_describe(error)}") from None
    config = OmegaConf.to_object(merged)
    config.check()
    return cls(config)


def _describe(error) -> str:
    key = getattr(error, "key", None) or getattr(error, "full_key", "")
    first = str(error).strip().splitlines()[0]
    return f"{key}: {first}; fix the override (see conf/method/)"
