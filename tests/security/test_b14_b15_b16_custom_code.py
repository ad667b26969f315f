"""B14, B15, B16 (and B9, B10, B17 for custom code): reviewed custom code stays contained.

- B16: the gateway runs custom code only with a custodian's signed approval of exactly that code for
  that dataset, author and parameters; it computes the digest itself, so changed, unapproved, denied
  or re-targeted code is refused even when the orchestrator hands it out (forged tasks, in process).
- B9, B10, B17: approved code that reads files, opens sockets or prints rows is still confined by the
  sandbox: review is not isolation (real processes).
- B15: an error on real data leaves the gateway as its category, class and line of the submitted
  code; the message and the full log stay at the gateway (`test_b15_failure_text_is_output.py`).
- B14: outputs are of their declared type and within their caps; a table over its row cap, a file
  over its size cap and a file whose bytes are not of its declared type are refused.
"""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from cryptography import x509
from sqlalchemy import create_engine, text

from custos.audit import AuditTrail
from custos.computations.custom.code_package import build_code_package
from custos.computations.custom.disclosure import OutputCaps, check_output
from custos.core.clock import utcnow
from custos.core.digest import json_digest
from custos.core.errors import Conflict, PolicyDenied
from custos.core.identity import Identity
from custos.core.wire import (
    CodeApproval,
    CustomCodeTask,
    Resources,
    SignedCodeApproval,
    Submitter,
    TaskAssignment,
    TaskKind,
    code_approval_message,
    code_digest,
    package_digest,
)
from custos.data.catalog import DatasetEntry
from custos.data.file_source import FileSource
from custos.data.profile import profile
from custos.data.synthetic import REGIONS, synthetic_patients, write_dataset
from custos.gateway.code_logs import read_code_logs
from custos.gateway.handlers import TaskHandler, check_custom_task
from custos.gateway.policies import PolicyKeeper
from custos.gateway.settings import GatewaySettings
from custos.gateway.site import SiteDataset
from custos.gateway.trust import GatewayTrust
from custos.local.cluster import Cluster
from custos.pki.kit import Kit, load_kit
from custos.pki.project import ProjectSpec
from custos.pki.provision import provision
from custos.pki.verify import sign as raw_sign
from custos.policy import AssetPolicy, Grant, SiteAuthorization, load_authorization
from custos.policy.code_approval import sign_code_approval
from custos.policy.signing import sign_policy
from custos.registry import PackageRefused
from custos.registry.archive import entry_info
from custos.sandbox.runner import SandboxRequest, SandboxResult

# The database is not this file's subject: its tests run on the SQLite `cluster` only.
pytestmark = pytest.mark.one_database

GATEWAY, SITE_ORG, DATASET = "site-a", "hospital-a", "patients"
REF = f"{GATEWAY}/{DATASET}"
PARAMS: dict[str, Any] = {"column": "age"}
SOURCE = 'def count(dal, datasets, params):\n    return {"n": dal.read(datasets[0], ["age"]).num_rows}\n'
SWAPPED = SOURCE.replace('return {"n"', 'print(dal.read(datasets[0], ["age"]))\n    return {"n"')
REQUEST_ID = "code_0123456789abcdef"
PEOPLE = [
    ("site-a", "gateway", "hospital-a", None),
    ("admin-a", "user", "hospital-a", "org_admin"),
    ("admin-b", "user", "hospital-b", "org_admin"),
    ("alice", "user", "university", "lead_researcher"),
]
AUTHORIZATION = """
format_version: 1
permissions:
  lead_researcher:
    submit_job: any
    custom_code: ["not n:mallory", any]
"""
POLICY = AssetPolicy(
    dataset=DATASET,
    grants=[Grant(orgs=["university"], models=["custom"], columns=["age"])],
    custom_code="review",
)


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kit]:
    out = tmp_path_factory.mktemp("code") / "kits"
    participants = [{"name": n, "type": t, "org": o, **({"role": r} if r else {})} for n, t, o, r in PEOPLE]
    provision(ProjectSpec.model_validate({"name": "code", "participants": participants}), out)
    return {p.name: load_kit(p) for p in out.iterdir() if (p / "config.json").exists()}


