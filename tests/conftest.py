"""Shared fixtures: databases and a real deployment. PostgreSQL tests skip with a reason when no server
is reachable. Which tests are integration tests is decided here too: see `pytest_collection_modifyitems`.

With pytest-xdist (`make test`: `--dist loadfile`), each worker has its own temporary folders, so its own
session-wide `cluster`, on free ports of its own.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pytest

from custos.local.process import ManagedProcess

PG_ADMIN_URL = os.environ.get("CUSTOS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
INTEGRATION = Path(__file__).parent / "integration"
# Browser tests: each module starts a deployment of its own (tests/e2e/harness.py).
E2E = Path(__file__).parent / "e2e"
# Fixtures that start an orchestrator and gateways as processes (this file's, or a module's own).
PROCESS_FIXTURES = {
    "cluster",
    "capped_cluster",
    "sdc_cluster",
    "counts_cluster",
    "openapi_orchestrator",
    "portal_cluster",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `integration` every test under tests/integration/ and every test that uses a process
    fixture, so that `-m "not integration"` (make test-fast) starts no orchestrator and no gateway.

    A test marked `one_database` (its subject is not the orchestrator's storage: a computation, the
    sandbox, what a gateway enforces) runs on the SQLite `cluster` only: its PostgreSQL run is
    deselected, which spares a second run and, for a worker with no other, a second deployment.

    Files that start processes come first, the rest after them in their order: `make test` hands whole
    files to the workers in this order (`--dist loadfile --no-loadscope-reorder`), so the long files
    start early and the many short ones fill in at the end, rather than a long file of few tests
    (xdist's own order is by number of tests) running alone while the other workers are idle."""
    on_one = [item for item in items if _second_database_run(item)]
    if on_one:
        config.hook.pytest_deselected(items=on_one)
        items[:] = [item for item in items if not _second_database_run(item)]
    for item in items:
        if {INTEGRATION, E2E} & set(item.path.parents) or set(
            getattr(item, "fixturenames", ())
        ) & PROCESS_FIXTURES:
            item.add_marker(pytest.mark.integration)
    slow = {item.path for item in items if item.get_closest_marker("integration") is not None}
    items.sort(key=lambda item: item.path not in slow)  # stable: a file's tests stay in their order


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[object]:
    """A test that is not marked `integration` and starts a process of a deployment fails, so a test
    that starts one some other way than through a process fixture is found at once."""
    if item.get_closest_marker("integration") is not None:
        return (yield)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ManagedProcess, "start", _refuse_to_start)
        return (yield)


