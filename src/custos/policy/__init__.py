"""Asset policies and the pure functions that check access against them."""

from custos.policy.asset import AssetPolicy, Grant, load_policy
from custos.policy.checks import can_access, check_access, granted_columns

__all__ = ["AssetPolicy", "Grant", "can_access", "check_access", "granted_columns", "load_policy"]