@pytest.fixture
def trust(kits: dict[str, Kit], tmp_path: Path) -> Callable[[x509.Certificate], Identity]:
    return GatewayTrust(kits["site-a"].root_certificate, tmp_path, utcnow).check_certificate


@pytest.fixture(scope="module")
def authorization() -> SiteAuthorization:
    return load_authorization(AUTHORIZATION, "authorization.yaml")


def approval(**changes: Any) -> CodeApproval:
    fields: dict[str, Any] = {
        "request_id": REQUEST_ID,
        "digest": code_digest(SOURCE),
        "function": "count",
        "params_digest": json_digest(PARAMS),
        "output": "json",
        "datasets": [REF],
        "author": "alice",
        "author_org": "university",
        "approved_at": utcnow(),
    }
    return CodeApproval(**(fields | changes))


def signed_by(kit: Kit, what: CodeApproval | None = None) -> SignedCodeApproval:
    return sign_code_approval(what or approval(), key=kit.private_key, certificate=kit.certificate)


def task(
    approvals: list[SignedCodeApproval],
    *,
    source: str = SOURCE,
    params: dict[str, Any] | None = None,
    name: str = "alice",
) -> TaskAssignment:
    code = CustomCodeTask(
        request_id=REQUEST_ID,
        function="count",
        source=source,
        digest=code_digest(SOURCE),  # what the orchestrator claims; the gateway recomputes it
        output="json",
        approvals=approvals,
    )
    return TaskAssignment(
        task_id="task_1",
        attempt=1,
        kind=TaskKind.COMPUTE,
        spec_id="spec_1",
        job_id="job_1",
        round=0,
        model="custom@1.0.0",
        dataset=DATASET,
        columns=["age"],
        params=PARAMS if params is None else params,
        round_input={"code": code.model_dump(mode="json")},
        submitter=Submitter(name=name, org="university", role="lead_researcher"),
        resources=Resources(),
    )


def check(
    assignment: TaskAssignment,
    authorization: SiteAuthorization,
    trust: Callable[[x509.Certificate], Identity],
    policy: AssetPolicy = POLICY,
) -> list[str]:
    _, columns, _ = check_custom_task(
        assignment, GATEWAY, site_org=SITE_ORG, authorization=authorization, policy=policy,
        check_certificate=trust,
    )  # fmt: skip
    return columns


def test_b16_approved_code_passes_the_gateways_check(
    kits: dict[str, Kit], authorization: SiteAuthorization, trust: Any
) -> None:
    assert check(task([signed_by(kits["admin-a"])]), authorization, trust) == ["age"]


def test_b16_code_changed_after_approval_is_refused_at_the_gateway(
    kits: dict[str, Kit], authorization: SiteAuthorization, trust: Any
) -> None:
    with pytest.raises(PolicyDenied, match="changed code needs a new review"):
        check(task([signed_by(kits["admin-a"])], source=SWAPPED), authorization, trust)


def test_b16_an_approval_edited_to_the_new_digest_no_longer_verifies(
    kits: dict[str, Kit], authorization: SiteAuthorization, trust: Any
) -> None:
    original = signed_by(kits["admin-a"])
    edited = original.model_copy(update={"approval": approval(digest=code_digest(SWAPPED))})
    with pytest.raises(PolicyDenied, match="does not match its signature: it was changed after admin-a"):
        check(task([edited], source=SWAPPED), authorization, trust)


