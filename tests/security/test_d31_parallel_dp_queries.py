"""Threat D31 (docs/threats.md): 50 parallel DP queries, each within the remaining budget on its own.
The debit is atomic, so together they never spend more than the cap: exactly as many run as the budget
pays for."""

from __future__ import annotations

import threading
from pathlib import Path

from custos.privacy import BudgetCaps, BudgetExhausted, BudgetLedger
from custos.privacy.dp import dp_count

LINEAGE = "sha256:" + "12" * 32
CAPS = BudgetCaps(epsilon_per_researcher=1.0, epsilon_per_org=1.0)


def test_d31_fifty_parallel_queries_never_pass_the_cap(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "ledger.db")
    ledger.reserve(
        lineage=LINEAGE, dataset="site-a/cohort", researcher="mallory", org="attackers",
        epsilon=0.5, delta=0.0, caps=CAPS, job_id="earlier",
    )  # fmt: skip
    start = threading.Barrier(50)
    outcomes: dict[int, str] = {}

    def query(n: int) -> None:
        start.wait(timeout=60)
        try:
            reservation = ledger.reserve(
                lineage=LINEAGE, dataset="site-a/cohort", researcher="mallory", org="attackers",
                epsilon=0.1, delta=0.0, caps=CAPS, job_id=f"job_{n}",
            )  # fmt: skip
        except BudgetExhausted:
            outcomes[n] = "refused"
            return
        dp_count(1000, epsilon=0.1)
        ledger.commit(reservation.id)
        outcomes[n] = "ran"

    threads = [threading.Thread(target=query, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)

    assert len(outcomes) == 50
    assert list(outcomes.values()).count("ran") == 5  # 0.5 left, 0.1 each
    assert ledger.spent(LINEAGE).epsilon == 1.0
    assert len(ledger.history(LINEAGE)) == 6
