"""Asset policies, site authorization, and the pure functions that check access against them."""

from custos.policy.asset import AssetPolicy, Grant, load_policy
from custos.policy.authorization import (
    Decision,
    Right,
    SiteAuthorization,
    can_authorize,
    check_authorization,
    decide,
    default_authorization,
    load_authorization,
    load_site_authorization,
    parse_right,
    parse_user_role,
)
from custos.policy.checks import can_access, check_access, granted_columns

__all__ = [
    "AssetPolicy",
    "Decision",
    "Grant",
    "Right",
    "SiteAuthorization",
    "can_access",
    "can_authorize",
    "check_access",
    "check_authorization",
    "decide",
    "default_authorization",
    "granted_columns",
    "load_authorization",
    "load_policy",
    "load_site_authorization",
    "parse_right",
    "parse_user_role",
]