@pytest.mark.parametrize(
    ("signer", "changes", "params", "reason"),
    [
        (None, {}, None, "no custodian of hospital-a approved code request"),  # unapproved or denied
        ("admin-b", {}, None, "no custodian of hospital-a approved code request"),  # another org's
        ("admin-a", {"datasets": ["site-a/other"]}, None, "does not name site-a/patients"),
        ("admin-a", {"author": "mallory"}, None, "is for mallory of university"),
        ("admin-a", {}, {"column": "bmi"}, "is for other parameters"),
        ("admin-a", {"request_id": "code_ffffffffffffffff"}, None, "is for code request code_ffff"),
    ],
)
def test_b16_code_without_a_matching_approval_is_refused_at_the_gateway(
    kits: dict[str, Kit],
    authorization: SiteAuthorization,
    trust: Any,
    signer: str | None,
    changes: dict[str, Any],
    params: dict[str, Any] | None,
    reason: str,
) -> None:
    approvals = [] if signer is None else [signed_by(kits[signer], approval(**changes))]
    with pytest.raises(PolicyDenied, match=re.escape(reason)):
        check(task(approvals, params=params), authorization, trust)


def test_b16_an_approval_signed_by_a_researcher_is_refused(
    kits: dict[str, Kit], authorization: SiteAuthorization, trust: Any
) -> None:
    alice = kits["alice"]
    what = approval()
    forged = SignedCodeApproval(
        approval=what,
        signer_certificate_pem=(alice.path / "cert.pem").read_text(),
        signature=base64.b64encode(raw_sign(alice.private_key, code_approval_message(what))).decode(),
    )
    with pytest.raises(PolicyDenied, match="signed by alice, a lead_researcher, not an org_admin"):
        check(task([forged]), authorization, trust)


def test_b16_the_site_must_give_the_custom_code_right_and_the_policy_must_accept_custom_code(
    kits: dict[str, Kit], authorization: SiteAuthorization, trust: Any
) -> None:
    approved = [signed_by(kits["admin-a"])]
    with pytest.raises(PolicyDenied, match="blocked by 'not n:mallory' for lead_researcher custom_code"):
        check(task(approved, name="mallory"), authorization, trust)
    never = POLICY.model_copy(update={"custom_code": "never"})
    with pytest.raises(PolicyDenied, match=r"does not accept custom code \(custom_code: never\)"):
        check(task(approved), authorization, trust, never)


class NoSandbox:
    def __init__(self) -> None:
        self.requests: list[SandboxRequest] = []

    def run(self, request: SandboxRequest) -> SandboxResult:
        self.requests.append(request)
        raise AssertionError("refused code must not start a sandbox")


def test_b16_a_forged_task_through_the_handler_fails_and_runs_nothing(
    kits: dict[str, Kit], authorization: SiteAuthorization, trust: Any, tmp_path: Path
) -> None:
    path = tmp_path / f"{DATASET}.parquet"
    write_dataset(synthetic_patients(50, site=0, seed=3), path)
    source = FileSource(DATASET, path, "parquet")
    schema, rows = profile(source)
    entry = DatasetEntry(DATASET, path, "parquet", "patients", path.with_suffix(".policy.json"))
    site = {DATASET: SiteDataset(entry, source, schema, rows, None, "")}
    policies = PolicyKeeper(GATEWAY, SITE_ORG, tmp_path, check_certificate=trust)
    admin = kits["admin-a"]
    text = "dataset: patients\ngrants:\n  - orgs: [university]\n    models: [custom]\n    columns: [age]\n"
    policies.offer(
        DATASET,
        sign_policy(
            text + "custom_code: review\n", REF, key=admin.private_key, certificate=admin.certificate,
            now=utcnow() - timedelta(seconds=1),
        ),
    )  # fmt: skip
    runner = NoSandbox()
    handler = TaskHandler(
        GATEWAY, site, runner, GatewaySettings(state_dir=tmp_path, warm_spares=0),
        AuditTrail(tmp_path / "audit.log"), org=SITE_ORG, authorization=authorization,
        policies=policies, check_certificate=trust,
    )  # fmt: skip
    try:
        outcome = handler.handle_task(task([signed_by(admin)], source=SWAPPED))
    finally:
        handler.close()
    assert outcome.status == "failed" and outcome.error is not None
    assert "changed code needs a new review" in outcome.error
    assert runner.requests == []


