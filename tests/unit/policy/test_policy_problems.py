"""A policy's grants are checked against the dataset's columns and the registry's models: what names
nothing is reported, one sentence per grant and kind."""

from __future__ import annotations

from custos.policy import load_policy
from custos.policy.checks import policy_problems

POLICY = """
dataset: patients
grants:
  - orgs: [university]
    models: ["stats@>=1.0,<2", "glm"]
    columns: [age, bmi]
  - users: [alice]
    models: ["stat@1.0", "custom", "stat@2.0"]
    columns: [age, agee, weight]
"""


def test_unknown_columns_and_models_are_named_per_grant() -> None:
    problems = policy_problems(
        load_policy(POLICY), "site-a/patients", ["age", "bmi", "sex"], ["stats", "glm", "custom"]
    )

    assert problems == [
        "grant 2 names column(s) agee, weight, which site-a/patients does not have (it has: age, bmi, sex)",
        "grant 2 names model(s) stat, which the registry does not hold (it holds: custom, glm, stats)",
    ]


def test_a_policy_that_names_only_what_exists_has_no_problem() -> None:
    assert (
        policy_problems(
            load_policy(POLICY), "d", ["age", "bmi", "agee", "weight"], ["stats", "stat", "glm", "custom"]
        )
        == []
    )
