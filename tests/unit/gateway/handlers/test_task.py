"""The checks every task meets at the gateway: its site authorization, before and whatever its asset
policies grant, then the policy."""

from __future__ import annotations

from typing import Any

import pytest

from custos.core.errors import PolicyDenied
from custos.core.wire import Resources, Submitter, TaskAssignment, TaskKind
from custos.data.synthetic import synthetic_patients
from custos.gateway.handlers.task import TASK_RIGHTS, check_task
from custos.gateway.site import SiteDataset
from custos.policy import (
    AssetPolicy,
    Grant,
    Right,
    SiteAuthorization,
    default_authorization,
    load_authorization,
)
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


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SiteDataset]:
    """One dataset whose policy grants the university and, by name, mallory."""
    return parquet_site(tmp_path_factory.mktemp("site"), DATASET, synthetic_patients(200, site=0, seed=3))


GRANT = Grant(orgs=["university"], users=["mallory"], models=["stats"], columns=["age"])
POLICY = AssetPolicy(dataset=DATASET, grants=[GRANT])


@pytest.fixture(scope="module")
def authorization() -> SiteAuthorization:
    return load_authorization(AUTHORIZATION, "authorization.yaml")


def task(
    name: str, org: str = "university", role: str = "lead_researcher", kind: TaskKind = TaskKind.COMPUTE
) -> TaskAssignment:
    return TaskAssignment(
        task_id="task_1",
        attempt=1,
        kind=kind,
        spec_id="spec_1",
        job_id="job_1" if kind is TaskKind.COMPUTE else None,
        round=0,
        model="stats@1.0.0",
        dataset=DATASET,
        columns=["age"],
        params=PARAMS if kind is TaskKind.COMPUTE else {},
        round_input={},
        submitter=Submitter(name=name, org=org, role=role),
        resources=Resources(),
    )


def check(
    assignment: TaskAssignment, site: dict[str, SiteDataset], authorization: SiteAuthorization
) -> list[str]:
    _, columns = check_task(
        assignment, site[DATASET], GATEWAY, site_org=SITE_ORG, authorization=authorization, policy=POLICY
    )
    return columns


def test_every_kind_of_task_needs_a_right() -> None:
    assert set(TASK_RIGHTS) == set(TaskKind)
    assert TASK_RIGHTS[TaskKind.COMPUTE] is Right.SUBMIT_JOB
    assert TASK_RIGHTS[TaskKind.PREPARE] is Right.ACTIVATE_SPEC


def test_a_blocked_submitter_is_refused_although_the_policy_grants_them(
    site: dict[str, SiteDataset], authorization: SiteAuthorization
) -> None:
    assert check(task("alice"), site, authorization) == ["age"]  # the same task, allowed for another
    with pytest.raises(PolicyDenied) as refused:
        check(task("mallory"), site, authorization)
    assert refused.value.message == (
        "site site-a refuses mallory of university: blocked by 'not n:mallory' for lead_researcher "
        "submit_job: submitter name is mallory"
    )


def test_the_authorization_is_checked_before_the_asset_policy(
    site: dict[str, SiteDataset], authorization: SiteAuthorization
) -> None:
    # eve's org has no grant either, but the refusal names the authorization rule, which runs first.
    with pytest.raises(
        PolicyDenied, match=r"site site-a refuses eve of rival: no rule gives member_researcher"
    ):
        check(task("eve", org="rival", role="member_researcher"), site, authorization)
    # A submitter the authorization allows still meets the asset policy.
    with pytest.raises(PolicyDenied, match="the policy for site-a/patients grants nothing to user bob"):
        check(task("bob", org="rival"), site, authorization)


def test_a_prepare_task_needs_activate_spec(
    site: dict[str, SiteDataset], authorization: SiteAuthorization
) -> None:
    with pytest.raises(PolicyDenied, match="no rule gives lead_researcher the right activate_spec"):
        check(task("alice", kind=TaskKind.PREPARE), site, authorization)
    # org_admin of the site's own org may activate; the asset policy then decides (it grants no one here).
    with pytest.raises(PolicyDenied, match="the policy for site-a/patients grants nothing to user carol"):
        check(task("carol", org=SITE_ORG, role="org_admin", kind=TaskKind.PREPARE), site, authorization)
    with pytest.raises(
        PolicyDenied,
        match=r"refuses dan of university: no condition for org_admin activate_spec \('o:site'\)",
    ):
        check(task("dan", org="university", role="org_admin", kind=TaskKind.PREPARE), site, authorization)


def test_a_submitter_without_a_user_role_is_refused(
    site: dict[str, SiteDataset], authorization: SiteAuthorization
) -> None:
    for role in ("gateway", "orchestrator", "root"):
        with pytest.raises(PolicyDenied, match=f"role '{role}' is not a user role"):
            check(task("mallory", role=role), site, default_authorization())


def test_the_defaults_refuse_a_member_researcher(site: dict[str, SiteDataset]) -> None:
    assert check(task("alice"), site, default_authorization()) == ["age"]
    with pytest.raises(PolicyDenied, match="denied by 'none' for member_researcher submit_job"):
        check(task("alice", role="member_researcher"), site, default_authorization())
