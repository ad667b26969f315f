"""Bad input at the CLI, against real processes: one readable line on stderr, exit 1, no traceback,
and nothing half-written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from custos.testing.cluster import Cluster


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


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("dataset: patients\ngrants: [\n", "malformed YAML at line"),
        ("dataset: patients\ngrants:\n  - orgs: [u]\n    models: [stats]\n", "columns"),
    ],
)
def test_gateway_refuses_to_start_with_a_malformed_policy(
    cluster: Cluster, tmp_path: Path, policy: str, expected: str
) -> None:
    site = cluster.site_dir("site-a")
    (tmp_path / "patients.policy.yaml").write_text(policy)
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
