"""Threat D30 (docs/threats.md): repeating one DP query to average its noise away. Every repeat debits
the budget, the ledger refuses the repeat that would pass the cap with a message giving spent and cap,
and a retry of a query that already ran cannot draw fresh noise for free."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from custos.core.errors import Conflict
from custos.privacy import BudgetCaps, BudgetExhausted, BudgetLedger
from custos.privacy.dp import dp_mean

LINEAGE = "sha256:" + "ef" * 32
CAPS = BudgetCaps(epsilon_per_researcher=2.0, epsilon_per_org=4.0)
VALUES = np.linspace(20, 80, 400)


def run_query(ledger: BudgetLedger, job: str) -> float:
    reservation = ledger.reserve(
        lineage=LINEAGE, dataset="site-a/cohort", researcher="mallory", org="attackers",
        epsilon=0.25, delta=0.0, caps=CAPS, job_id=job,
    )  # fmt: skip
    value = dp_mean(VALUES, 0, 100, epsilon=0.25).value
    ledger.commit(reservation.id)
    return value


def test_d30_each_repeat_debits_the_budget_until_it_is_refused(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "ledger.db")
    answers = []

    with pytest.raises(BudgetExhausted) as refused:
        for repeat in range(1000):
            answers.append(run_query(ledger, f"job_{repeat}"))
            assert ledger.spent(LINEAGE, researcher="mallory").epsilon == pytest.approx(0.25 * len(answers))

    assert len(answers) == 8  # 2.0 / 0.25
    assert str(refused.value) == (
        "privacy budget for researcher mallory on site-a/cohort: spent ε=2 of 2; this job needs ε=0.25"
    )
    assert len(set(answers)) == len(answers)  # fresh noise each time, each time paid for
    assert [r.state for r in ledger.history(LINEAGE)] == ["committed"] * 8


def test_d30_a_retry_of_a_query_that_ran_gets_no_second_draw(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "ledger.db")
    run_query(ledger, "job_1")

    with pytest.raises(Conflict, match="journal"):
        run_query(ledger, "job_1")
    assert ledger.spent(LINEAGE).epsilon == 0.25
