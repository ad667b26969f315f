"""Bad input at the CLI, against real processes: one readable line on stderr, exit 1, no traceback,
and nothing half-written."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from custos.core.clock import utcnow
from custos.core.wire import SignedPolicy, policy_message
from custos.local.cluster import Cluster
from custos.pki.certs import certificate_pem
from custos.pki.kit import load_kit
from custos.pki.verify import sign


def custos(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "custos.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(run: subprocess.CompletedProcess[str], expected: str) -> None:
    assert run.returncode == 1, run
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert expected in lines[0]


def test_unknown_spec_id(cluster: Cluster) -> None:
    run = custos("spec", "status", "spec_missing", "--kit", str(cluster.kit_dir("alice")))
    assert_one_line_error(run, "unknown compute spec spec_missing")


def test_unknown_column_writes_no_spec(cluster: Cluster) -> None:
    kit = str(cluster.kit_dir("mallory"))
    run = custos(
        "spec", "create", "--kit", kit, "--name", "typo", "--model", "stats@1.0.0",
        "--dataset", "site-a/patients", "--column", "agee",
    )  # fmt: skip
    assert_one_line_error(run, "unknown column 'agee'")
    listed = custos("spec", "list", "--kit", kit, "--json")
    assert listed.returncode == 0, listed.stderr
    assert "typo" not in listed.stdout


def test_unknown_column_in_job_params(cluster: Cluster) -> None:
    kit = str(cluster.kit_dir("alice"))
    with cluster.client("alice") as alice:
        spec = alice.create_spec("cli", "stats@1.0.0", ["site-a/patients"], ["age"])
        alice.activate_spec(spec.id)
    run = custos("job", "submit", spec.id, "--kit", kit, "--params", '{"columns": ["bmii"]}')
    assert_one_line_error(run, "bmii")


def _signed_raw(cluster: Cluster, text: str) -> SignedPolicy:
    """`text` signed as is by hospital-a's admin (sign_policy itself refuses text that does not parse)."""
    kit = load_kit(cluster.kit_dir(cluster.admin_of("hospital-a")))
    issued = utcnow()
    signature = sign(kit.private_key, policy_message("site-a/patients", issued, text))
    return SignedPolicy(
        dataset="site-a/patients",
        policy_yaml=text,
        issued_at=issued,
        signer_certificate_pem=certificate_pem(kit.certificate),
        signature=base64.b64encode(signature).decode(),
    )


POLICY = "dataset: patients\ngrants:\n  - orgs: [u]\n    models: [stats]\n    columns: [age]\n"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda c: POLICY, "is not a signed policy"),
        (lambda c: _signed_raw(c, "dataset: patients\ngrants: [\n").model_dump_json(), "malformed YAML"),
        (
            lambda c: c.sign_policy(
                "site-a", "patients", POLICY, signer="admin@hospital-b"
            ).model_dump_json(),
            "only an org_admin of hospital-a",
        ),
    ],
)
def test_gateway_refuses_to_start_with_a_bad_policy_file(
    cluster: Cluster, tmp_path: Path, make: Callable[[Cluster], str], expected: str
) -> None:
    site = cluster.site_dir("site-a")
    (tmp_path / "patients.policy.json").write_text(make(cluster))
    catalog = tmp_path / "DATASETS.yaml"
    catalog.write_text(f"datasets:\n  - name: patients\n    path: {site / 'patients.parquet'}\n")
    run = custos("gateway", "start", "--kit", str(cluster.kit_dir("site-a")), "--data", str(catalog),
                 "--state", str(tmp_path / "state"))  # fmt: skip
    assert_one_line_error(run, expected)


def test_gateway_refuses_a_missing_catalogue(cluster: Cluster, tmp_path: Path) -> None:
    run = custos(
        "gateway", "start", "--kit", str(cluster.kit_dir("site-b")), "--data", str(tmp_path / "nope.yaml")
    )
    assert_one_line_error(run, "nope.yaml")


def test_sqlite_refuses_several_workers_and_writes_nothing(cluster: Cluster, tmp_path: Path) -> None:
    state = tmp_path / "state"
    kit = str(cluster.kit_dir("orchestrator"))
    run = custos("orchestrator", "start", "--kit", kit, "--state", str(state),
                 "--workers", "3", "--database-url", f"sqlite:///{state / 'o.db'}")  # fmt: skip
    assert_one_line_error(run, "--workers 3: SQLite is served by one process")
    assert not state.exists()
