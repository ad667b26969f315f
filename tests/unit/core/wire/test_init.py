"""`custos.core.wire` is the one place to import wire models from: it re-exports every public name
that its modules define, and names nothing else."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil

import custos.core.wire as wire


def defined_in(module_name: str) -> set[str]:
    """The public names that the module's own top-level statements define."""
    tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_")}


def test_every_public_name_of_the_wire_modules_is_exported() -> None:
    modules = [m.name for m in pkgutil.iter_modules(wire.__path__, prefix=f"{wire.__name__}.")]
    assert {f"{wire.__name__}.{m}" for m in ("auth", "jobs", "code", "version")} <= set(modules)
    public = set().union(*(defined_in(m) for m in modules))
    assert public - set(wire.__all__) == set()
    assert set(wire.__all__) - public == {"WireModel"}  # the base, kept apart for the sandbox
    assert all(hasattr(wire, name) for name in wire.__all__)
