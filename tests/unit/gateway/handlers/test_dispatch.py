"""One dispatch per task: its kind is told by its model, a prepare task is validated without a
sandbox, a refusal is audited with its reason, and `handle_task` never raises."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from custos.audit import AuditTrail, read_events
from custos.core.identity import Identity
from custos.core.wire import Resources, Submitter, TaskAssignment, TaskKind
from custos.data.synthetic import synthetic_patients
from custos.gateway.handlers.dispatch import TaskHandler
from custos.gateway.handlers.task import ModelSource, model_source
from custos.gateway.policies import PolicyKeeper
from custos.gateway.settings import GatewaySettings
from custos.gateway.site import SiteDataset
from custos.policy import AssetPolicy, Grant, SiteAuthorization, load_authorization
from custos.sandbox.runner import SandboxRequest, SandboxResult
from custos.testing.sites import parquet_site

GATEWAY = "site-a"
SITE_ORG = "hospital-a"
DATASET = "patients"
PARAMS: dict[str, Any] = {"columns": ["age"], "statistics": ["count"]}

AUTHORIZATION = """
format_version: 1
permissions:
  lead_researcher:
    submit_job: ["not n:mallory", any]
  org_admin:
    submit_job: o:site
    activate_spec: o:site
"""
POLICY = AssetPolicy(
    dataset=DATASET,
    grants=[Grant(orgs=["university", SITE_ORG], users=["mallory"], models=["stats"], columns=["age"])],
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SiteDataset]:
    """One dataset whose policy grants the university and, by name, mallory."""
    return parquet_site(tmp_path_factory.mktemp("site"), DATASET, synthetic_patients(200, site=0, seed=3))


@pytest.fixture(scope="module")
def authorization() -> SiteAuthorization:
    return load_authorization(AUTHORIZATION, "authorization.yaml")


def task(
    name: str,
    org: str = "university",
    role: str = "lead_researcher",
    kind: TaskKind = TaskKind.COMPUTE,
    model: str = "stats@1.0.0",
) -> TaskAssignment:
    return TaskAssignment(
        task_id="task_1",
        attempt=1,
        kind=kind,
        spec_id="spec_1",
        job_id="job_1" if kind is TaskKind.COMPUTE else None,
        round=0,
        model=model,
        dataset=DATASET,
        columns=["age"],
        params=PARAMS if kind is TaskKind.COMPUTE else {},
        round_input={},
        submitter=Submitter(name=name, org=org, role=role),
        resources=Resources(),
    )


def _no_certificate_expected(cert: x509.Certificate) -> Identity:
    raise AssertionError("no policy is offered in these tests")


class NoSandbox:
    """A runner that fails the test if the gateway ever starts a sandbox."""

    def __init__(self) -> None:
        self.requests: list[SandboxRequest] = []

    def run(self, request: SandboxRequest) -> SandboxResult:
        self.requests.append(request)
        raise AssertionError("a refused task must not start a sandbox")


class FixedPolicies(PolicyKeeper):
    """The keeper, holding one verified policy (signature checks have their own tests)."""

    def current(self, dataset: str) -> AssetPolicy | None:
        return POLICY if dataset == DATASET else None


class BrokenPolicies(PolicyKeeper):
    """A keeper that fails as no Custos error would."""

    def current(self, dataset: str) -> AssetPolicy | None:
        raise RuntimeError("the disk went away")


def handler_with(
    site: dict[str, SiteDataset],
    authorization: SiteAuthorization,
    tmp_path: Path,
    runner: NoSandbox,
    keeper: type[PolicyKeeper] = PolicyKeeper,
) -> TaskHandler:
    return TaskHandler(
        GATEWAY,
        site,
        runner,
        GatewaySettings(state_dir=tmp_path, warm_spares=0),
        AuditTrail(tmp_path / "audit.log"),
        org=SITE_ORG,
        authorization=authorization,
        policies=keeper(GATEWAY, SITE_ORG, tmp_path, check_certificate=_no_certificate_expected),
    )


@pytest.fixture
def runner() -> NoSandbox:
    return NoSandbox()


@pytest.fixture
def handler(
    site: dict[str, SiteDataset], authorization: SiteAuthorization, tmp_path: Path, runner: NoSandbox
) -> Iterator[TaskHandler]:
    handler = handler_with(site, authorization, tmp_path, runner, FixedPolicies)
    yield handler
    handler.close()


def test_the_kind_of_a_task_is_told_by_its_model() -> None:
    assert model_source(task("alice")) is ModelSource.BUILTIN
    assert model_source(task("alice", model="custom@1.0.0")) is ModelSource.CUSTOM
    assert model_source(task("alice", model="custom@9.9.9")) is ModelSource.CUSTOM  # any version of it
    assert model_source(task("alice", model="cohort-summary@1.0.0")) is ModelSource.PACKAGE
    assert model_source(task("alice", model="stats@9.9.9")) is ModelSource.PACKAGE  # not shipped
    # The runner of published packages ships with Custos; the orchestrator never names it itself.
    assert model_source(task("alice", model="package@1.0.0")) is ModelSource.BUILTIN


def test_a_refused_task_fails_with_the_reason_audited_and_runs_nothing(
    site: dict[str, SiteDataset], authorization: SiteAuthorization, tmp_path: Path
) -> None:
    runner = NoSandbox()
    settings = GatewaySettings(state_dir=tmp_path, warm_spares=0)
    handler = TaskHandler(
        GATEWAY,
        site,
        runner,
        settings,
        AuditTrail(tmp_path / "audit.log"),
        org=SITE_ORG,
        authorization=authorization,
        policies=PolicyKeeper(GATEWAY, SITE_ORG, tmp_path, check_certificate=_no_certificate_expected),
    )
    try:
        outcome = handler.handle_task(task("Mallory"))
    finally:
        handler.close()
    assert outcome.status == "failed"
    assert outcome.result is None
    assert outcome.error is not None
    assert outcome.error.startswith("site site-a refuses Mallory of university: blocked by 'not n:mallory'")
    assert runner.requests == []
    events = read_events(tmp_path / "audit.log")
    assert [e.action for e in events] == ["task_received", "task_failed"]
    assert events[1].user == "Mallory"
    assert events[1].message == outcome.error
    assert events[1].peer == events[0].id


def test_a_prepare_task_is_validated_without_a_sandbox(
    handler: TaskHandler, runner: NoSandbox, tmp_path: Path
) -> None:
    outcome = handler.handle_task(task("carol", org=SITE_ORG, role="org_admin", kind=TaskKind.PREPARE))
    assert (outcome.status, outcome.result, outcome.error) == ("done", {"validated": True}, None)
    assert runner.requests == []
    assert [e.action for e in read_events(tmp_path / "audit.log")] == ["task_received", "task_done"]


def test_a_site_without_a_model_cache_refuses_published_packages(
    handler: TaskHandler, runner: NoSandbox, tmp_path: Path
) -> None:
    outcome = handler.handle_task(task("alice", model="cohort-summary@1.0.0"))
    assert (outcome.status, outcome.error) == ("failed", "site site-a runs no published packages")
    assert runner.requests == []
    assert [e.action for e in read_events(tmp_path / "audit.log")] == ["task_received", "task_failed"]


def test_an_unexpected_error_fails_the_task_and_never_raises(
    site: dict[str, SiteDataset], authorization: SiteAuthorization, tmp_path: Path
) -> None:
    runner = NoSandbox()
    handler = handler_with(site, authorization, tmp_path, runner, BrokenPolicies)
    try:
        outcome = handler.handle_task(task("alice"))
    finally:
        handler.close()
    # The reason names the kind of failure only: its message may hold what the researcher may not see.
    assert (outcome.status, outcome.error) == ("failed", "internal error at the gateway (RuntimeError)")
    assert runner.requests == []
    events = read_events(tmp_path / "audit.log")
    assert [e.action for e in events] == ["task_received", "task_failed"]
    assert events[1].message == outcome.error
