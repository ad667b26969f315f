"""A published registry package runs at a gateway only as the archive its publisher signed: the gateway
fetches it, verifies digest, signature and structure, caches it by digest, and verifies the cached
archive again before every run. An archive changed on the gateway's disk is refused; its output is
held for release review and checked against the manifest's cap. Real processes, real sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from custos.core.errors import Conflict
from custos.data.synthetic import synthetic_patients
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.sdk import Client

MANIFEST = """\
name = "cohort-summary"
version = "1.0.0"
entrypoint = "cohort.main:run"
description = "Patients per region at or over an age"

[parameters.min_age]
type = "integer"
default = 18

[columns]
age = "integer"
region = "string"

[outputs.summary]
kind = "table"
max_rows = 10
"""
MAIN = """\
def run(dal, datasets, params):
    filters = [{"column": "age", "op": ">=", "value": params["min_age"]}]
    frame = dal.read(datasets[0], ["region"], filters).to_pandas()
    return frame.groupby("region", as_index=False).size().rename(columns={"size": "n"})
"""
TABLE = synthetic_patients(2000, site=0, seed=11)
POLICY = {
    "dataset": "patients",
    "grants": [{"orgs": ["university"], "models": ["cohort-summary@>=1.0,<2"], "columns": ["age", "region"]}],
    "min_count": 10,
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("packages")
    site = GatewaySetup("site-a", "hospital-a", [DatasetSetup("patients", TABLE, POLICY)])
    with Cluster(work, gateways=[site], users=[UserSetup("alice", "university")], project="packages") as c:
        yield c


@pytest.fixture(scope="module")
def spec_id(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("cohort-summary")
    (folder / "cohort").mkdir()
    (folder / "custos-model.toml").write_text(MANIFEST, encoding="utf-8")
    (folder / "cohort" / "__init__.py").write_text("", encoding="utf-8")
    (folder / "cohort" / "main.py").write_text(MAIN, encoding="utf-8")
    with cluster.client("alice") as alice:
        alice.publish_model(folder)
        spec = alice.create_spec("summary", "cohort-summary@1.0.0", ["site-a/patients"], ["age", "region"])
        # Activation is the gateway's first fetch: it verifies and caches the archive.
        return alice.activate_spec(spec.id, timeout=60).id


def _run(cluster: Cluster, alice: Client, spec_id: str) -> str:
    job = alice.submit_job(spec_id, {"min_age": 60})
    assert alice.wait_job(job.id, timeout=120).state.value == "awaiting_release"
    with cluster.client(cluster.admin_of("hospital-a")) as admin:
        (held,) = [r for r in admin.releases() if r.job_id == job.id]
        admin.approve_release(held.id)
    return job.id


def _models_folder(cluster: Cluster) -> Path:
    return cluster.work_dir / "state" / "site-a" / "models"


def test_a_published_package_runs_as_signed_and_its_output_is_reviewed_before_release(
    cluster: Cluster, spec_id: str
) -> None:
    with cluster.client("alice") as alice:
        job_id = _run(cluster, alice, spec_id)
        output = alice.job_result(job_id).data["sites"]["site-a/patients"]
    rows = {row[0]: row[1] for row in output["rows"]}
    frame = TABLE.to_pandas()
    expected = frame[frame["age"] >= 60].groupby("region").size().to_dict()
    assert rows == expected
    digest = json.loads((_models_folder(cluster) / "pins.json").read_text())["cohort-summary@1.0.0"]
    assert (_models_folder(cluster) / f"{digest}.zip").is_file()


def test_an_archive_changed_in_the_gateways_cache_is_refused_before_it_runs(
    cluster: Cluster, spec_id: str
) -> None:
    folder = _models_folder(cluster)
    digest = json.loads((folder / "pins.json").read_text())["cohort-summary@1.0.0"]
    archive = folder / f"{digest}.zip"
    original = archive.read_bytes()
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0x01
    archive.write_bytes(bytes(tampered))
    try:
        with cluster.client("alice") as alice:
            job = alice.submit_job(spec_id, {"min_age": 60})
            with pytest.raises(Conflict, match=r"refused \(digest_mismatch\)"):
                alice.wait_job(job.id, timeout=120)
    finally:
        archive.write_bytes(original)
