"""DP training's budget, through the task handler and a real sandbox: the gateway reserves a job's
projected epsilon (all its rounds) before its first round, later rounds are not charged again, and
a job whose projection exceeds what remains is refused before it runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from custos.audit import AuditTrail, read_events
from custos.computations.fedavg.params import parse_params
from custos.computations.fedavg.weights import initial_weights, to_bytes
from custos.core.identity import Identity
from custos.core.wire import Resources, Submitter, TaskAssignment, TaskKind
from custos.data.synthetic import synthetic_patients
from custos.gateway.budget import BUDGET_FILE
from custos.gateway.handlers import TaskHandler
from custos.gateway.policies import PolicyKeeper
from custos.gateway.settings import GatewaySettings
from custos.gateway.site import SiteDataset
from custos.policy import AssetPolicy, Grant, load_authorization
from custos.privacy.accountant import training_epsilon
from custos.privacy.controls import PrivacyControls
from custos.privacy.ledger import BudgetLedger
from custos.sandbox.bubblewrap import BubblewrapRunner
from custos.testing.sites import parquet_site

GATEWAY, SITE_ORG, DATASET = "site-a", "hospital-a", "patients"
PARAMS: dict[str, Any] = {
    "model": "logistic", "features": ["age", "bmi"], "label": "smoker", "positive": "yes",
    "rounds": 2, "batch_size": 64, "standardize": False, "holdout": 0.2,
}  # fmt: skip
# Noise multiplier 4 at sensitivity 2C: 2 rounds cost about epsilon 3.6 at delta 1e-5.
PROJECTED = training_epsilon(2, 2.0, 1.0, 1, 1e-5)
PRIVACY = PrivacyControls.model_validate(
    {
        "training": {"clip_norm": 1.0, "noise_multiplier": 4.0, "delta": 1e-5},
        "budget": {"epsilon_per_researcher": 1.5 * PROJECTED, "epsilon_per_org": 10 * PROJECTED,
                   "delta_per_researcher": 1e-4, "delta_per_org": 1e-3},
    }
)  # fmt: skip
AUTHORIZATION = """
format_version: 1
permissions:
  lead_researcher:
    submit_job: any
"""
POLICY = AssetPolicy(
    dataset=DATASET,
    grants=[Grant(orgs=["university"], models=["fedavg"], columns=["age", "bmi", "smoker"])],
    privacy=PRIVACY,
)


def _no_certificate_expected(cert: x509.Certificate) -> Identity:
    raise AssertionError("no policy is offered in these tests")


class FixedPolicies(PolicyKeeper):
    def current(self, dataset: str) -> AssetPolicy | None:
        return POLICY if dataset == DATASET else None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SiteDataset]:
    return parquet_site(tmp_path_factory.mktemp("site"), DATASET, synthetic_patients(300, site=0, seed=5))


@pytest.fixture
def handler(site: dict[str, SiteDataset], tmp_path: Path) -> Iterator[TaskHandler]:
    handler = TaskHandler(
        GATEWAY, site, BubblewrapRunner(), GatewaySettings(state_dir=tmp_path, warm_spares=0),
        AuditTrail(tmp_path / "audit.log"), org=SITE_ORG,
        authorization=load_authorization(AUTHORIZATION, "authorization.yaml"),
        policies=FixedPolicies(GATEWAY, SITE_ORG, tmp_path, check_certificate=_no_certificate_expected),
    )  # fmt: skip
    yield handler
    handler.close()


def task(job: str, round_number: int, phase: str = "train") -> TaskAssignment:
    weights = to_bytes(initial_weights(parse_params(PARAMS)))
    return TaskAssignment(
        task_id=f"task_{job}_{round_number}", attempt=1, kind=TaskKind.COMPUTE, spec_id="spec_1",
        job_id=job, round=round_number, model="fedavg@1.0.0", dataset=DATASET,
        columns=["age", "bmi", "smoker"], params=PARAMS,
        round_input={"phase": phase, "round": round_number, "weights": weights},
        submitter=Submitter(name="alice", org="university", role="lead_researcher"),
        resources=Resources(),
    )  # fmt: skip


def test_a_training_job_reserves_its_projection_once_and_the_next_is_refused_before_it_runs(
    handler: TaskHandler, site: dict[str, SiteDataset], tmp_path: Path
) -> None:
    lineage = site[DATASET].lineage or ""
    first = handler.handle_task(task("job_1", 1))
    assert first.status == "done", first.error
    assert first.result is not None and first.result["dp"]["epsilon"] == pytest.approx(PROJECTED)
    assert first.result["budget"]["spent_epsilon"] == pytest.approx(PROJECTED)
    second = handler.handle_task(task("job_1", 2))
    last = handler.handle_task(task("job_1", 2, phase="evaluate"))
    assert (second.status, last.status) == ("done", "done"), (second.error, last.error)
    ledger = BudgetLedger(tmp_path / BUDGET_FILE)
    (charge,) = ledger.history(lineage)
    # Only the job's last round names the reservation, for the agent to commit once journaled.
    assert (first.reservation, second.reservation, last.reservation) == (None, None, charge.id)
    assert (charge.job_id, charge.state) == (f"job_1/{DATASET}/training", "reserved")
    assert charge.epsilon == pytest.approx(PROJECTED)

    refused = handler.handle_task(task("job_2", 1))
    assert refused.status == "failed"
    assert refused.error == (
        f"privacy budget for researcher alice on patients: spent ε={PROJECTED:g} of {1.5 * PROJECTED:g}; "
        f"this job needs ε={PROJECTED:g}"
    )
    assert len(ledger.history(lineage)) == 1
    actions = [e.action for e in read_events(tmp_path / "audit.log")]
    # The refused job reached neither a reservation nor a sandbox: no DAL grant, no runtime booted.
    assert actions[-2:] == ["task_received", "task_failed"]
    assert actions.count("budget_reserved") == 3
