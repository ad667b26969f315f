"""E42 and F44 through the path production uses: an owner publishes a confidential package (ciphertext
at the orchestrator and the gateway) and deposits its key at their key broker, a real process; a
custodian's gateway, a real process, runs it in its long-lived sandboxed runtime, which gets the key
wrapped for its own ephemeral key after the gateway attested it, and decrypts the package in memory.
The output is held for review like any package's. The gateway's disk never holds the code or the key;
a revoked key or a runtime the policy does not name gets no key, with the reason audited at the broker
and at the gateway."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from custos.attestation.software import measure_runtime
from custos.audit import read_events
from custos.cli.main import app as cli
from custos.core.errors import Conflict, NotFound
from custos.core.wire import ModelKind
from custos.core.wire.keybroker import KeyPolicy
from custos.data.synthetic import synthetic_patients
from custos.gateway.code_logs import read_code_logs
from custos.keybroker.vault import KeyVault, load_key_file
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, KeyBrokerSetup, UserSetup
from custos.pki.kit import load_kit
from custos.registry import SealedArchive, build_archive, seal_archive
from custos.sdk.keybroker import OwnerBrokerClient

SECRET = "THE-OWNERS-SECRET-7f3a"
MANIFEST = """\
name = "secret-sauce"
version = "1.0.0"
entrypoint = "sauce:run"
description = "A proprietary cohort count"
[columns]
region = "string"
[outputs.counts]
kind = "table"
max_rows = 10
"""
CODE = f"""\
# {SECRET}: nobody but the owner may read this
def run(dal, datasets, params):
    frame = dal.read(datasets[0], ["region"]).to_pandas()
    return frame.groupby("region", as_index=False).size().rename(columns={{"size": "n"}})
