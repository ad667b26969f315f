"""The demo's world: three hospitals with a gateway each (custos.local.world), and the models the
walkthrough runs on them."""

from __future__ import annotations

from custos.local.cluster import GatewaySetup, UserSetup
from custos.local.world import DATASET, GRANTED_COLUMNS, RESEARCHER, hospital_gateways, study_users

__all__ = ["DATASET", "GRANTED_COLUMNS", "RESEARCHER"]

HOSPITALS = (("site-a", "hospital-a"), ("site-b", "hospital-b"), ("site-c", "hospital-c"))
STATS_MODEL = "stats@1.0.0"
GLM_MODEL = "glm@1.0.0"
FEDAVG_MODEL = "fedavg@1.0.0"


def demo_gateways(rows: int) -> list[GatewaySetup]:
    return hospital_gateways(HOSPITALS, rows)


def demo_users() -> list[UserSetup]:
    return study_users(HOSPITALS)


def dataset_refs() -> list[str]:
    return [f"{gateway}/{DATASET}" for gateway, _ in HOSPITALS]