# --- B14, B15: outputs and errors, checked by the gateway ----------------------------------------


def test_b14_outputs_over_their_caps_or_of_another_type_are_refused() -> None:
    caps = OutputCaps(rows=3, cells=6, json_bytes=20)
    check_output({"type": "table", "columns": ["a", "b"], "rows": [[1, 2]] * 3}, "table", caps)
    with pytest.raises(PolicyDenied, match="a table of 4 rows is over the cap of 3 rows"):
        check_output({"type": "table", "columns": ["a"], "rows": [[1]] * 4}, "table", caps)
    with pytest.raises(PolicyDenied, match="9 cells are over the cap of 6"):
        check_output({"type": "table", "columns": ["a", "b", "c"], "rows": [[1, 2, 3]] * 3}, "table", caps)
    with pytest.raises(PolicyDenied, match="bytes of JSON are over the cap of 20 bytes"):
        check_output({"type": "json", "value": {"rows": list(range(20))}}, "json", caps)
    with pytest.raises(PolicyDenied, match="declared a json output, not table"):
        check_output({"type": "table", "columns": [], "rows": []}, "json", caps)


# --- B9, B10, B14, B15, B17 through real processes -----------------------------------------------

CODE_DATASET = "site-a/patients_code"


def escape_attempts(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    import socket
    import sys

    outcomes = {}
    for path in params["paths"]:
        try:
            with open(path, "rb") as handle:
                handle.read(1)
            outcomes[path] = "read"
        except OSError as exc:
            outcomes[path] = type(exc).__name__
    try:
        socket.create_connection((params["host"], params["port"]), timeout=2).close()
        outcomes["socket"] = "connected"
    except OSError as exc:
        outcomes["socket"] = type(exc).__name__
    rows = dal.read(datasets[0], ["patient_id", "age"]).to_pandas().head(5).to_string()
    print(rows)
    print(rows, file=sys.stderr)
    return {"outcomes": outcomes}


def error_with_data(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    frame = dal.read(datasets[0], ["patient_id", "bmi", "region"]).to_pandas()
    first = frame.iloc[0]
    kind = type(f"Region_{first['region']}", (ValueError,), {})
    raise kind(f"bad row {first['patient_id']!r} with bmi {first['bmi']} in region {first['region']}")


def too_many_rows(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    return dal.read(datasets[0], ["age"]).to_pandas().head(1500)


def kept_log(cluster: Cluster, job_id: str) -> str:
    """The full text of the job's failure at site-a, as the gateway keeps it for its custodian."""
    (log,) = read_code_logs(cluster.work_dir / "state" / "site-a", job_id)
    return log.log


def run_approved(cluster: Cluster, fn: Any, output: str, params: dict[str, Any] | None = None) -> str:
    """Submit `fn` as alice, approve it as site-a's custodian, run it; return the job id."""
    with cluster.client("alice") as alice, cluster.client("admin@hospital-a") as admin:
        request = alice.submit(fn, [CODE_DATASET], params or {}, output=output)
        admin.approve_code(request.id)
        return alice.run_code(request.id).id


def test_b9_b10_b17_approved_code_cannot_read_files_or_connect_and_its_prints_stay_put(
    cluster: Cluster, site_tables: list[pa.Table]
) -> None:
    paths = [
        "/etc/shadow",
        "/proc/1/environ",
        str(cluster.kit_dir("site-a") / "key.pem"),
        str(cluster.site_dir("site-a") / "patients_code.parquet"),
    ]
    params = {"paths": paths, "host": cluster.host, "port": cluster.port}
    job_id = run_approved(cluster, escape_attempts, "json", params)
    with cluster.client("alice") as alice, cluster.client("admin@hospital-a") as admin:
        assert alice.wait_job(job_id, timeout=120).state == "awaiting_release"
        held = next(r for r in admin.releases() if r.job_id == job_id)
        admin.approve_release(held.id, "nothing sensitive")
        result = alice.code_result(job_id)[CODE_DATASET]
        seen = json.dumps(alice.job(job_id).model_dump(mode="json")) + json.dumps(result)
    outcomes = result["outcomes"]
    assert set(outcomes) == {*paths, "socket"}
    assert all(value not in ("read", "connected") for value in outcomes.values()), outcomes
    printed = site_tables[0].column("patient_id").to_pylist()[:5]
    assert not any(patient in seen for patient in printed)  # stdout and stderr never left the gateway


def test_b15_an_error_on_real_data_shows_its_line_and_the_full_log_stays_at_the_gateway(
    cluster: Cluster, site_tables: list[pa.Table]
) -> None:
    job_id = run_approved(cluster, error_with_data, "json")
    with cluster.client("alice") as alice:
        with pytest.raises(
            Conflict, match=r"code error: Exception at <custom:error_with_data> line 5: raise kind\("
        ):
            alice.wait_job(job_id, timeout=120)
        job = alice.job(job_id)
    error = next(t.error for t in job.tasks if t.error)
    assert error is not None and job.reason is not None
    assert not re.search(r"a-\d|Region_\w", error)  # a class named at run time is Exception
    assert not any(f" {region} " in error or f" {region} " in job.reason for region in REGIONS)
    logs = cluster.work_dir / "state" / "site-a" / "code-logs"
    kept = "".join(p.read_text() for p in (logs / job_id).glob("*.json"))  # kept by job
    assert re.search(r"bad row 'a-\d+' with bmi \d", kept)  # the custodian can read what happened


def test_b14_an_output_over_its_row_cap_is_refused(cluster: Cluster) -> None:
    job_id = run_approved(cluster, too_many_rows, "table")
    with (
        cluster.client("alice") as alice,
        pytest.raises(Conflict, match="policy refusal: PolicyDenied: the output is refused"),
    ):
        alice.wait_job(job_id, timeout=120)
    assert "a table of 1500 rows is over the cap of 1000 rows" in kept_log(cluster, job_id)


def oversize_png(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    return b"\x89PNG\r\n\x1a\n" + bytes(2 * 1024 * 1024)


def png_as_pdf(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    ages = dal.read(datasets[0], ["age"]).column("age").to_pylist()
    return b"\x89PNG\r\n\x1a\n" + bytes(ages[:50])  # the rows, disguised as a declared PDF


def test_b14_a_file_over_its_size_cap_or_of_a_disguised_type_is_refused_at_the_gateway(
    cluster: Cluster,
) -> None:
    oversize = run_approved(cluster, oversize_png, "file:png")
    disguised = run_approved(cluster, png_as_pdf, "file:pdf")
    with cluster.client("alice") as alice:
        for job_id in (oversize, disguised):
            with pytest.raises(Conflict, match="policy refusal: PolicyDenied: the output is refused"):
                alice.wait_job(job_id, timeout=120)
        assert "a file of 2097160 bytes is over the cap of 1048576 bytes" in kept_log(cluster, oversize)
        assert "the code declared a pdf file, but it does not start with %PDF-" in kept_log(
            cluster, disguised
        )
        with cluster.client("admin@hospital-a") as admin:
            held = {r.job_id for r in admin.releases()}
        for job_id in (oversize, disguised):
            assert alice.job(job_id).state == "failed"
            assert job_id not in held  # nothing reached release review


# --- B16 for packages: the approval binds the archive's digest -----------------------------------

PACKAGE_MANIFEST = 'name = "count"\nversion = "1.0.0"\nentrypoint = "count.main:run"\n\n'
PACKAGE_MANIFEST += '[parameters.column]\ntype = "string"\n\n[outputs.n]\nkind = "json"\nmax_bytes = 1000\n'
PACKAGE_MAIN = SOURCE.replace("def count(", "def run(")
ENTRYPOINT = "count.main:run"


def build_package(folder: Path, main: str = PACKAGE_MAIN) -> bytes:
    (folder / "count").mkdir(parents=True)
    (folder / "custos-model.toml").write_text(PACKAGE_MANIFEST, encoding="utf-8")
    (folder / "count" / "main.py").write_text(main, encoding="utf-8")
    return build_code_package(folder).data


def package_task(approvals: list[SignedCodeApproval], archive: bytes, claimed: bytes) -> TaskAssignment:
    code = CustomCodeTask(
        request_id=REQUEST_ID,
        function=ENTRYPOINT,
        package_b64=base64.b64encode(archive).decode(),
        digest=package_digest(claimed),  # what the orchestrator claims; the gateway recomputes it
        output="json",
        approvals=approvals,
    )
    return task([]).model_copy(update={"round_input": {"code": code.model_dump(mode="json")}})


def package_approval(kit: Kit, archive: bytes) -> SignedCodeApproval:
    return signed_by(kit, approval(digest=package_digest(archive), function=ENTRYPOINT))


def test_b16_an_approved_package_passes_and_a_changed_one_is_refused_at_the_gateway(
    kits: dict[str, Kit], authorization: SiteAuthorization, trust: Any, tmp_path: Path
) -> None:
    approved = build_package(tmp_path / "approved")
    changed = build_package(tmp_path / "changed", PACKAGE_MAIN.replace('["age"]', '["age", "bmi"]'))
    signed = package_approval(kits["admin-a"], approved)
    assert check(package_task([signed], approved, approved), authorization, trust) == ["age"]
    with pytest.raises(PolicyDenied, match="changed code needs a new review"):
        check(package_task([signed], changed, approved), authorization, trust)


def test_b16_a_hostile_archive_is_refused_before_it_is_unpacked_even_when_approved(
    kits: dict[str, Kit], authorization: SiteAuthorization, trust: Any, tmp_path: Path
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in [
            ("custos-model.toml", PACKAGE_MANIFEST),
            ("count/main.py", PACKAGE_MAIN),
            ("../evil.py", "x"),
        ]:
            zf.writestr(entry_info(name), data)
    hostile = buffer.getvalue()
    signed = package_approval(kits["admin-a"], hostile)  # a custodian approved it: still refused
    with pytest.raises(PackageRefused, match=r"code package refused \(unsafe_path\).*climbs out"):
        check(package_task([signed], hostile, hostile), authorization, trust)
    assert not (tmp_path.parent / "evil.py").exists()


def test_b16_a_package_changed_in_the_orchestrators_database_is_refused(
    cluster: Cluster, tmp_path: Path
) -> None:
    with cluster.client("alice") as alice, cluster.client("admin@hospital-a") as admin:
        folder = tmp_path / "package"
        build_package(folder)
        request = alice.submit(folder, [CODE_DATASET], {"column": "age"})
        admin.approve_code(request.id)
        changed = build_package(tmp_path / "changed", PACKAGE_MAIN.replace('["age"]', '["age", "bmi"]'))
        engine = create_engine(
            cluster.database_url
            or f"sqlite:///{cluster.work_dir / 'state' / 'orchestrator' / 'orchestrator.db'}"
        )
        try:
            with engine.begin() as conn:
                conn.execute(
                    text("UPDATE code_requests SET archive = :a WHERE id = :id"),
                    {"a": changed, "id": request.id},
                )
            with pytest.raises(Conflict, match="not the digest its custodians approved"):
                alice.run_code(request.id)
        finally:
            engine.dispose()
