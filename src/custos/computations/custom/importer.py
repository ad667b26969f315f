"""Running a custom code package from memory: its modules are imported straight from the verified
archive, never written anywhere, and gone again once its function has returned.

`package_function(archive, entrypoint)` verifies the archive (`custos.computations.custom.code_package`,
the checks the gateway made before the task reached the sandbox), installs an importer for the
package's modules in front of `sys.meta_path`, and yields the entrypoint's function. Tracebacks show the
package's own lines, as `<package>/cohort/main.py`. On the way out the importer and every module it
loaded are removed, so a runtime that runs another package next starts clean.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import linecache
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

from custos.core.errors import InvalidInput

ORIGIN = "<package>"


class PackageImporter(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and loads the modules of a package's `.py` files, from memory. A folder without an
    `__init__.py` is a namespace package, as it would be on disk."""

    def __init__(self, files: dict[str, bytes], *, keep_source: bool = True) -> None:
        self._files = files
        self.keep_source = keep_source
        self.modules: dict[str, str | None] = {}  # module name -> its file (None: a bare folder)
        self._packages: set[str] = set()
        for path in sorted(files):
            if not path.endswith(".py"):
                continue
            parts = path[: -len(".py")].split("/")
            if not all(p.isidentifier() for p in parts):
                continue  # not importable by name, as on disk
            if parts[-1] == "__init__":
                parts = parts[:-1]
                self._packages.add(".".join(parts))
            if parts:
                self.modules[".".join(parts)] = path
            for i in range(1, len(parts)):
                prefix = ".".join(parts[:i])
                self.modules.setdefault(prefix, None)
                self._packages.add(prefix)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.modules:
            return None
        file = self.modules[fullname]
        origin = f"{ORIGIN}/{file}" if file is not None else None
        return importlib.util.spec_from_loader(
            fullname, self, origin=origin, is_package=fullname in self._packages
        )

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return None  # the default module

    def exec_module(self, module: ModuleType) -> None:
        file = self.modules[module.__name__]
        if file is None:
            return
        source = self._files[file].decode("utf-8")
        filename = f"{ORIGIN}/{file}"
        if self.keep_source:  # tracebacks then quote the code; a confidential package's never do
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        module.__file__ = filename
        exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - reviewed code, in the sandbox


@contextmanager
def package_function(
    archive: bytes, entrypoint: str, *, keep_source: bool = True
) -> Iterator[Callable[..., Any]]:
    """The function the package's `entrypoint` (module:function) names, importable while in use.
    Without `keep_source`, a traceback names files and lines of the package but quotes no code."""
    from custos.computations.custom.code_package import verify_code_package

    package = verify_code_package(archive)
    if package.entrypoint != entrypoint:
        raise InvalidInput(f"the package's entrypoint is {package.entrypoint}, not {entrypoint}")
    importer = PackageImporter({f.path: f.data for f in package.files}, keep_source=keep_source)
    sys.meta_path.insert(0, importer)
    try:
        module_name, function = entrypoint.split(":")
        module = importlib.import_module(module_name)
        fn = getattr(module, function, None)
        if not callable(fn):
            raise InvalidInput(f"the package's entrypoint {entrypoint} names no function")
        yield fn
    finally:
        sys.meta_path.remove(importer)
        for name in importer.modules:
            sys.modules.pop(name, None)
        importlib.invalidate_caches()
