"""Reading project.yaml: names normalised once, look-alikes and duplicates refused, errors name fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from custos.core.errors import InvalidInput
from custos.core.identity import Role
from custos.pki import load_project

VALID = """\
name: Demo
orchestrator:
  host: Custos.Example.org
  port: 9443
participants:
  - name: Site-A
    type: gateway
    org: Hospital-A
  - name: Alice@Uni.org
    type: user
    org: University
    role: lead_researcher
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "project.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        load_project(write(tmp_path, text))
    return caught.value.message


def test_valid_project_is_loaded_with_names_normalised(tmp_path: Path) -> None:
    spec = load_project(write(tmp_path, VALID))

    assert spec.name == "demo"
    assert (spec.orchestrator.host, spec.orchestrator.port, spec.orchestrator.name) == (
        "custos.example.org",
        9443,
        "orchestrator",
    )
    assert spec.orchestrator.url == "https://custos.example.org:9443"
    assert [(p.name, p.type, p.org, p.role) for p in spec.participants] == [
        ("site-a", "gateway", "hospital-a", Role.GATEWAY),
        ("alice@uni.org", "user", "university", Role.LEAD_RESEARCHER),
    ]


def test_orchestrator_defaults(tmp_path: Path) -> None:
    spec = load_project(write(tmp_path, "name: demo\n"))

    assert spec.orchestrator.url == "https://127.0.0.1:8443"
    assert spec.participants == []


def test_ipv6_host_is_bracketed_in_the_url(tmp_path: Path) -> None:
    spec = load_project(write(tmp_path, "name: demo\norchestrator: {host: '::1'}\n"))

    assert spec.orchestrator.url == "https://[::1]:8443"


def test_full_width_letters_normalise_to_ascii(tmp_path: Path) -> None:
    bob = "\uff42\uff4f\uff42"  # FULLWIDTH LATIN SMALL LETTERs
    text = f"name: demo\nparticipants:\n  - {{name: {bob}, type: user, org: uni, role: member_researcher}}\n"

    assert load_project(write(tmp_path, text)).participants[0].name == "bob"


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"project file .*nope.yaml does not exist"):
        load_project(tmp_path / "nope.yaml")


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, "name: demo\nparticipants:\n  - {name: site-a, type: gateway\n")

    assert "malformed YAML at line 4" in message
    assert "project.yaml" in message


def test_a_list_is_not_a_project(tmp_path: Path) -> None:
    assert "must be a mapping" in load_error(tmp_path, "- a\n- b\n")


def test_unknown_top_level_field_is_named_with_the_accepted_ones(tmp_path: Path) -> None:
    message = load_error(tmp_path, "name: demo\nparticipant: []\n")

    assert message.endswith(
        "project.yaml: participant: unknown field; "
        "accepted fields are name, orchestrator, certificate_days, participants"
    )


def test_unknown_participant_field_is_named(tmp_path: Path) -> None:
    message = load_error(
        tmp_path, "name: demo\nparticipants:\n  - {name: site-a, type: gateway, org: h, colour: red}\n"
    )

    assert (
        "participants.0.colour: unknown field; "
        "accepted fields are name, type, org, role, certificate_days, authorization"
    ) in message


def test_unknown_orchestrator_field_is_named(tmp_path: Path) -> None:
    message = load_error(tmp_path, "name: demo\norchestrator: {hots: x}\n")

    assert "orchestrator.hots: unknown field; accepted fields are host, port, name" in message


def test_cyrillic_look_alike_is_refused(tmp_path: Path) -> None:
    # "\u0430lice" begins with CYRILLIC SMALL LETTER A, which looks exactly like a Latin "a".
    text = (
        "name: demo\nparticipants:\n  - {name: \u0430lice, type: user, org: uni, role: member_researcher}\n"
    )

    message = load_error(tmp_path, text)

    assert "participants.0.name" in message
    assert "CYRILLIC SMALL LETTER A (U+0430)" in message
    assert "plain ASCII" in message


