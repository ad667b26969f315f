"""Pure policy decisions: `check_*` raises PolicyDenied with the reason, `can_*` returns a bool."""

from __future__ import annotations

from collections.abc import Iterable

from custos.core.errors import PolicyDenied
from custos.policy.asset import AssetPolicy, split_model_pattern


def granted_columns(policy: AssetPolicy | None, name: str, org: str, model: str, version: str) -> set[str]:
    """Columns that the grants matching this caller and model allow, united; empty when none match."""
    if policy is None:
        return set()
    columns: set[str] = set()
    for grant in policy.grants:
        if grant.matches_who(name, org) and grant.matches_model(model, version):
            columns.update(grant.columns)
    return columns


def check_access(
    policy: AssetPolicy | None,
    dataset: str,
    name: str,
    org: str,
    model: str,
    version: str,
    columns: Iterable[str],
) -> None:
    """Raise PolicyDenied unless the policy lets `org`/`name` run `model@version` on every column."""
    if policy is None:
        raise PolicyDenied(f"no policy for dataset {dataset}: access is denied by default")
    matching = [g for g in policy.grants if g.matches_who(name, org)]
    if not matching:
        raise PolicyDenied(f"the policy for {dataset} grants nothing to user {name} of org {org}")
    if not any(g.matches_model(model, version) for g in matching):
        raise PolicyDenied(
            f"the policy for {dataset} does not allow model {model}@{version} for {org}/{name}"
        )
    allowed = granted_columns(policy, name, org, model, version)
    missing = sorted(set(columns) - allowed)
    if missing:
        raise PolicyDenied(
            f"the policy for {dataset} does not grant column(s) {', '.join(missing)} "
            f"to {org}/{name} for {model}@{version}; granted: {', '.join(sorted(allowed))}"
        )


def can_access(
    policy: AssetPolicy | None,
    dataset: str,
    name: str,
    org: str,
    model: str,
    version: str,
    columns: Iterable[str],
) -> bool:
    try:
        check_access(policy, dataset, name, org, model, version, columns)
    except PolicyDenied:
        return False
    return True


def policy_problems(
    policy: AssetPolicy, dataset: str, columns: Iterable[str], models: Iterable[str]
) -> list[str]:
    """What the policy's grants name that does not exist: a column `dataset` does not have, or a model
    name the registry does not hold (`custom` is reviewed custom code). Each problem is one sentence;
    none is an empty list. Such a grant would give nothing, or give a column or model that appears
    later without the custodian having thought about it."""
    have, known = set(columns), set(models)
    problems = []
    for number, grant in enumerate(policy.grants, start=1):
        unknown_columns = [c for c in grant.columns if c not in have]
        if unknown_columns:
            problems.append(
                f"grant {number} names column(s) {', '.join(unknown_columns)}, which {dataset} does not "
                f"have (it has: {', '.join(sorted(have)) or 'no column'})"
            )
        names = [split_model_pattern(p)[0] for p in grant.models]
        unknown_models = [n for n in dict.fromkeys(names) if n not in known]
        if unknown_models:
            problems.append(
                f"grant {number} names model(s) {', '.join(unknown_models)}, which the registry does not "
                f"hold (it holds: {', '.join(sorted(known))})"
            )
    return problems
