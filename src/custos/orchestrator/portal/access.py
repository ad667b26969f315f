""" "What may I do here": a dataset's policy read for one signed-in user, as the gateway would apply it
(the gateway re-checks everything; this is for display)."""

from __future__ import annotations

from dataclasses import dataclass, field

from custos.core.identity import Identity
from custos.core.wire import BudgetPublic
from custos.policy.asset import AssetPolicy


@dataclass(frozen=True)
class Allowed:
    """What `who` may do on one dataset: nothing at all when `granted` is False."""

    granted: bool
    models: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    custom_code: bool = False
    controls: list[tuple[str, str]] = field(default_factory=list)
    budget: list[tuple[str, str]] = field(default_factory=list)


def _controls(policy: AssetPolicy) -> list[tuple[str, str]]:
    rules = policy.privacy.disclosure
    out = [
        ("smallest count shown", f"{policy.min_count} (smaller cells are suppressed)"),
        (
            "release review",
            {"none": "none", "one": "one reviewer", "two": "two distinct reviewers"}[policy.release],
        ),
        ("custom code", "after a custodian's review" if policy.custom_code == "review" else "never"),
        ("trained model weights leave the site", "yes" if policy.model_release else "no"),
    ]
    if rules.rounding != "none":
        out.append(("counts rounded", f"{rules.rounding} (to {rules.round_to})"))
    if rules.dominance is not None:
        out.append(("dominance rule", f"n {rules.dominance.n}, k {rules.dominance.k} %"))
    dp = policy.privacy.dp
    if dp is not None:
        per = (
            f"ε {dp.epsilon_per_job} per job" if dp.epsilon_per_job else f"ε {dp.epsilon_per_query} per query"
        )
        out.append(
            ("differential privacy", f"{dp.mechanism}, {per}" + (f", δ {dp.delta}" if dp.delta else ""))
        )
    return out


def allowed_for(
    who: Identity, policy: AssetPolicy | None, dataset: str, budget: list[BudgetPublic]
) -> Allowed:
    if policy is None:
        return Allowed(granted=False)
    grants = [g for g in policy.grants if g.matches_who(who.name, who.org)]
    if not grants:
        return Allowed(granted=False, controls=_controls(policy))
    models = sorted({m for g in grants for m in g.models})
    columns = sorted({c for g in grants for c in g.columns})
    rows: list[tuple[str, str]] = []
    caps = policy.privacy.budget
    if caps is not None:
        mine = next(
            (b for b in budget if b.dataset == dataset and b.kind == "researcher" and b.subject == who.name),
            None,
        )
        if mine is None:
            rows.append(
                (
                    "your remaining ε",
                    f"{caps.epsilon_per_researcher:g} of {caps.epsilon_per_researcher:g} (nothing spent yet)",
                )
            )
        else:
            rows.append(("your remaining ε", f"{mine.remaining_epsilon:.4g} of {mine.cap_epsilon:.4g}"))
        org = next(
            (b for b in budget if b.dataset == dataset and b.kind == "org" and b.subject == who.org), None
        )
        left = caps.epsilon_per_org if org is None else org.remaining_epsilon
        rows.append((f"{who.org}'s remaining ε", f"{left:.4g} of {caps.epsilon_per_org:g}"))
    return Allowed(
        granted=True,
        models=[m for m in models if m != "custom"],
        columns=columns,
        custom_code=policy.custom_code == "review" and "custom" in models,
        controls=_controls(policy),
        budget=rows,
    )
