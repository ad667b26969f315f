"""Reviewed custom code through real processes: prototyped on mock, submitted, approved by the
custodian, run unchanged on the data in the sandbox, and held for release review; code that is not
approved (or was changed since) is refused."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import create_engine, text

from custos.computations.custom.code_package import build_code_package, verify_code_package
from custos.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from custos.core.wire import code_digest
from custos.local.cluster import Cluster

pytestmark = pytest.mark.integration

DATASET = "site-a/patients_code"
ADMIN_A = "admin@hospital-a"


def older_patients(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    """Rows of patients at least `min_age` old: exactly what a custodian must review."""
    filters = [{"column": "age", "op": ">=", "value": params["min_age"]}]
    frame = dal.read(datasets[0], params["columns"], filters).to_pandas()
    return frame.sort_values("patient_id").head(params["rows"]).reset_index(drop=True)


def count_rows(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    return {"rows": dal.read(datasets[0], ["age"]).num_rows}


def _rows(frame: pd.DataFrame, columns: list[str]) -> set[tuple[Any, ...]]:
    return set(frame[columns].itertuples(index=False, name=None))


def _release(cluster: Cluster, job_id: str) -> None:
    with cluster.client(ADMIN_A) as admin:
        held = [r for r in admin.releases() if r.job_id == job_id]
        assert len(held) == 1 and held[0].required == 1
        admin.approve_release(held[0].id, "reviewed")


def test_code_prototyped_on_mock_runs_unchanged_on_the_data_after_approval(
    cluster: Cluster, site_tables: list[pa.Table]
) -> None:
    real = site_tables[0].to_pandas()
    with cluster.client("alice") as alice:
        # Every column the policy grants to custom code: all of them but postcode.
        columns = [c for c in alice.dataset(DATASET).schema.names if c != "postcode"]
        params = {"columns": columns, "min_age": 60, "rows": 25}
        on_mock = alice.run_on_mock(older_patients, [DATASET], params)[DATASET]
        assert list(on_mock.columns) == columns and len(on_mock) > 0
        assert (on_mock["age"] >= 60).all()  # the filter means the same on mock as at the DAL

        request = alice.submit(older_patients, [DATASET], params)
        assert request.state == "pending" and request.digest == code_digest(request.source)
        assert "def older_patients(" in request.source and request.orgs == ["hospital-a"]
        with cluster.client(ADMIN_A) as admin:
            assert request.id in [r.id for r in admin.code_requests()]  # what the custodian has to review
            shown = admin.code_request(request.id)
            assert shown.source == request.source and shown.params == params
            approved = admin.approve_code(request.id, "rows of older patients, reviewed")
        assert approved.state == "approved"
        assert [(r.reviewer, r.decision) for r in approved.reviews] == [(ADMIN_A, "approve")]

        job = alice.run_code(request.id)
        assert alice.wait_job(job.id, timeout=120).state == "awaiting_release"
        with pytest.raises(Conflict, match="held for release review"):
            alice.job_result(job.id)
        _release(cluster, job.id)
        on_data = alice.code_result(job.id)[DATASET]

    assert list(on_data.columns) == columns and len(on_data) == 25
    real_rows = _rows(real, columns)
    assert _rows(on_data, columns) <= real_rows  # it ran on the data...
    assert not _rows(on_mock, columns) & real_rows  # ...and the mock holds not a single real row
    assert not on_data.equals(on_mock)


def test_a_dataset_whose_policy_refuses_custom_code_refuses_the_request(cluster: Cluster) -> None:
    with (
        cluster.client("alice") as alice,
        pytest.raises(PermissionDenied, match=r"the policy for site-a/patients does not accept custom code"),
    ):
        alice.submit(count_rows, ["site-a/patients"], output="json")
    with (
        cluster.client("mallory") as mallory,
        pytest.raises(PermissionDenied, match="grants nothing to user mallory"),
    ):
        mallory.submit(count_rows, [DATASET], output="json")


def test_unapproved_denied_and_changed_code_is_refused_at_the_orchestrator(cluster: Cluster) -> None:
    with cluster.client("alice") as alice, cluster.client(ADMIN_A) as admin:
        pending = alice.submit(count_rows, [DATASET], output="json")
        with pytest.raises(
            Conflict, match=rf"code request {pending.id} is pending: a custodian of hospital-a"
        ):
            alice.run_code(pending.id)

        denied = alice.submit(count_rows, [DATASET], {"why": "denied"}, output="json")
        with pytest.raises(InvalidInput, match="reason is required"):
            admin.deny_code(denied.id, " ")
        admin.deny_code(denied.id, "reads more than it needs")
        with pytest.raises(Conflict, match="was denied by admin@hospital-a: reads more than it needs"):
            alice.run_code(denied.id)
        with pytest.raises(Conflict, match="is denied; it takes no more decisions"):
            admin.approve_code(denied.id)

        approved = alice.submit(count_rows, [DATASET], output="json")
        admin.approve_code(approved.id)
        # Any change is a new request, pending its own review.
        swapped = approved.source.replace('["age"]', '["age", "bmi"]')
        changed = alice.submit(swapped, [DATASET], output="json", function="count_rows")
        assert changed.id != approved.id and changed.digest != approved.digest
        with pytest.raises(Conflict, match="is pending"):
            alice.run_code(changed.id)

        # Someone with the orchestrator's database swaps the approved source: refused before any task.
        engine = create_engine(
            cluster.database_url
            or f"sqlite:///{cluster.work_dir / 'state' / 'orchestrator' / 'orchestrator.db'}"
        )
        try:
            with engine.begin() as conn:
                conn.execute(
                    text("UPDATE code_requests SET source = :s WHERE id = :id"),
                    {"s": changed.source, "id": approved.id},
                )
            with pytest.raises(Conflict, match="not the digest its custodians approved"):
                alice.run_code(approved.id)
        finally:
            engine.dispose()


def test_only_the_datasets_custodians_review_and_never_the_author(cluster: Cluster) -> None:
    with cluster.client("alice") as alice:
        request = alice.submit(count_rows, [DATASET], output="json")
        with pytest.raises(PermissionDenied):
            alice.approve_code(request.id)  # a researcher holds no custodian's key, nor the role
    with cluster.client("admin@hospital-b") as other, pytest.raises(NotFound, match="unknown code request"):
        other.approve_code(request.id)  # another org's custodian does not even see it


# --- a package: a folder with custos-model.toml, reviewed and run as its archive ------------------

PACKAGE_MANIFEST = """\
name = "older-by-region"
version = "0.1.0"
entrypoint = "cohort.main:run"