def test_cyrillic_look_alike_in_an_org_is_refused(tmp_path: Path) -> None:
    text = "name: demo\nparticipants:\n  - {name: site-a, type: gateway, org: \u043erg-a}\n"

    assert "participants.0.org: org '\u043erg-a' contains CYRILLIC SMALL LETTER O" in load_error(
        tmp_path, text
    )


def test_duplicate_differing_only_in_case_is_refused(tmp_path: Path) -> None:
    text = (
        "name: demo\nparticipants:\n"
        "  - {name: alice, type: user, org: uni, role: member_researcher}\n"
        "  - {name: ALICE, type: user, org: uni, role: lead_researcher}\n"
    )

    message = load_error(tmp_path, text)

    assert "participants.1.name 'alice' is already used by participants.0.name" in message


def test_participant_cannot_take_the_orchestrators_name(tmp_path: Path) -> None:
    text = "name: demo\nparticipants:\n  - {name: Orchestrator, type: gateway, org: h}\n"

    assert "'orchestrator' is already used by orchestrator.name" in load_error(tmp_path, text)


def test_ca_is_reserved(tmp_path: Path) -> None:
    text = "name: demo\nparticipants:\n  - {name: ca, type: gateway, org: h}\n"

    assert "'ca' is reserved for the root CA folder" in load_error(tmp_path, text)


def test_user_without_role_is_refused(tmp_path: Path) -> None:
    text = "name: demo\nparticipants:\n  - {name: alice, type: user, org: uni}\n"

    assert "participants.0.role: required but missing" in load_error(tmp_path, text)


def test_user_cannot_be_given_a_service_role(tmp_path: Path) -> None:
    text = "name: demo\nparticipants:\n  - {name: alice, type: user, org: uni, role: gateway}\n"

    message = load_error(tmp_path, text)

    assert "participants.0: user 'alice' has role 'gateway'" in message
    assert "lead_researcher, member_researcher, org_admin, project_admin" in message


def test_gateway_cannot_be_given_a_user_role(tmp_path: Path) -> None:
    text = "name: demo\nparticipants:\n  - {name: site-a, type: gateway, org: h, role: project_admin}\n"

    assert "a gateway's role is gateway" in load_error(tmp_path, text)


def test_gateway_name_follows_the_stricter_name_rule(tmp_path: Path) -> None:
    text = "name: demo\nparticipants:\n  - {name: site@a, type: gateway, org: h}\n"

    assert "gateway name 'site@a' is not a valid name" in load_error(tmp_path, text)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{name: -alice, type: user, org: u, role: member_researcher}", "name '-alice' is not accepted"),
        ("{name: alice, type: user, org: 'u n', role: member_researcher}", "org 'u n' is not accepted"),
        (
            "{name: alice, type: robot, org: u}",
            "participants.0.type: Input should be 'gateway', 'user' or 'keybroker'",
        ),
    ],
)
def test_bad_values_are_named(tmp_path: Path, entry: str, expected: str) -> None:
    assert expected in load_error(tmp_path, f"name: demo\nparticipants:\n  - {entry}\n")


def test_bad_host_and_port_are_named(tmp_path: Path) -> None:
    assert "host 'not a host' is not an IP address or a DNS name" in load_error(
        tmp_path, "name: demo\norchestrator: {host: not a host}\n"
    )
    assert "orchestrator.port: Input should be less than or equal to 65535" in load_error(
        tmp_path, "name: demo\norchestrator: {port: 70000}\n"
    )


def test_python_tags_are_not_executed(tmp_path: Path) -> None:
    message = load_error(tmp_path, "name: !!python/object/apply:os.system ['true']\n")

    assert "malformed YAML" in message


def test_several_problems_are_counted(tmp_path: Path) -> None:
    message = load_error(tmp_path, "colour: red\nsize: big\n")

    assert "(and 2 more problems)" in message
