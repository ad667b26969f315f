"""The policy's privacy section: defaults, the YAML in docs/privacy.md, and refusals that name the field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from custos.core.errors import InvalidInput, PolicyDenied
from custos.privacy import (
    BudgetCaps,
    DisclosureRules,
    DpSettings,
    PrivacyControls,
    PrivacyCost,
    parse_privacy,
    split_budget,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "privacy.md"
CAPS = {"epsilon_per_researcher": 2.0, "epsilon_per_org": 5.0}


def test_no_privacy_section_means_disclosure_defaults_and_no_dp() -> None:
    controls = parse_privacy({})

    assert controls.disclosure.min_count == 10
    assert controls.disclosure.rounding == "none"
    assert controls.disclosure.dominance is not None
    assert (controls.disclosure.dominance.n, controls.disclosure.dominance.k) == (2, 85.0)
    assert controls.disclosure.extremes_threshold == 10
    assert controls.dp is None and controls.budget is None


def test_every_yaml_example_in_the_privacy_doc_parses() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    privacy_blocks = [yaml.safe_load(b)["privacy"] for b in blocks if "privacy:" in b]

    assert len(privacy_blocks) >= 2
    parsed = [parse_privacy(block, "docs/privacy.md") for block in privacy_blocks]
    assert any(p.dp is not None and p.dp.mechanism == "gaussian" for p in parsed)
    assert any(p.disclosure.rounding == "midpoint6" for p in parsed)


def test_extremes_never_need_fewer_rows_than_min_count() -> None:
    assert DisclosureRules(min_count=10, extremes_min_count=5).extremes_threshold == 10
    assert DisclosureRules(min_count=10, extremes_min_count=25).extremes_threshold == 25


@pytest.mark.parametrize(
    ("privacy", "message"),
    [
        (
            {"disclosure": {"rounding": "midpoint6", "round_to": 10}},
            "round_to applies only to rounding: nearest",
        ),
        ({"disclosure": {"min_count": 0}}, r"privacy\.disclosure\.min_count"),
        ({"disclosure": {"dominance": {"n": 2, "k": 100}}}, r"privacy\.disclosure\.dominance\.k"),
        ({"disclosure": {"min_cell": 5}}, r"privacy\.disclosure\.min_cell: Extra inputs"),
        ({"dp": {"epsilon_per_query": 0.1}}, "dp needs a budget section"),
        ({"budget": CAPS}, "budget applies only with dp"),
        ({"dp": {"epsilon_per_query": 0.1, "epsilon_per_job": 1.0}, "budget": CAPS}, "exactly one of"),
        ({"dp": {"mechanism": "laplace"}, "budget": CAPS}, "exactly one of"),
        ({"dp": {"mechanism": "gaussian", "epsilon_per_job": 1.0}, "budget": CAPS}, "needs a delta > 0"),
        ({"dp": {"epsilon_per_job": 1.0, "delta": 1e-6}, "budget": CAPS}, "delta applies only to mechanism"),
        ({"dp": {"epsilon_per_job": 3.0}, "budget": CAPS}, "more than epsilon_per_researcher 2"),
        (
            {"dp": {"epsilon_per_job": 1.0, "mechanism": "gaussian", "delta": 1e-6}, "budget": CAPS},
            "more than delta_per_researcher 0",
        ),
        ({"dp": {"epsilon_per_job": 1.0, "bounds": {"age": [90, 10]}}, "budget": CAPS}, "lower < upper"),
        (
            {"dp": {"epsilon_per_job": 1.0}, "budget": {"epsilon_per_researcher": 6, "epsilon_per_org": 5}},
            "above epsilon_per_org",
        ),
        ({"dp": {"epsilon_per_job": float("inf")}, "budget": CAPS}, r"privacy\.dp\.epsilon_per_job"),
    ],
)
def test_a_bad_privacy_section_is_refused_naming_the_problem(privacy: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_privacy(privacy, "policy.yaml")


def test_a_job_budget_is_split_evenly_over_its_queries() -> None:
    dp = DpSettings(mechanism="gaussian", epsilon_per_job=1.0, delta=1e-6)

    assert dp.query_cost(4) == PrivacyCost(0.25, 2.5e-7)
    assert dp.job_cost(4) == PrivacyCost(1.0, 1e-6)
    assert split_budget(1.0, 1e-6, 4) == PrivacyCost(0.25, 2.5e-7)
    with pytest.raises(InvalidInput, match="at least 1 query"):
        split_budget(1.0, 0.0, 0)


def test_a_query_budget_multiplies_over_a_jobs_queries() -> None:
    dp = DpSettings(epsilon_per_query=0.1)

    assert dp.query_cost(3) == PrivacyCost(0.1, 0.0)
    assert dp.job_cost(3).epsilon == pytest.approx(0.3)


def test_bounds_come_from_the_policy_then_the_schema_else_dp_is_refused() -> None:
    dp = DpSettings(epsilon_per_query=0.1, bounds={"age": (0, 110)})

    assert dp.bounds_for("age", 18, 95) == (0, 110)
    assert dp.bounds_for("bmi", 12.0, 60.0) == (12.0, 60.0)
    with pytest.raises(PolicyDenied, match=r"add privacy\.dp\.bounds\.bmi"):
        dp.bounds_for("bmi", None, None)


def test_models_are_frozen() -> None:
    controls = PrivacyControls(
        dp=DpSettings(epsilon_per_query=0.5), budget=BudgetCaps(epsilon_per_researcher=1, epsilon_per_org=2)
    )
    with pytest.raises(ValueError, match="frozen"):
        controls.disclosure.min_count = 1  # type: ignore[misc]
