"""The Python interpreter a sandbox runs: which host folders it needs (read-only) to start and to import
its packages, found once by asking the interpreter itself."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from custos.core.errors import SandboxError

# This copy of custos (custos/sandbox/interpreter.py -> custos/), found without importing the package
# root, which sits above every layer.
OWN_PACKAGE = Path(__file__).resolve().parents[1]

# Folders the sandbox always gets from the host (read-only); anything below them needs no bind.
SYSTEM_ROOTS = ("/usr",)

_PROBE = """
import importlib.util, json, sys, sysconfig
spec = importlib.util.find_spec("custos")
print(json.dumps({
    "prefix": sys.prefix,
    "base_prefix": sys.base_prefix,
    "libdir": sysconfig.get_config_var("LIBDIR") or "",
    "path": [p for p in sys.path if p],
    "custos": list(spec.submodule_search_locations or []) if spec else [],
}))
"""
_PROBE_TIMEOUT_S = 60


def is_within(path: str, root: str) -> bool:
    return PurePosixPath(path).is_relative_to(PurePosixPath(root))


def _outermost(paths: list[str]) -> list[str]:
    """`paths` without duplicates and without any path inside another one, sorted."""
    kept: list[str] = []
    for path in sorted(set(paths), key=lambda p: (len(PurePosixPath(p).parts), p)):
        if not any(is_within(path, root) for root in [*SYSTEM_ROOTS, *kept]):
            kept.append(path)
    return sorted(kept)


@dataclass(frozen=True)
class Interpreter:
    """`executable` plus the host folders to bind read-only at the same path inside the sandbox.

    `library_dir` is where its libpython lives: it goes first on LD_LIBRARY_PATH, because without the
    host's loader configuration the sandbox could otherwise pick another build's libpython.
    `python_path` is set when the interpreter cannot import custos by itself (the bootstrap needs it).
    """

    executable: Path
    read_only: tuple[str, ...]
    library_dir: str
    python_path: str

    @classmethod
    def probe(cls, executable: Path) -> Interpreter:
        try:
            completed = subprocess.run(
                [str(executable), "-s", "-c", _PROBE],
                capture_output=True,
                text=True,
                timeout=_PROBE_TIMEOUT_S,
                env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxError(
                f"the sandbox's Python interpreter {executable} could not be started: {exc}"
            ) from exc
        if completed.returncode != 0:
            raise SandboxError(
                f"the sandbox's Python interpreter {executable} failed to start "
                f"(exit code {completed.returncode}): {completed.stderr.strip()[-500:]}"
            )
        found = json.loads(completed.stdout)
        python_path = ""
        paths = [found["base_prefix"], found["prefix"], *found["path"]]
        if found["libdir"]:
            paths.append(found["libdir"])
        if not found["custos"]:
            # This interpreter does not have custos installed: give it the runner's own copy.
            python_path = str(OWN_PACKAGE.parent)
            paths.append(str(OWN_PACKAGE))
        existing = [path for path in paths if Path(path).exists()]
        if any(PurePosixPath(path) == PurePosixPath("/") for path in existing):
            raise SandboxError(
                f"the sandbox's Python interpreter {executable} has / on its path, which would expose the "
                "whole host; use an interpreter installed in its own folder or a virtual environment"
            )
        return cls(
            executable=executable,
            read_only=tuple(_outermost(existing)),
            library_dir=found["libdir"],
            python_path=python_path,
        )
