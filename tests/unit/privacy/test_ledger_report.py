"""What the gateway reports of its ledger: the head only grows, and the totals per researcher are
exact sums over the lineage and the lineages linked to it, reserved and committed alike."""

from __future__ import annotations

from pathlib import Path

from custos.privacy.controls import BudgetCaps
from custos.privacy.ledger import BudgetLedger

CAPS = BudgetCaps(epsilon_per_researcher=5.0, epsilon_per_org=10.0)


def test_head_and_totals(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "budget.db")
    assert (ledger.head(), ledger.totals("rows:a")) == (0, [])
    charge = {"dataset": "patients", "caps": CAPS, "delta": 0.0}
    for n in range(3):
        ledger.reserve(
            lineage="rows:a", researcher="Dora", org="university", epsilon=0.1, job_id=f"j{n}", **charge
        )
    first = ledger.reserve(
        lineage="rows:a", researcher="eve", org="uni-b", epsilon=1.0, job_id="j9", **charge
    )
    ledger.commit(first.id)
    ledger.link("rows:a", "sha256:file")
    ledger.reserve(
        lineage="sha256:file", researcher="dora", org="university", epsilon=0.2, job_id="old", **charge
    )
    assert ledger.head() == 5
    totals = {who: (org, eps) for who, org, eps, _ in ledger.totals("rows:a")}
    # Researchers by their case-folded name, as the ledger's caps count them; 0.1 * 3 + 0.2 exactly.
    assert totals == {"Dora": ("university", 0.5), "eve": ("uni-b", 1.0)}
