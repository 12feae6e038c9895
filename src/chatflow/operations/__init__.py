"""Spreadsheet operations. Each module registers one or more with the shared registry."""

from __future__ import annotations

import importlib
import pkgutil

from chatflow.operations.registry import Registry, registry


def load_all() -> Registry:
    """Import every operation module (registering it) and return the registry."""
    for module in pkgutil.iter_modules(__path__):
        if module.name != "registry":
            importlib.import_module(f"{__name__}.{module.name}")
    return registry
