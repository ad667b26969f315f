"""The demo's world: three hospitals with a gateway each, a university with a researcher, and the
policy each hospital writes for its patients table."""

from __future__ import annotations

from custos.data.synthetic import synthetic_patients
from custos.local.cluster import DatasetSetup, GatewaySetup, UserSetup
from custos.policy.asset import AssetPolicy, Grant

HOSPITALS = (("site-a", "hospital-a"), ("site-b", "hospital-b"), ("site-c", "hospital-c"))
RESEARCHER = "alice"
RESEARCH_ORG = "university"
DATASET = "patients"
STATS_MODEL = "stats@1.0.0"
GLM_MODEL = "glm@1.0.0"
FEDAVG_MODEL = "fedavg@1.0.0"
# What the hospitals let the university compute on; patient_id, postcode and diagnosis stay withheld.
GRANTED_COLUMNS = ["age", "sex", "bmi", "systolic_bp", "smoker", "region"]
MIN_COUNT = 10


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


def demo_gateways(rows: int) -> list[GatewaySetup]:
    """One gateway per hospital; each holds `rows` synthetic patients, distributed differently per site."""
    return [
        GatewaySetup(
            name=gateway,
            org=org,
            datasets=[
                DatasetSetup(
                    name=DATASET,
                    table=synthetic_patients(rows, site=index, seed=2024),
                    policy=patients_policy(),
                    description=f"Synthetic patients of {org}",
                )
            ],
        )
        for index, (gateway, org) in enumerate(HOSPITALS)
    ]


def demo_users() -> list[UserSetup]:
    admins = [
        UserSetup(f"admin-{gateway.removeprefix('site-')}", org, "org_admin") for gateway, org in HOSPITALS
    ]
    return [UserSetup(RESEARCHER, RESEARCH_ORG, "lead_researcher"), *admins]


def dataset_refs() -> list[str]:
    return [f"{gateway}/{DATASET}" for gateway, _ in HOSPITALS]
