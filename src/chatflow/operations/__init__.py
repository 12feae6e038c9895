"""Spreadsheet operations. Each module registers one or more with the shared registry."""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatflow.operations.registry import Registry

# Not operation modules.  Nothing is imported here eagerly: importing this package must not
# load polars or pydantic.
_SUPPORT = {"registry", "catalogue"}


def load_all() -> Registry:
    """Import every operation module (registering it) and return the registry."""
    from chatflow.operations.registry import registry

    for module in pkgutil.iter_modules(__path__):
        if module.name not in _SUPPORT:
            importlib.import_module(f"{__name__}.{module.name}")
    return registry
