"""Threat D28 (docs/threats.md), differencing: count(all) - count(all but one person) must not
reveal the person.

At the library level: disclosure control alone (a minimum count and rounding) hides the person's
contribution in a small cohort, and under differential privacy both queries are charged to the budget
ledger, the attack's repeats hit exhaustion, and what the budget allows leaves the answer in the noise.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from custos.privacy import (
    BudgetCaps,
    BudgetExhausted,
    BudgetLedger,
    Cell,
    DisclosureRules,
    Line,
    Table,
    protect_table,
    round_count,
)
from custos.privacy.dp import dp_count

LINEAGE = "sha256:" + "cd" * 32


def released_count(true_count: int, rules: DisclosureRules) -> int | None:
    """A count as the disclosure-control engine releases it (None when suppressed), laid out as the
    stats model lays out an ungrouped count: suppressed below the minimum, then rounded."""
    cohort = Cell(true_count)
    protect_table(Table([Line([cohort])]), rules.min_count)
    return round_count(cohort.reported, rules)


def test_d28_min_count_alone_does_not_stop_differencing() -> None:
    # Why it is never relied on alone: above the threshold, the difference is the person.
    rules = DisclosureRules(min_count=10)
    assert released_count(15, rules) == 15
    assert released_count(14, rules) == 14


def test_d28_a_small_cohort_is_suppressed_with_and_without_the_person() -> None:
    rules = DisclosureRules(min_count=10, rounding="nearest", round_to=5)

    assert released_count(9, rules) is None
    assert released_count(8, rules) is None


@pytest.mark.parametrize(
    ("rules", "base"),
    [
        (DisclosureRules(min_count=10, rounding="nearest", round_to=5), 5),
        (DisclosureRules(min_count=8, rounding="midpoint6"), 6),
    ],
)
def test_d28_rounding_never_shows_the_persons_contribution(rules: DisclosureRules, base: int) -> None:
    differences = []
    for with_person in range(rules.min_count + 1, rules.min_count + 1 + 60 * base):
        both = released_count(with_person, rules), released_count(with_person - 1, rules)
        assert both[0] is not None and both[1] is not None
        differences.append(both[0] - both[1])

    assert 1 not in differences  # never the person's own contribution
    assert set(differences) == {0, base}
    # In all but one cohort size in `base`, the person leaves no trace at all. When the difference is
    # `base` the attacker still learns the person is in the cohort: hence differential privacy.
    assert differences.count(0) == (base - 1) * len(differences) // base


def charged_dp_count(
    ledger: BudgetLedger, caps: BudgetCaps, job: str, true_count: int, epsilon: float
) -> int:
    """What a gateway does for one DP query: reserve, run, commit."""
    reservation = ledger.reserve(
        lineage=LINEAGE, dataset="site-a/cohort", researcher="mallory", org="attackers",
        epsilon=epsilon, delta=0.0, caps=caps, job_id=job,
    )  # fmt: skip
    value = dp_count(true_count, epsilon=epsilon).value
    ledger.commit(reservation.id)
    return value


def test_d28_under_dp_both_queries_are_charged_and_repeats_hit_exhaustion(tmp_path: Path) -> None:
    caps = BudgetCaps(epsilon_per_researcher=1.0, epsilon_per_org=1.0)
    ledger = BudgetLedger(tmp_path / "ledger.db")
    differences = []

    with pytest.raises(BudgetExhausted) as refused:
        for attempt in range(100):
            everyone = charged_dp_count(ledger, caps, f"all-{attempt}", 23, 0.1)
            all_but_one = charged_dp_count(ledger, caps, f"all-but-one-{attempt}", 22, 0.1)
            differences.append(everyone - all_but_one)

    assert len(differences) == 5  # a cap of 1.0 buys five pairs of queries at 0.1 each
    assert len(ledger.history(LINEAGE)) == 10  # both queries of every pair were charged
    assert ledger.spent(LINEAGE, researcher="mallory").epsilon == 1.0
    assert "spent ε=1 of 1; this job needs ε=0.1" in str(refused.value)


def test_d28_what_the_budget_allows_leaves_membership_in_the_noise() -> None:
    # The attacker averages the five differences the budget above allows and guesses "in the cohort"
    # when the average is over one half. Only the count(all) queries see the person: the attack spends
    # ε = 5 x 0.1 = 0.5 on them, so no test can tell the two worlds apart with accuracy above
    # e^ε / (1 + e^ε) = 0.62. Without noise the attack is always right.
    trials, pairs, epsilon = 600, 5, 0.1
    right = 0
    for trial in range(trials):
        present = trial % 2 == 0
        size = 23 if present else 22
        diffs = [
            dp_count(size, epsilon=epsilon).value - dp_count(22, epsilon=epsilon).value for _ in range(pairs)
        ]
        right += (float(np.mean(diffs)) > 0.5) == present

    bound = math.exp(pairs * epsilon) / (1 + math.exp(pairs * epsilon))
    accuracy = right / trials
    print(f"differencing attack accuracy under DP: {accuracy:.3f} (DP bound {bound:.3f}, no noise 1.0)")
    assert accuracy < bound + 4 * math.sqrt(bound * (1 - bound) / trials)
