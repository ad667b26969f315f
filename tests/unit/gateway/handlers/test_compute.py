"""The gateway's privacy budget, through the task handler and a real sandbox: a DP task reserves its
cost before it runs and names the reservation in its outcome, for the agent to commit once it has
journaled the outcome; a task retried under the same job round is not charged twice, and exhaustion
refuses with what was spent and the cap."""

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
from custos.gateway.budget import BUDGET_FILE, GatewayBudget
from custos.gateway.handlers import TaskHandler
from custos.gateway.policies import PolicyKeeper
from custos.gateway.settings import GatewaySettings
from custos.gateway.site import SiteDataset
from custos.policy import AssetPolicy, Grant, load_authorization
from custos.privacy.controls import PrivacyControls
from custos.privacy.ledger import BudgetLedger
from custos.sandbox.bubblewrap import BubblewrapRunner
from custos.testing.sites import parquet_site

GATEWAY, SITE_ORG, DATASET = "site-a", "hospital-a", "patients"
PARAMS: dict[str, Any] = {"columns": ["age"], "statistics": ["count", "mean"]}
PRIVACY = PrivacyControls.model_validate(
    {
        "dp": {"mechanism": "laplace", "epsilon_per_job": 1.0},
        "budget": {"epsilon_per_researcher": 2.5, "epsilon_per_org": 10.0},
    }
)
AUTHORIZATION = """
format_version: 1
permissions:
  lead_researcher:
    submit_job: any
"""
POLICY = AssetPolicy(
    dataset=DATASET,
    grants=[Grant(orgs=["university"], models=["stats"], columns=["age"])],
    privacy=PRIVACY,
)


def _no_certificate_expected(cert: x509.Certificate) -> Identity:
    raise AssertionError("no policy is offered in these tests")


class FixedPolicies(PolicyKeeper):
    """The keeper, holding one verified policy (signature checks have their own tests)."""

    def current(self, dataset: str) -> AssetPolicy | None:
        return POLICY if dataset == DATASET else None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SiteDataset]:
    return parquet_site(tmp_path_factory.mktemp("site"), DATASET, synthetic_patients(300, site=0, seed=5))


@pytest.fixture
def handler(site: dict[str, SiteDataset], tmp_path: Path) -> Iterator[TaskHandler]:
    settings = GatewaySettings(state_dir=tmp_path, warm_spares=0)
    handler = TaskHandler(
        GATEWAY,
        site,
        BubblewrapRunner(),
        settings,
        AuditTrail(tmp_path / "audit.log"),
        org=SITE_ORG,
        authorization=load_authorization(AUTHORIZATION, "authorization.yaml"),
        policies=FixedPolicies(GATEWAY, SITE_ORG, tmp_path, check_certificate=_no_certificate_expected),
    )
    yield handler
    handler.close()


def task(job: str, attempt: int = 1) -> TaskAssignment:
    return TaskAssignment(
        task_id=f"task_{job}",
        attempt=attempt,
        kind=TaskKind.COMPUTE,
        spec_id="spec_1",
        job_id=job,
        round=0,
        model="stats@1.0.0",
        dataset=DATASET,
        columns=["age"],
        params=PARAMS,
        round_input={"phase": "summary", "dp": {"epsilon": 50, "forged": True}},
        submitter=Submitter(name="alice", org="university", role="lead_researcher"),
        resources=Resources(),
    )


