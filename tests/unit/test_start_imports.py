"""A process imports what it needs: a gateway's start loads neither pandas, PyTorch, OpenDP, the
SDK, Rich nor the orchestrator's web and database stack; the orchestrator's start loads no NumPy,
pyarrow, httpx, psycopg (on SQLite) or PDF renderer; the sandboxed runtime (paid per job) loads no
HTTP client, YAML or NumPy of its own; the command line's root loads no command's module. Building a
gateway's mock rows loads no pandas either (`pa.array` would: docs/operations.md, Footprint)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

WEB_AND_DATABASE = {"fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "custos.orchestrator"}
HEAVY = {"pandas", "torch", "opendp", "sklearn", "statsmodels", "scipy"}
# What the orchestrator has no use for until a request needs it.
NOT_AT_THE_ORCHESTRATOR_S_START = {
    "numpy",
    "pyarrow",
    "duckdb",
    "httpx",
    "psycopg",
    "pypdfium2",
    "rich",
    "custos.sdk",
    "custos.data",
    "custos.pki.signin",
    "custos.pki.provision",
}
# A gateway talks to the orchestrator with its own client, and prints no tables.
NOT_AT_A_GATEWAY_S_START = {"custos.sdk", "custos.local", "custos.pki.provision", "custos.cli.output"}
# The runtime runs in every sandbox: per job, and in every warm spare.
NOT_IN_THE_RUNTIME = {"httpx", "yaml", "numpy", "rich", "custos.pki.signin", "custos.pki.enrolment"}

# What `custos gateway start` imports before its loop runs (custos.gateway.agent.run's own imports too).
GATEWAY_START = [
    "custos.cli.main",
    "custos.cli.gateway",
    "custos.gateway.agent",
    "custos.gateway.site",
    "custos.gateway.profile_cache",
    "custos.pki.kit",
    "custos.sandbox.bubblewrap",
]
ORCHESTRATOR_START = ["custos.cli.main", "custos.cli.orchestrator", "custos.orchestrator.server"]


def _loaded(modules: list[str], then: str = "") -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"{then}\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def _roots(loaded: set[str], names: set[str]) -> set[str]:
    return {name for name in names if any(m == name or m.startswith(f"{name}.") for m in loaded)}


def test_a_gateway_start_loads_no_heavy_library_and_nothing_of_the_orchestrator() -> None:
    loaded = _loaded(GATEWAY_START)
    assert _roots(loaded, WEB_AND_DATABASE | HEAVY | NOT_AT_A_GATEWAY_S_START) == set()


def test_the_orchestrator_s_start_loads_neither_the_data_stack_nor_clients() -> None:
    loaded = _loaded(ORCHESTRATOR_START)
    assert _roots(loaded, HEAVY | NOT_AT_THE_ORCHESTRATOR_S_START) == set()


def test_the_sandboxed_runtime_loads_no_http_client_yaml_or_numpy() -> None:
    loaded = _loaded(["custos.computations.runtime"])
    assert _roots(loaded, HEAVY | NOT_IN_THE_RUNTIME | WEB_AND_DATABASE) == set()


def test_the_command_line_s_root_loads_no_command() -> None:
    loaded = _loaded(["custos.cli.main"])
    commands = {m for m in loaded if m.startswith("custos.cli.")} - {"custos.cli.main", "custos.cli.plain"}
    assert commands == set()
    assert _roots(loaded, {"rich", "httpx", "numpy", "pyarrow", "yaml"}) == set()


@pytest.mark.parametrize("module", ["custos.cli.main", "custos.orchestrator.server"])
def test_no_pandas_torch_or_opendp_at_the_command_line_or_the_orchestrator_s_start(module: str) -> None:
    loaded = _loaded([module])
    assert _roots(loaded, HEAVY) == set()


def test_profiling_and_mocking_a_dataset_loads_no_pandas(tmp_path: Path) -> None:
    data = tmp_path / "site.parquet"
    setup = (
        "import pyarrow as pa, pyarrow.parquet as pq\n"
        "table = pa.table({'age': list(range(20, 90)) * 10, 'sex': ['f', 'm'] * 350,"
        " 'bmi': [20.5 + i % 13 for i in range(700)]})\n"
        f"pq.write_table(table, {str(data)!r})\n"
    )
    subprocess.run([sys.executable, "-c", setup], check=True, timeout=120)
    then = (
        "from custos.data.catalog import DatasetEntry\n"
        "from custos.data.file_source import open_source\n"
        "from custos.data.profile import profile\n"
        "from custos.data.mock import generate_mock\n"
        "from custos.data.ipc import table_to_ipc_b64\n"
        "from custos.data.fingerprint import row_lineage\n"
        "from pathlib import Path\n"
        f"entry = DatasetEntry('d', Path({str(data)!r}), 'parquet', '', Path({str(tmp_path / 'd.yaml')!r}))\n"
        "source = open_source(entry)\n"
        "schema, rows = profile(source, min_count=10)\n"
        "mock = generate_mock(source, schema, seed=1)\n"
        "assert mock.num_rows == 200, mock.num_rows\n"
        "table_to_ipc_b64(mock)\n"
        "row_lineage(source)\n"
    )
    loaded = _loaded(["custos.gateway.site"], then)
    assert "pandas" not in loaded
