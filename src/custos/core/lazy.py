"""A package's names, imported from their modules when first read (PEP 562), so that importing one
module of a package does not import all the others: the sandboxed runtime, the orchestrator and the
gateway each pay only for what they use. The package also imports them under TYPE_CHECKING, for the
type checker."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_names(package: str, modules: Mapping[str, Sequence[str]]) -> Callable[[str], Any]:
    """The package's `__getattr__`: `modules` maps each of its modules (relative name) to the names
    the package re-exports from it."""
    where = {name: f"{package}.{module}" for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
