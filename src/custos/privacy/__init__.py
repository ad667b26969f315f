"""Privacy controls on what leaves a site: the policy's privacy section, statistical disclosure control
and the privacy budget ledger. The differential privacy releases live in `custos.privacy.dp`, which is
not imported here because it loads OpenDP's native library (parsing a policy must not)."""

from typing import TYPE_CHECKING

from custos.core.lazy import lazy_names

if TYPE_CHECKING:
    from custos.privacy.controls import (
        BudgetCaps,
        DisclosureRules,
        DominanceRule,
        DpSettings,
        PrivacyControls,
        PrivacyCost,
        parse_privacy,
        split_budget,
    )
    from custos.privacy.ledger import BudgetExhausted, BudgetLedger, Reservation, content_lineage
    from custos.privacy.sdc import (
        Cell,
        Line,
        Table,
        is_dominated,
        midpoint6,
        protect_line,
        protect_table,
        round_count,
        round_to_nearest,
        suppress_small,
    )

__getattr__ = lazy_names(
    __name__,
    {
        "controls": [
            "BudgetCaps",
            "DisclosureRules",
            "DominanceRule",
            "DpSettings",
            "PrivacyControls",
            "PrivacyCost",
            "parse_privacy",
            "split_budget",
        ],
        "ledger": ["BudgetExhausted", "BudgetLedger", "Reservation", "content_lineage"],
        "sdc": [
            "Cell",
            "Line",
            "Table",
            "is_dominated",
            "midpoint6",
            "protect_line",
            "protect_table",
            "round_count",
            "round_to_nearest",
            "suppress_small",
        ],
    },
)

__all__ = [
    "BudgetCaps",
    "BudgetExhausted",
    "BudgetLedger",
    "Cell",
    "DisclosureRules",
    "DominanceRule",
    "DpSettings",
    "Line",
    "PrivacyControls",
    "PrivacyCost",
    "Reservation",
    "Table",
    "content_lineage",
    "is_dominated",
    "midpoint6",
    "parse_privacy",
    "protect_line",
    "protect_table",
    "round_count",
    "round_to_nearest",
    "split_budget",
    "suppress_small",
]
