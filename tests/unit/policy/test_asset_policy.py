from __future__ import annotations

import pytest

from custos.core.errors import InvalidInput, PolicyDenied
from custos.policy import can_access, check_access, granted_columns, load_policy

POLICY = """
dataset: patients
grants:
  - orgs: [University]
    models: ["stats@>=1.0,<2"]
    columns: [age, sex, bmi]
  - users: [bob]
    models: ["stats"]
    columns: [postcode]
min_count: 7
"""


def test_policy_parses_with_defaults() -> None:
    policy = load_policy(POLICY)
    assert policy.glm.min_rows_per_term == 10
    assert policy.min_count == 7
    assert load_policy("dataset: x\n").grants == []
    assert load_policy("dataset: x\n").min_count == 10


def test_grant_matches_org_case_insensitively_and_version_range() -> None:
    policy = load_policy(POLICY)
    check_access(policy, "a/patients", "alice", "university", "stats", "1.0.0", ["age", "sex"])
    assert not can_access(policy, "a/patients", "alice", "university", "stats", "2.0.0", ["age"])
    assert not can_access(policy, "a/patients", "alice", "university", "glm", "1.0.0", ["age"])


def test_columns_outside_the_grant_are_denied_with_the_reason() -> None:
    policy = load_policy(POLICY)
    with pytest.raises(PolicyDenied, match="does not grant column\\(s\\) postcode"):
        check_access(policy, "a/patients", "alice", "university", "stats", "1.0.0", ["age", "postcode"])


def test_grants_add_up_for_a_user_matching_two() -> None:
    policy = load_policy(POLICY)
    assert granted_columns(policy, "bob", "university", "stats", "1.0.0") == {"age", "sex", "bmi", "postcode"}


def test_default_deny() -> None:
    with pytest.raises(PolicyDenied, match="denied by default"):
        check_access(None, "a/patients", "alice", "university", "stats", "1.0.0", ["age"])
    with pytest.raises(PolicyDenied, match="grants nothing"):
        check_access(load_policy(POLICY), "a/patients", "eve", "other-org", "stats", "1.0.0", ["age"])


def test_glm_min_rows_per_term_is_a_whole_number_from_one() -> None:
    assert load_policy("dataset: x\nglm: {min_rows_per_term: 1}\n").glm.min_rows_per_term == 1
    assert load_policy("dataset: x\nglm:\n  min_rows_per_term: 25\n").glm.min_rows_per_term == 25
    for value in ["0", "-3", "2.5", "ten", "true"]:
        with pytest.raises(InvalidInput) as caught:
            load_policy(f"dataset: x\nglm: {{min_rows_per_term: {value}}}\n", source="p.yaml")
        assert str(caught.value).startswith("p.yaml: glm.min_rows_per_term: got ")
        assert str(caught.value).endswith(
            "; give a whole number of rows per coefficient, 1 or more (the default is 10)"
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dataset: [unclosed", "malformed YAML at line 1"),
        ("- just\n- a list\n", "must be a mapping"),
        (
            "dataset: x\ngrants:\n  - orgs: [u]\n    models: ['stats@>=1,<<2']\n    columns: [a]\n",
            "version range",
        ),
        ("dataset: x\nunknown_key: 1\n", "unknown_key"),
        ("dataset: x\nmin_count: -1\n", "min_count"),
        ("dataset: x\ngrants:\n  - orgs: [u]\n    models: [stats]\n", "columns"),
        ("!!python/object/apply:os.system ['true']\n", "malformed YAML"),
    ],
)
def test_malformed_policies_get_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        load_policy(text, source="p.yaml")
