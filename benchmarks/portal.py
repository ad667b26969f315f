"""Server time of the portal's main pages with many jobs and releases in the database.

    .venv/bin/python benchmarks/portal.py [--jobs 10000] [--releases 1000] [--requests 40] \
        [--database sqlite|postgresql|both] [--keep]

The orchestrator's app runs in process (Starlette's test client: no network, no TLS), on SQLite and,
when a server answers on 127.0.0.1:5432, on a fresh PostgreSQL database. A gateway publishes one
dataset whose policy asks two reviewers; then `--jobs` jobs of researcher alice (one task each, the
finished ones with a stats result) and `--releases` releases held for hospital-a's reviewers are
written straight into the database. Signed in through the portal's form, alice (a researcher) and
carol (hospital-a's org admin) each ask for their pages `--requests` times; the p50 and p95 of each
page are printed, next to the baseline measured in the same run: `GET /api/v1/me` with the same
session cookie (the gate, the session lookup and a JSON answer, with no page behind it). The target is
p95 < 100 ms for every page. The last line is the figures as JSON.
"""

from __future__ import annotations

import argparse
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from deployment import describe_load, load_average, percentile, print_json_figures, work_folder
from fastapi.testclient import TestClient
from sqlalchemy import insert

from custos.core.clock import utcnow
from custos.core.states import JobState, ReleaseState, TaskState
from custos.data.ipc import table_to_ipc_b64
from custos.orchestrator.app import create_app
from custos.orchestrator.settings import OrchestratorSettings
from custos.orchestrator.tables import ComputeSpec, Job, Release, ReleasePartRecord, Result, Task
from custos.pki.signin import sign_in
from custos.policy.signing import sign_policy
from custos.testing.inprocess import provision_people

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PASSWORD = secrets.token_urlsafe(16)
POLICY = """dataset: patients
grants:
- orgs: [university]
  models: ["stats@>=1.0,<2"]
  columns: [age, region]
release: two
"""
SCHEMA = {
    "columns": [
        {"name": "age", "type": "integer", "kind": "numeric", "min": 0, "max": 100},
        {"name": "region", "type": "string", "kind": "categorical", "categories": ["north", "south"]},
    ]
}
RESULT = {
    "summaries": [{"column": "age", "group": None, "count": 1200, "mean": 51.2}],
    "histograms": [
        {"column": "age", "group": None, "edges": [0, 25, 50, 75, 100], "counts": [300, 310, 290, 300]}
    ],
}
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str | None]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'portal.db'}"
        return
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception as exc:
        print(f"PostgreSQL is not reachable at {PG_ADMIN} ({exc}); skipped")
        yield None
        return
    name = f"custos_portal_bench_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill(api: TestClient, kits: dict[str, Any], jobs: int, releases: int) -> tuple[str, str]:
    """Publish the dataset, set passwords, and write the jobs and releases; return a job id and a
    release id to open."""
    carol = kits["carol"]
    signed = sign_policy(
        POLICY, "site-a/patients", key=carol.private_key, certificate=carol.certificate, now=utcnow()
    )
    mock = table_to_ipc_b64(pa.table({"age": [30, 40, 50], "region": ["north", "south", "north"]}))
    body = {
        "datasets": [
            {
                "name": "patients",
                "schema": SCHEMA,
                "row_count": 1000,
                "mock_arrow_b64": mock,
                "policy": signed.model_dump(mode="json"),
            }
        ]
    }
    gateway = {"Authorization": f"Bearer {sign_in(api, kits['site-a']).token}"}
    assert api.post("/api/v1/gateway/publish", json=body, headers=gateway).status_code == 200
    for name in ("alice", "carol"):
        headers = {"Authorization": f"Bearer {sign_in(api, kits[name]).token}"}
        assert (
            api.post("/api/v1/auth/password", json={"password": PASSWORD}, headers=headers).status_code == 204
        )
    services = api.app.state.services  # type: ignore[attr-defined]
    now = utcnow()
    with services.db.session() as session:
        session.execute(
            insert(ComputeSpec),
            [
                {
                    "id": "spec_bench",
                    "name": "bench",
                    "model": "stats@1.0.0",
                    "datasets": ["site-a/patients"],
                    "columns": ["age"],
                    "resources": {},
                    "state": "active",
                    "reason": None,
                    "owner": "alice",
                    "org": "university",
                    "owner_role": "lead_researcher",
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
        job_rows, task_rows, result_rows = [], [], []
        for i in range(jobs):
            held = i >= jobs - releases
            state = JobState.AWAITING_RELEASE if held else (JobState.SUCCEEDED if i % 10 else JobState.FAILED)
            at = now - timedelta(seconds=jobs - i)
            job_id = f"job_{i:016x}"
            job_rows.append(
                {
                    "id": job_id,
                    "spec_id": "spec_bench",
                    "model": "stats@1.0.0",
                    "params": {"columns": ["age"]},
                    "state": state,
                    "round": 1,
                    "model_state": {},
                    "min_count": 10,
                    "reason": None if state is not JobState.FAILED else "a site failed",
                    "submitter": "alice",
                    "org": "university",
                    "role": "lead_researcher",
                    "created_at": at,
                    "finished_at": at,
                }
            )
            task_rows.append(
                {
                    "id": f"task_{i:016x}",
                    "kind": "compute",
                    "spec_id": "spec_bench",
                    "job_id": job_id,
                    "gateway": "site-a",
                    "dataset": "patients",
                    "round": 1,
                    "round_input": {},
                    "state": TaskState.DONE,
                    "attempt": 1,
                    "max_attempts": 3,
                    "lease_expires_at": None,
                    "result": None,
                    "result_digest": None,
                    "error": None,
                    "created_at": at,
                    "updated_at": at,
                }
            )
            if state is not JobState.FAILED:
                result_rows.append({"job_id": job_id, "result": RESULT, "created_at": at})
        session.execute(insert(Job), job_rows)
        session.execute(insert(Task), task_rows)
        session.execute(insert(Result), result_rows)
        held_jobs = [r["id"] for r in job_rows[jobs - releases :]]
        session.execute(
            insert(Release),
            [
                {
                    "id": f"rel_{i:016x}",
                    "job_id": job_id,
                    "state": ReleaseState.HELD,
                    "required": 2,
                    "orgs": ["hospital-a"],
                    "reason": None,
                    "created_at": now,
                    "updated_at": now,
                }
                for i, job_id in enumerate(held_jobs)
            ],
        )
        session.execute(
            insert(ReleasePartRecord),
            [
                {"release_id": f"rel_{i:016x}", "org": "hospital-a", "required": 2}
                for i in range(len(held_jobs))
            ],
        )
    return f"job_{jobs - releases - 1:016x}", f"rel_{releases - 1:016x}"


def signed_in(api: TestClient, name: str) -> dict[str, str]:
    api.cookies.clear()
    form = api.get("/signin")
    token = CSRF.search(form.text)
    assert token is not None
    r = api.post("/signin", data={"csrf": token.group(1), "name": name, "password": PASSWORD})
    assert r.status_code == 303, r.text
    cookie = r.cookies["custos_session"]
    api.cookies.clear()
    return {"Cookie": f"custos_session={cookie}"}


def timed(api: TestClient, path: str, headers: dict[str, str], requests: int) -> tuple[float, float]:
    api.get(path, headers=headers)  # warm: templates compiled, caches filled
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        r = api.get(path, headers=headers)
        times.append(time.perf_counter() - start)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return percentile(times, 0.5), percentile(times, 0.95)


def run(kind: str, folder: Path, kits: dict[str, Any], args: argparse.Namespace) -> dict[str, Any] | None:
    with database(kind, folder) as url:
        if url is None:
            return None
        settings = OrchestratorSettings(
            database_url=url,
            audit_path=folder / f"audit-{kind}.log",
            password_time_cost=1,
            password_memory_kib=1024,
            password_parallelism=1,
        )
        app = create_app(settings, kits["orchestrator"].root_certificate)
        with TestClient(app, base_url="https://testserver", follow_redirects=False) as api:
            started = time.perf_counter()
            job_id, release_id = fill(api, kits, args.jobs, args.releases)
            took = time.perf_counter() - started
            print(f"{kind}: wrote {args.jobs:,} jobs and {args.releases:,} releases in {took:.1f} s")
            pages = {
                "alice": [
                    "/api/v1/me",
                    "/",
                    "/jobs",
                    "/jobs?page=100",
                    f"/jobs/{job_id}",
                    "/datasets",
                    "/datasets/site-a/patients",
                    "/code",
                ],
                "carol": ["/", "/releases", f"/releases/{release_id}"],
            }
            figures: dict[str, Any] = {}
            for user, paths in pages.items():
                headers = signed_in(api, user)
                for path in paths:
                    p50, p95 = timed(api, path, headers, args.requests)
                    figures[f"{user} {path}"] = {
                        "p50_ms": round(p50 * 1000, 1),
                        "p95_ms": round(p95 * 1000, 1),
                    }
            base = figures["alice /api/v1/me"]["p95_ms"]
            for key, value in figures.items():
                ratio = value["p95_ms"] / base if base else float("nan")
                mark = "" if value["p95_ms"] < 100 else "  (over the 100 ms target)"
                print(
                    f"  {key:<36} p50 {value['p50_ms']:7.1f} ms   p95 {value['p95_ms']:7.1f} ms   "
                    f"{ratio:5.1f} x baseline{mark}"
                )
            return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--releases", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if args.releases > args.jobs:
        parser.error("--releases must not exceed --jobs: each release holds one job")
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    with work_folder("custos-portal-bench-", keep=args.keep) as folder:
        kits = provision_people(
            folder / "kits",
            "portal-bench",
            [
                ("site-a", "gateway", "hospital-a", None),
                ("alice", "user", "university", "lead_researcher"),
                ("carol", "user", "hospital-a", "org_admin"),
            ],
        )
        before = load_average()
        print(f"load before: {describe_load(before)}")
        results = {kind: run(kind, folder, kits, args) for kind in kinds}
        print(f"load after: {describe_load(load_average())}")
    print_json_figures(
        {
            "jobs": args.jobs,
            "releases": args.releases,
            "requests": args.requests,
            "load_1m": before[0],
            **{k: v for k, v in results.items() if v is not None},
        }
    )


if __name__ == "__main__":
    main()
