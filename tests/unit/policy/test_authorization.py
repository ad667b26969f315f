"""The site authorization file: parsing, each condition, block rules first, default deny, defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from custos.core.errors import InvalidInput, PolicyDenied
from custos.core.identity import USER_ROLES
from custos.policy import (
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
from custos.policy.authorization import DEFAULT_AUTHORIZATION_YAML

EXAMPLE = """
format_version: 1
permissions:
  project_admin: any
  org_admin:
    submit_job: o:site
    activate_spec: o:site
  lead_researcher:
    submit_job: ["not n:mallory", "not o:rival-corp", any]
    activate_spec: any
  member_researcher:
    submit_job: none
"""

SITE_ORG = "hospital-a"


def rules(permissions: str) -> SiteAuthorization:
    return load_authorization(f"format_version: 1\npermissions:\n{permissions}", "authorization.yaml")


def ask(
    auth: SiteAuthorization,
    role: str,
    right: Right = Right.SUBMIT_JOB,
    *,
    user: str = "alice",
    org: str = "university",
) -> Decision:
    return decide(auth, site_org=SITE_ORG, user=user, org=org, role=role, right=right)


# --- parsing ---------------------------------------------------------------------------------------


def test_the_example_parses_and_a_bare_condition_gives_every_right() -> None:
    auth = load_authorization(EXAMPLE, "authorization.yaml")
    for right in Right:
        assert ask(auth, "project_admin", right).allowed
    conditions = auth.conditions(parse_user_role("lead_researcher"), Right.SUBMIT_JOB)
    assert conditions is not None
    assert [c.text for c in conditions] == ["not n:mallory", "not o:rival-corp", "any"]
    assert [c.blocks for c in conditions] == [True, True, False]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("format_version: [1\n", "authorization.yaml: malformed YAML at line"),
        ("- a list\n", "authorization.yaml: must be a mapping with keys format_version, permissions"),
        ("permissions: {}\n", "authorization.yaml: format_version is required"),
        ("format_version: 1\n", "authorization.yaml: permissions is required"),
        ("format_version: 2\npermissions: {}\n", "format_version 2 is not supported; accepted: 1"),
        ("format_version: true\npermissions: {}\n", "format_version True is not supported; accepted: 1"),
        (
            "format_version: 1\npermissions: {}\nroles: {}\n",
            "key 'roles' is not accepted; accepted keys are format_version, permissions",
        ),
        (
            "format_version: 1\npermissions: [any]\n",
            "permissions: expected a mapping of role to rights; roles are lead_researcher, "
            "member_researcher, org_admin, project_admin",
        ),
        (
            "format_version: 1\npermissions:\n  gateway: any\n",
            "permissions: role 'gateway' is not accepted; accepted roles are lead_researcher, "
            "member_researcher, org_admin, project_admin",
        ),
        (
            "format_version: 1\npermissions:\n  admin: any\n",
            "permissions: role 'admin' is not accepted",
        ),
        (
            "format_version: 1\npermissions:\n  org_admin:\n    run_code: any\n",
            "permissions.org_admin: right 'run_code' is not accepted; accepted rights are submit_job, "
            "activate_spec, custom_code",
        ),
        (
            "format_version: 1\npermissions:\n  org_admin:\n    submit_job: 'o:'\n",
            "permissions.org_admin.submit_job: condition 'o:' is not accepted; accepted: any, none, o:site",
        ),
        (
            "format_version: 1\npermissions:\n  org_admin:\n    submit_job: [any, everyone]\n",
            "permissions.org_admin.submit_job[1]: condition 'everyone' is not accepted",
        ),
        (
            "format_version: 1\npermissions:\n  org_admin:\n    submit_job: 'x:bob'\n",
            "condition 'x:bob' is not accepted",
        ),
        (
            "format_version: 1\npermissions:\n  org_admin:\n    submit_job: 'n:two words'\n",
            "condition 'n:two words' is not accepted",
        ),
        (
            "format_version: 1\npermissions:\n  org_admin:\n    submit_job: [any, 5]\n",
            "permissions.org_admin.submit_job[1]: expected a condition (any, none, o:site",
        ),
        (
            "format_version: 1\npermissions:\n  org_admin:\n",
            "permissions.org_admin: expected a condition",
        ),
        (
            "format_version: 1\npermissions:\n  org_admin:\n    submit_job: []\n",
            "permissions.org_admin.submit_job: the list of conditions is empty; write none to deny",
        ),
        (
            "format_version: 1\npermissions:\n  org_admin:\n    submit_job: not none\n",
            "condition 'not none' blocks nobody",
        ),
    ],
)
def test_a_bad_file_is_refused_in_one_line_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_authorization(text, "authorization.yaml")
    assert message in caught.value.message
    assert caught.value.message.startswith("authorization.yaml: ")
    assert "\n" not in caught.value.message


def test_an_oversized_file_is_refused() -> None:
    text = EXAMPLE + "#" * (64 * 1024)
    with pytest.raises(InvalidInput, match="larger than"):
        load_authorization(text, "authorization.yaml")


def test_parse_right_and_role_list_what_is_accepted() -> None:
    assert parse_right("activate_spec") is Right.ACTIVATE_SPEC
    with pytest.raises(InvalidInput, match="right 'run' is not accepted; accepted rights are submit_job, "):
        parse_right("run")
    with pytest.raises(InvalidInput, match="role 'gateway' is not accepted; accepted roles are lead_"):
        parse_user_role("gateway")


# --- each condition kind ------------------------------------------------------------------------------


def test_any_allows_everyone_and_none_denies_everyone() -> None:
    auth = rules("  lead_researcher: any\n  member_researcher: none\n")
    assert ask(auth, "lead_researcher") == Decision(True, "allowed by 'any' for lead_researcher submit_job")
    assert ask(auth, "member_researcher") == Decision(
        False, "denied by 'none' for member_researcher submit_job"
    )


def test_o_site_allows_only_the_sites_own_org() -> None:
    auth = rules("  org_admin:\n    submit_job: o:site\n")
    assert ask(auth, "org_admin", org="hospital-a") == Decision(
        True,
        "allowed by 'o:site' for org_admin submit_job: submitter org hospital-a is the site's org",
    )
    refused = ask(auth, "org_admin", user="bob", org="hospital-b")
    assert not refused.allowed
    assert refused.reason == (
        "no condition for org_admin submit_job ('o:site') matches bob of hospital-b at this site "
        "(org hospital-a); denied by default"
    )


def test_o_name_and_n_name_match_that_org_and_that_user() -> None:
    auth = rules("  lead_researcher:\n    submit_job: [o:university, n:carol]\n")
    assert ask(auth, "lead_researcher", org="university").reason == (
        "allowed by 'o:university' for lead_researcher submit_job: submitter org is university"
    )
    assert ask(auth, "lead_researcher", user="carol", org="elsewhere").reason == (
        "allowed by 'n:carol' for lead_researcher submit_job: submitter name is carol"
    )
    assert not ask(auth, "lead_researcher", user="dave", org="elsewhere").allowed


def test_submitter_conditions_are_always_true_for_a_task() -> None:
    for condition in ("n:submitter", "o:submitter"):
        auth = rules(f"  member_researcher:\n    activate_spec: {condition}\n")
        decision = ask(auth, "member_researcher", Right.ACTIVATE_SPEC, user="anyone", org="anywhere")
        assert decision.allowed
        assert decision.reason.endswith(": the submitter of a task is always its subject")


def test_an_org_literally_named_site_is_the_keyword_not_a_name() -> None:
    auth = rules("  lead_researcher:\n    submit_job: o:site\n")
    assert not ask(auth, "lead_researcher", org="site").allowed


# --- order, case, default deny ------------------------------------------------------------------------


def test_block_rules_are_checked_before_any_allow_whatever_the_order_written() -> None:
    auth = rules("  lead_researcher:\n    submit_job: [any, 'not n:mallory', 'not o:rival-corp']\n")
    assert ask(auth, "lead_researcher", user="mallory") == Decision(
        False, "blocked by 'not n:mallory' for lead_researcher submit_job: submitter name is mallory"
    )
    assert ask(auth, "lead_researcher", org="rival-corp").reason == (
        "blocked by 'not o:rival-corp' for lead_researcher submit_job: submitter org is rival-corp"
    )
    assert ask(auth, "lead_researcher", user="alice", org="university").allowed


def test_not_o_site_blocks_the_sites_own_org() -> None:
    auth = rules("  lead_researcher:\n    submit_job: ['not o:site', any]\n")
    assert not ask(auth, "lead_researcher", org="hospital-a").allowed
    assert ask(auth, "lead_researcher", org="university").allowed


def test_not_any_blocks_everyone() -> None:
    auth = rules("  lead_researcher: ['not any', any]\n")
    assert ask(auth, "lead_researcher") == Decision(
        False, "blocked by 'not any' for lead_researcher submit_job"
    )


def test_names_orgs_and_keywords_compare_case_insensitively() -> None:
    auth = rules("  lead_researcher:\n    submit_job: ['NOT n:Mallory', O:University]\n")
    assert not ask(auth, "lead_researcher", user="MALLORY", org="university").allowed
    assert ask(auth, "lead_researcher", user="alice", org="UNIVERSITY").allowed
    site = rules("  org_admin:\n    submit_job: o:site\n")
    decision = decide(
        site, site_org="Hospital-A", user="x", org="HOSPITAL-a", role="org_admin", right=Right.SUBMIT_JOB
    )
    assert decision.allowed


def test_a_right_not_listed_for_a_role_is_denied_by_default() -> None:
    auth = rules("  lead_researcher:\n    submit_job: any\n")
    assert ask(auth, "lead_researcher", Right.ACTIVATE_SPEC) == Decision(
        False, "no rule gives lead_researcher the right activate_spec; denied by default"
    )
    assert ask(auth, "org_admin") == Decision(
        False, "no rule gives org_admin the right submit_job; denied by default"
    )
    assert not ask(rules("  {}\n"), "project_admin").allowed


def test_a_submitter_whose_role_is_not_a_user_role_is_denied() -> None:
    auth = rules("  project_admin: any\n")
    for role in ("gateway", "orchestrator", "superuser"):
        decision = ask(auth, role)
        assert not decision.allowed
        assert f"role {role!r} is not a user role" in decision.reason


def test_check_raises_the_reason_and_can_returns_a_bool() -> None:
    auth = load_authorization(EXAMPLE, "authorization.yaml")
    asked = {"site_org": SITE_ORG, "org": "university", "role": "lead_researcher"}
    check_authorization(auth, user="alice", right=Right.SUBMIT_JOB, **asked)
    assert can_authorize(auth, user="alice", right=Right.SUBMIT_JOB, **asked)
    assert not can_authorize(auth, user="mallory", right=Right.SUBMIT_JOB, **asked)
    with pytest.raises(PolicyDenied, match=r"^blocked by 'not n:mallory' for lead_researcher submit_job"):
        check_authorization(auth, user="mallory", right=Right.SUBMIT_JOB, **asked)


# --- defaults --------------------------------------------------------------------------------------


def test_default_rules() -> None:
    auth = default_authorization()
    expected = {
        ("project_admin", Right.SUBMIT_JOB, "university"): True,
        ("project_admin", Right.ACTIVATE_SPEC, "university"): True,
        ("org_admin", Right.SUBMIT_JOB, "hospital-a"): True,
        ("org_admin", Right.ACTIVATE_SPEC, "hospital-a"): True,
        ("org_admin", Right.SUBMIT_JOB, "university"): False,
        ("org_admin", Right.ACTIVATE_SPEC, "university"): False,
        ("lead_researcher", Right.SUBMIT_JOB, "university"): True,
        ("lead_researcher", Right.ACTIVATE_SPEC, "university"): True,
        ("member_researcher", Right.SUBMIT_JOB, "hospital-a"): False,
        ("member_researcher", Right.ACTIVATE_SPEC, "hospital-a"): False,
    }
    for (role, right, org), allowed in expected.items():
        assert ask(auth, role, right, org=org).allowed is allowed, (role, right, org)


def test_the_defaults_name_every_user_role_and_are_the_example_without_its_block_rules() -> None:
    auth = default_authorization()
    assert set(auth.permissions) == set(USER_ROLES)
    assert "not " not in DEFAULT_AUTHORIZATION_YAML
    example = load_authorization(EXAMPLE, "example")
    for role in USER_ROLES:
        for right in Right:
            for user, org in (("alice", "university"), ("bob", SITE_ORG)):
                assert (
                    ask(auth, role, right, user=user, org=org).allowed
                    == ask(example, role, right, user=user, org=org).allowed
                ), (role, right, user)


def test_a_kit_without_the_file_uses_the_defaults(tmp_path: Path) -> None:
    auth, origin = load_site_authorization(tmp_path)
    assert origin == "built-in defaults"
    assert auth == default_authorization()


def test_a_kit_with_the_file_uses_it(tmp_path: Path) -> None:
    (tmp_path / "authorization.yaml").write_text("format_version: 1\npermissions:\n  lead_researcher: none\n")
    auth, origin = load_site_authorization(tmp_path)
    assert origin == "authorization.yaml in the kit"
    assert not ask(auth, "lead_researcher").allowed


def test_a_broken_file_in_the_kit_stops_the_load_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "authorization.yaml").write_text("format_version: 1\npermissions:\n  lead: any\n")
    with pytest.raises(InvalidInput, match=r"authorization\.yaml: permissions: role 'lead' is not accepted"):
        load_site_authorization(tmp_path)
    (tmp_path / "authorization.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(InvalidInput, match="is not UTF-8 text"):
        load_site_authorization(tmp_path)