"""
TABLE = synthetic_patients(600, site=0, seed=5)
POLICY = {
    "dataset": "patients",
    "grants": [{"orgs": ["university"], "models": ["secret-sauce@>=1.0,<5"], "columns": ["region"]}],
    "min_count": 10,
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("confidential")
    site = GatewaySetup("site-a", "hospital-a", [DatasetSetup("patients", TABLE, POLICY)])
    users = [UserSetup("alice", "university"), UserSetup("olga", "modelco")]
    with Cluster(work, gateways=[site], users=users, keybrokers=[KeyBrokerSetup("broker", "modelco")],
                 project="confidential") as c:  # fmt: skip
        yield c


def package(folder: Path, version: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "custos-model.toml").write_text(MANIFEST.replace("1.0.0", version), encoding="utf-8")
    (folder / "sauce.py").write_text(CODE, encoding="utf-8")
    return folder


def publish(
    cluster: Cluster, folder: Path, measurements: list[str], broker_url: str | None = None
) -> SealedArchive:
    """What `custos model publish --confidential` does, keeping the key so the test can look for it."""
    built = build_archive(folder)
    key_id = f"sauce-{built.manifest.version.replace('.', '-')}-key"
    sealed = seal_archive(
        built, key_id=key_id, broker_url=broker_url or cluster.broker_url("broker"), measurements=measurements
    )
    policy = KeyPolicy(package=built.manifest.ref, ciphertext_digest=sealed.digest,
                       plaintext_digest=built.digest, measurements=measurements)  # fmt: skip
    with OwnerBrokerClient(cluster.broker_url("broker"), load_kit(cluster.kit_dir("olga"))) as broker:
        broker.deposit(key_id, sealed.data_key, policy)
    with cluster.client("olga") as olga:
        olga.publish_confidential(sealed, kit=cluster.kit_dir("olga"))
    return sealed


def run_job(cluster: Cluster, ref: str) -> str:
    with cluster.client("alice") as alice:
        spec = alice.create_spec(f"run {ref}", ref, ["site-a/patients"], ["region"])
        spec_id = alice.activate_spec(spec.id, timeout=60).id
        job = alice.submit_job(spec_id, {})
        assert alice.wait_job(job.id, timeout=180).state.value == "awaiting_release", cluster.logs()
        return job.id


def broker_events(cluster: Cluster) -> list[tuple[str, str]]:
    return [(e.action, e.message) for e in read_events(cluster.work_dir / "state" / "broker" / "audit.log")]


def gateway_events(cluster: Cluster) -> list[tuple[str, str]]:
    return [(e.action, e.message) for e in read_events(cluster.work_dir / "state" / "site-a" / "audit.log")]


def scan(folder: Path, *needles: bytes) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)]


def test_e42_f44_a_confidential_package_runs_and_nobody_but_the_runtime_reads_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    sealed = publish(cluster, package(tmp_path / "v1", "1.0.0"), [measure_runtime()])
    # the custodian sees the manifest, the measurements and the broker; no code
    runner = CliRunner()
    shown = runner.invoke(
        cli,
        ["model", "show", "secret-sauce@1.0.0", "--kit", str(cluster.kit_dir("admin@hospital-a")), "--json"],
    )
    assert shown.exit_code == 0, shown.output
    assert SECRET not in shown.output and '"kind":"confidential"' in shown.output.replace(" ", "")
    job_id = run_job(cluster, "secret-sauce@1.0.0")
    with cluster.client(cluster.admin_of("hospital-a")) as admin:
        (held,) = [r for r in admin.releases() if r.job_id == job_id]
        admin.approve_release(held.id)
    with cluster.client("alice") as alice:
        rows = {r[0]: r[1] for r in alice.job_result(job_id).data["sites"]["site-a/patients"]["rows"]}
    assert rows == TABLE.to_pandas().groupby("region").size().to_dict()
    assert any(a == "key_released" and "secret-sauce@1.0.0" in m for a, m in broker_events(cluster))
    assert any(a == "key_received" for a, _ in gateway_events(cluster))
    # neither the code nor the data key is anywhere the gateway or the orchestrator writes
    key_b64 = base64.b64encode(sealed.data_key)
    for side in ("site-a", "orchestrator"):
        assert scan(cluster.work_dir / "state" / side, SECRET.encode(), sealed.data_key, key_b64) == []
    assert scan(cluster.logs_dir, SECRET.encode(), key_b64) == []
    with cluster.client("alice") as alice:
        assert alice.model("secret-sauce@1.0.0").kind is ModelKind.CONFIDENTIAL


def test_e42_a_runtime_the_policy_does_not_name_gets_no_key(cluster: Cluster, tmp_path: Path) -> None:
    publish(cluster, package(tmp_path / "v2", "2.0.0"), ["00" * 32])
    with cluster.client("alice") as alice:
        spec = alice.create_spec("run v2", "secret-sauce@2.0.0", ["site-a/patients"], ["region"])
        spec_id = alice.activate_spec(spec.id, timeout=60).id
        job = alice.submit_job(spec_id, {})
        with pytest.raises(Conflict, match=r"key release refused \(measurement\)"):
            alice.wait_job(job.id, timeout=180)
    assert any(a == "key_refused" and "(measurement)" in m for a, m in broker_events(cluster))
    assert any(a == "key_refused" and "(measurement)" in m for a, m in gateway_events(cluster))


def test_e42_a_revoked_key_fails_later_runs_with_the_reason(cluster: Cluster) -> None:
    state = cluster.work_dir / "state" / "broker"
    vault = KeyVault(state, load_key_file(state / "vault.key"))
    vault.revoke("sauce-1-0-0-key", "licence ended")
    with cluster.client("alice") as alice:
        (spec,) = [s for s in alice.specs() if s.model == "secret-sauce@1.0.0"]
        job = alice.submit_job(spec.id, {})
        with pytest.raises(Conflict, match=r"key release refused \(revoked\).*licence ended"):
            alice.wait_job(job.id, timeout=180)
    assert any(a == "key_refused" and "(revoked)" in m for a, m in broker_events(cluster))
    assert any(a == "key_refused" and "(revoked)" in m for a, m in gateway_events(cluster))


def test_f44_a_failing_confidential_package_leaves_no_code_in_the_gateways_logs(
    cluster: Cluster, tmp_path: Path
) -> None:
    folder = package(tmp_path / "v3", "3.0.0")
    (folder / "sauce.py").write_text(
        f"def run(dal, datasets, params):\n    raise ValueError('no luck')  # {SECRET}\n", encoding="utf-8"
    )
    publish(cluster, folder, [measure_runtime()])
    with cluster.client("alice") as alice:
        spec = alice.create_spec("run v3", "secret-sauce@3.0.0", ["site-a/patients"], ["region"])
        spec_id = alice.activate_spec(spec.id, timeout=60).id
        job = alice.submit_job(spec_id, {})
        with pytest.raises(Conflict, match="ValueError"):
            alice.wait_job(job.id, timeout=180)
    assert any(a == "code_failed" for a, _ in gateway_events(cluster))  # its log is held at the gateway
    assert scan(cluster.work_dir / "state" / "site-a", SECRET.encode()) == []
    assert scan(cluster.logs_dir, SECRET.encode()) == []
    # the custodian may release the held log; it then goes to the package's owner, not the researcher
    (kept,) = read_code_logs(cluster.work_dir / "state" / "site-a", job.id)
    assert "no luck" in kept.log and 'File "<package>/sauce.py", line 2' in kept.log
    with cluster.client(cluster.admin_of("hospital-a")) as admin:
        admin.release_log(job.id, gateway="site-a", task_id=kept.task_id, attempt=kept.attempt, log=kept.log)
    with cluster.client("olga") as olga:
        assert [entry.log for entry in olga.job_logs(job.id)] == [kept.log]
    with cluster.client("alice") as alice, pytest.raises(NotFound):
        alice.job_logs(job.id)


def test_e42_the_gateway_shows_its_evidence_to_the_owners_key_broker_only(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Terms that name another server of the project (here the orchestrator) get no evidence and no grant."""
    publish(cluster, package(tmp_path / "v4", "4.0.0"), [measure_runtime()], broker_url=cluster.url)
    with cluster.client("alice") as alice:
        spec = alice.create_spec("run v4", "secret-sauce@4.0.0", ["site-a/patients"], ["region"])
        spec_id = alice.activate_spec(spec.id, timeout=60).id
        job = alice.submit_job(spec_id, {})
        with pytest.raises(Conflict, match="not a key broker of modelco"):
            alice.wait_job(job.id, timeout=180)
    assert any(a == "key_refused" and "not a key broker" in m for a, m in gateway_events(cluster))
