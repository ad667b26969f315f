"""The world a local deployment shows: hospitals with a gateway and a `patients` table each, a
university whose researcher studies them, and the policy each hospital writes for its table. Shared by
`custos demo` and `custos.launch` / `custos dev`, which differ only in how they name the sites."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from custos.data.synthetic import synthetic_patients
from custos.local.cluster import DatasetSetup, GatewaySetup, UserSetup
from custos.policy.asset import AssetPolicy, Grant

RESEARCHER = "alice"
RESEARCH_ORG = "university"
DATASET = "patients"
# What the hospitals let the university compute on; patient_id, postcode and diagnosis stay withheld.
GRANTED_COLUMNS = ["age", "sex", "bmi", "systolic_bp", "smoker", "region"]
MIN_COUNT = 10
SEED = 2024

# (gateway, org) of each hospital.
Site = tuple[str, str]


def patients_policy() -> AssetPolicy:
    return AssetPolicy(
        dataset=DATASET,
        grants=[
            Grant(
                orgs=[RESEARCH_ORG],
                models=["stats@>=1.0,<2", "glm@>=1.0,<2", "fedavg@>=1.0,<2"],
                columns=GRANTED_COLUMNS,
            )
        ],
        min_count=MIN_COUNT,
        # A trained model's weights stay at home (model_release is false): its metrics leave.
    )


def hospital_gateways(sites: Sequence[Site], rows: int, *, tables: bool = True) -> list[GatewaySetup]:
    """One gateway per hospital; each holds `rows` synthetic patients, distributed differently per
    site. Without `tables` (a deployment reloaded from disk, whose data is there already) each dataset
    carries an empty table."""
    return [
        GatewaySetup(
            name=gateway,
            org=org,
            datasets=[
                DatasetSetup(
                    name=DATASET,
                    table=synthetic_patients(rows, site=index, seed=SEED) if tables else pa.table({}),
                    policy=patients_policy(),
                    description=f"Synthetic patients of {org}",
                )
            ],
        )
        for index, (gateway, org) in enumerate(sites)
    ]


def study_users(sites: Sequence[Site]) -> list[UserSetup]:
    """The researcher, and an org admin per hospital named after its gateway (site-a: admin-a)."""
    admins = [UserSetup(f"admin-{gateway.removeprefix('site-')}", org, "org_admin") for gateway, org in sites]
    return [UserSetup(RESEARCHER, RESEARCH_ORG, "lead_researcher"), *admins]