[parameters.min_age]
type = "integer"
required = true

[parameters.top]
type = "integer"
default = 3

[outputs.counts]
kind = "table"
max_rows = 10
"""
PACKAGE_MAIN = """\
from cohort.shape import by_region


def run(dal, datasets, params):
    filters = [{"column": "age", "op": ">=", "value": params["min_age"]}]
    return by_region(dal.read(datasets[0], ["region"], filters).to_pandas(), params["top"])
"""
PACKAGE_SHAPE = """\
def by_region(frame, top):
    counts = frame.groupby("region", as_index=False).size().rename(columns={"size": "n"})
    return counts.sort_values(["n", "region"], ascending=[False, True]).head(top).reset_index(drop=True)
"""


def test_a_package_is_shown_approved_by_its_archives_digest_and_run_on_the_data(
    cluster: Cluster, site_tables: list[pa.Table], tmp_path: Path
) -> None:
    folder = tmp_path / "older-by-region"
    (folder / "cohort").mkdir(parents=True)
    (folder / "custos-model.toml").write_text(PACKAGE_MANIFEST, encoding="utf-8")
    (folder / "cohort" / "main.py").write_text(PACKAGE_MAIN, encoding="utf-8")
    (folder / "cohort" / "shape.py").write_text(PACKAGE_SHAPE, encoding="utf-8")
    with cluster.client("alice") as alice:
        on_mock = alice.run_on_mock(folder, [DATASET], {"min_age": 60})[DATASET]
        request = alice.submit(folder, [DATASET], {"min_age": 60})
        assert (request.kind, request.function, request.output) == ("package", "cohort.main:run", "table")
        assert request.digest == build_code_package(folder).digest
        assert request.params == {"min_age": 60, "top": 3}  # the manifest's default, filled in
        with cluster.client(ADMIN_A) as admin:
            shown = admin.code_request(request.id)
            # What a custodian reads is decoded from the very bytes the approval binds.
            package = verify_code_package(shown.code().archive(), shown.digest)
            assert package.python_sources() == {
                "cohort/main.py": PACKAGE_MAIN,
                "cohort/shape.py": PACKAGE_SHAPE,
            }
            admin.approve_code(request.id, "counts per region")
        job = alice.run_code(request.id)
        assert alice.wait_job(job.id, timeout=120).state == "awaiting_release"
        _release(cluster, job.id)
        on_data = alice.code_result(job.id)[DATASET]

    real = site_tables[0].to_pandas()
    expected = real[real["age"] >= 60].groupby("region").size()
    assert list(on_data.columns) == ["region", "n"] and len(on_data) == 3
    assert all(expected[region] == n for region, n in on_data.itertuples(index=False, name=None))
    assert on_data["n"].tolist() == sorted(expected, reverse=True)[:3]
    assert not on_data.equals(on_mock)


# --- a file output: declared by type, checked at the gateway, reviewed by digest, downloaded ------


def counts_as_csv(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    filters = [{"column": "age", "op": ">=", "value": params["min_age"]}]
    frame = dal.read(datasets[0], ["region"], filters).to_pandas()
    counts = frame.groupby("region", as_index=False).size().rename(columns={"size": "n"})
    return counts.sort_values("region").to_csv(index=False).encode()


def _custos(*args: str) -> str:
    """The `custos` command line, as a user runs it; its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOS_")}
    done = subprocess.run(
        [sys.executable, "-m", "custos.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_file_output_is_reviewed_by_its_digest_and_downloaded_byte_for_byte(
    cluster: Cluster, site_tables: list[pa.Table], tmp_path: Path
) -> None:
    params = {"min_age": 60}
    with cluster.client("alice") as alice, cluster.client(ADMIN_A) as admin:
        on_mock = alice.run_on_mock(counts_as_csv, [DATASET], params, output="file:csv")[DATASET]
        assert on_mock.startswith(b"region,n\n")  # the gateway's checks, run locally
        request = alice.submit(counts_as_csv, [DATASET], params, output="file:csv")
        assert admin.code_request(request.id).output == "file:csv"
        admin.approve_code(request.id, "counts per region")
        job = alice.run_code(request.id)
        assert alice.wait_job(job.id, timeout=120).state == "awaiting_release"

        held = next(r for r in admin.releases() if r.job_id == job.id)
        shown = _custos("release", "show", held.id, "--kit", str(cluster.kit_dir(ADMIN_A)))
        reference = admin.release(held.id).result["sites"][DATASET]
        assert reference["file_type"] == "csv" and set(reference["data"]) == {"$blob", "size"}
        digest, size = reference["data"]["$blob"], reference["data"]["size"]
        assert re.search(
            rf"file of {DATASET}\s+name\s+value\s+─+\s+type\s+csv\s+bytes\s+{size}\s+sha256\s+{digest} *\n",
            shown,
        ), shown
        admin.approve_release(held.id, "aggregates only")

        saved = alice.job_result(job.id).save_file(tmp_path / "counts.csv")
        assert alice.code_result(job.id)[DATASET] == saved.read_bytes()
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == digest
    _custos(
        "job", "result", job.id, "--out", str(tmp_path / "cli.csv"), "--kit", str(cluster.kit_dir("alice"))
    )
    assert (tmp_path / "cli.csv").read_bytes() == saved.read_bytes()

    real = site_tables[0].to_pandas()
    expected = real[real["age"] >= 60].groupby("region").size()
    on_data = pd.read_csv(saved)
    assert dict(zip(on_data["region"], on_data["n"], strict=True)) == expected.to_dict()
    assert saved.read_bytes() != on_mock