def _second_database_run(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return (
        item.get_closest_marker("one_database") is not None
        and callspec is not None
        and callspec.params.get("cluster") == "postgresql"
    )


def _refuse_to_start(process: ManagedProcess) -> None:
    raise RuntimeError(
        f"{process.name} would start as a process in a test that is not marked integration: use a "
        f"fixture of {sorted(PROCESS_FIXTURES)} or put the test under tests/integration/"
    )


def _pg_admin() -> object | None:
    try:
        import psycopg

        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception:
        return None


@contextmanager
def fresh_pg_database(prefix: str) -> Iterator[str]:
    """Create an empty PostgreSQL database and drop it afterwards; skip when there is no server."""
    import psycopg

    conn = _pg_admin()
    if conn is None:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    assert isinstance(conn, psycopg.Connection)
    name = f"{prefix}_{secrets.token_hex(4)}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        try:
            base = PG_ADMIN_URL.rsplit("/", 1)[0]
            yield f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
        finally:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    with fresh_pg_database("custos_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Each database the orchestrator supports: the same tests run against both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'orchestrator.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


# --- a real deployment: orchestrator + three gateways as processes over HTTPS on loopback ---------

STATS_ROWS = 20_000
GRANTED = ["age", "sex", "bmi", "systolic_bp", "smoker", "region"]


def stats_policy() -> dict[str, object]:
    return {
        "dataset": "patients",
        "grants": [
            {
                "orgs": ["university"],
                "models": ["stats@>=1.0,<2", "glm@>=1.0,<2", "fedavg@>=1.0,<2"],
                "columns": GRANTED,
            }
        ],
        "min_count": 10,
        "model_release": True,
    }


def dp_stats_policy() -> dict[str, object]:
    """The policy of `patients_dp` (the same table as `patients`): pure DP at ε 1 per job, a cap of
    ε 3 per researcher and 10 per org."""
    return {
        **stats_policy(),
        "dataset": "patients_dp",
        "privacy": {
            "dp": {"mechanism": "laplace", "epsilon_per_job": 1.0},
            "budget": {"epsilon_per_researcher": 3.0, "epsilon_per_org": 10.0},
        },
    }


# A third dataset of each site, the same table under a policy that accepts reviewed custom code.
CODE_DATASET = "patients_code"
CODE_GRANTED = ["patient_id", "age", "sex", "bmi", "systolic_bp", "smoker", "region", "diagnosis"]
# The built-in default authorization, plus the right to run reviewed custom code for lead researchers.
SITE_AUTHORIZATION: dict[str, object] = {
    "format_version": 1,
    "permissions": {
        "project_admin": "any",
        "org_admin": {"submit_job": "o:site", "activate_spec": "o:site"},
        "lead_researcher": {"submit_job": "any", "activate_spec": "any", "custom_code": "any"},
        "member_researcher": {"submit_job": "none"},
    },
}


def code_policy() -> dict[str, object]:
    """The policy of `patients_code`: reviewed custom code, reading every column, for the university;
    row-level outputs accepted (flagged for the reviewers)."""
    return {
        "dataset": CODE_DATASET,
        "grants": [{"orgs": ["university"], "models": ["custom"], "columns": CODE_GRANTED}],
        "custom_code": "review",
        # The custom code tests return rows of the synthetic patients on purpose (held, flagged).
        "custom_outputs": "allow_row_level",
    }


@pytest.fixture(scope="session")
def site_tables() -> list[pa.Table]:
    """The patients table of site-a, site-b and site-c in the `cluster` fixture."""
    from custos.data.synthetic import synthetic_patients

    return [synthetic_patients(STATS_ROWS, site=i, seed=7) for i in range(3)]


@pytest.fixture(scope="session")
def granted_columns() -> list[str]:
    return list(GRANTED)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, site_tables: list[pa.Table]
) -> Iterator[object]:
    """Orchestrator + gateways site-a/b/c (20,000 synthetic patients each, as `patients` and, under
    differential privacy, `patients_dp`, and under a policy for reviewed custom code,
    `patients_code`; each site's authorization gives lead researchers `custom_code`) + users alice
    (university), mallory (elsewhere) and dora (university; she alone spends budget on
    `patients_dp`); the same suite runs on SQLite and on PostgreSQL, but for tests marked
    `one_database` (see `pytest_collection_modifyitems`)."""

    from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup

    database_url = None
    if request.param == "postgresql":
        database_url = request.getfixturevalue("postgres_session_url")
    sites = [("site-a", "hospital-a"), ("site-b", "hospital-b"), ("site-c", "hospital-c")]
    gateways = [
        GatewaySetup(
            name,
            org,
            [
                DatasetSetup("patients", table, stats_policy()),
                DatasetSetup("patients_dp", table, dp_stats_policy()),
                DatasetSetup(CODE_DATASET, table, code_policy()),
            ],
            authorization=SITE_AUTHORIZATION,
        )
        for table, (name, org) in zip(site_tables, sites, strict=True)
    ]
    users = [
        UserSetup("alice", "university"),
        UserSetup("mallory", "elsewhere"),
        UserSetup("dora", "university"),
    ]
    work = tmp_path_factory.mktemp(f"cluster-{request.param}")
    c = Cluster(work, gateways=gateways, users=users, database_url=database_url)
    try:
        c.start()
    except Exception:
        print(c.logs())
        raise
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def postgres_session_url() -> Iterator[str]:
    with fresh_pg_database("custos_it") as url:
        yield url


# The sandbox runners a gateway uses: bubblewrap per run everywhere, the zygote as root (job runtimes).
SANDBOX_RUNNERS = ["bubblewrap", "zygote"]


@pytest.fixture(scope="session", params=SANDBOX_RUNNERS)
def sandbox_runner(request: pytest.FixtureRequest) -> Iterator[object]:
    """Each Runner implementation in turn (one zygote for the session: later runs fork from the same
    one). The contract and attack tests of the sandbox take this, so that both meet every bullet."""
    import shutil

    from custos.sandbox import BubblewrapRunner
    from custos.sandbox.zygote import ZygoteRunner

    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    if request.param == "bubblewrap":
        yield BubblewrapRunner()
        return
    if os.geteuid() != 0:
        pytest.skip("the zygote runner needs root")
    # No preload: these runs are plain Python, as in bubblewrap's fresh interpreter (whose address
    # space, which RLIMIT_AS counts, is as small). Job runtimes preload the runtime's modules.
    runner = ZygoteRunner()
    try:
        yield runner
    finally:
        runner.close()