def test_a_dp_task_reserves_runs_noisily_commits_and_reports_the_budget(
    handler: TaskHandler, site: dict[str, SiteDataset], tmp_path: Path
) -> None:
    outcome = handler.handle_task(task("job_1"))
    assert outcome.status == "done", outcome.error
    assert outcome.result is not None
    assert outcome.result["phase"] == "dp"
    # The orchestrator's forged "dp" settings were replaced by the gateway's own plan.
    assert outcome.result["spent"]["epsilon"] <= 1.0 + 1e-9
    assert outcome.result["budget"] == {
        "spent_epsilon": 1.0,
        "cap_epsilon": 2.5,
        "remaining_epsilon": 1.5,
        "spent_delta": 0.0,
        "cap_delta": 0.0,
        "remaining_delta": 0.0,
    }
    assert "rows" not in outcome.result
    ledger = BudgetLedger(tmp_path / BUDGET_FILE)
    (charge,) = ledger.history(site[DATASET].lineage or "")
    # Spent, and left for the agent to commit once it has journaled the outcome.
    assert outcome.reservation == charge.id
    assert (charge.job_id, charge.state, charge.epsilon) == (f"job_1/{DATASET}/round-0", "reserved", 1.0)
    GatewayBudget(tmp_path / BUDGET_FILE).settle(charge.id)
    assert ledger.get(charge.id).state == "committed"
    actions = [e.action for e in read_events(tmp_path / "audit.log")]
    # The budget is reserved before the sandbox gets its runtime and its DAL grant; each DAL read is
    # an event of the same chain.
    assert actions[:3] == ["task_received", "budget_reserved", "dal_grant"] and actions[-1] == "task_done"
    assert actions[3:-1] and set(actions[3:-1]) == {"dal_access"}


def test_a_retried_task_is_not_charged_twice_and_exhaustion_gives_spent_and_cap(
    handler: TaskHandler, site: dict[str, SiteDataset], tmp_path: Path
) -> None:
    budget = GatewayBudget(tmp_path / BUDGET_FILE)
    first = handler.handle_task(task("job_1"))
    assert first.status == "done" and first.reservation is not None
    budget.settle(first.reservation)  # as the agent does once the outcome is journaled
    retried = handler.handle_task(task("job_1", attempt=2))
    assert retried.status == "failed"
    assert retried.error is not None and "already ran and spent its budget" in retried.error
    assert handler.handle_task(task("job_2")).status == "done"
    assert budget.ledger.spent(budget.lineage(site[DATASET]), researcher="alice").epsilon == 2.0
    refused = handler.handle_task(task("job_3"))
    assert refused.status == "failed"
    assert refused.error == (
        "privacy budget for researcher alice on patients: spent ε=2 of 2.5; this job needs ε=1"
    )
    assert budget.ledger.spent(budget.lineage(site[DATASET]), researcher="alice").epsilon == 2.0


LEVELS_POLICY = AssetPolicy(
    dataset=DATASET,
    grants=[Grant(orgs=["university"], models=["stats"], columns=["age", "sex"])],
    privacy=PRIVACY.model_copy(
        update={"disclosure": PRIVACY.disclosure.model_copy(update={"max_levels": 1})}
    ),
)


class LevelsPolicies(PolicyKeeper):
    """A policy that allows tables over at most one level: `sex` has two."""

    def current(self, dataset: str) -> AssetPolicy | None:
        return LEVELS_POLICY if dataset == DATASET else None


def test_a_dp_task_its_site_refuses_on_public_metadata_is_refused_before_any_budget_is_reserved(
    site: dict[str, SiteDataset], tmp_path: Path
) -> None:
    settings = GatewaySettings(state_dir=tmp_path, warm_spares=0)
    handler = TaskHandler(
        GATEWAY, site, BubblewrapRunner(), settings, AuditTrail(tmp_path / "audit.log"), org=SITE_ORG,
        authorization=load_authorization(AUTHORIZATION, "authorization.yaml"),
        policies=LevelsPolicies(GATEWAY, SITE_ORG, tmp_path, check_certificate=_no_certificate_expected),
    )  # fmt: skip
    try:
        tables = task("job_levels").model_copy(update={"params": {"columns": ["sex"]}, "columns": ["sex"]})
        outcome = handler.handle_task(tables)
    finally:
        handler.close()

    assert outcome.status == "failed"
    assert (
        outcome.error is not None and "site-a/patients: column 'sex' has more than 1 levels" in outcome.error
    )
    ledger = BudgetLedger(tmp_path / BUDGET_FILE)
    assert ledger.history(site[DATASET].lineage or "") == []
    actions = [e.action for e in read_events(tmp_path / "audit.log")]
    assert "budget_reserved" not in actions and "dal_grant" not in actions
