"""A process imports what it needs: a gateway's start loads neither pandas, PyTorch, OpenDP nor the
orchestrator's web and database stack; the command line's root loads no web server either."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

WEB_AND_DATABASE = {"fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "custos.orchestrator"}
HEAVY = {"pandas", "torch", "opendp", "sklearn", "statsmodels", "scipy"}

# What `custos gateway start` imports before its loop runs (custos.gateway.agent.run's own imports too).
GATEWAY_START = [
    "custos.cli.main",
    "custos.gateway.agent",
    "custos.gateway.site",
    "custos.pki.kit",
    "custos.sandbox.bubblewrap",
]


def _loaded(modules: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(done.stdout))


def _roots(loaded: set[str], names: set[str]) -> set[str]:
    return {name for name in names if any(m == name or m.startswith(f"{name}.") for m in loaded)}


def test_a_gateway_start_loads_no_heavy_library_and_nothing_of_the_orchestrator() -> None:
    loaded = _loaded(GATEWAY_START)
    assert _roots(loaded, WEB_AND_DATABASE | HEAVY) == set()


@pytest.mark.parametrize("module", ["custos.cli.main", "custos.orchestrator.server"])
def test_no_pandas_torch_or_opendp_at_the_command_line_or_the_orchestrator_s_start(module: str) -> None:
    loaded = _loaded([module])
    assert _roots(loaded, HEAVY) == set()
