"""`custos gateway authz-preview`: what a gateway's authorization decides, from its kit, without a server."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from custos.pki import load_kit, load_private_key_pem
from custos.pki.manifest import write_manifest
from custos.pki.project import ProjectSpec
from custos.pki.provision import CA_FOLDER, CA_KEY_FILE, provision

from .conftest import CliRunner

AUTHORIZATION = """\
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


def add_signed_file(out: Path, kit: str, name: str, text: str) -> Path:
    """Write `name` into a provisioned kit and sign its manifest again with the project's CA key."""
    folder = out / kit
    (folder / name).write_text(text, encoding="utf-8")
    ca_key = load_private_key_pem((out / CA_FOLDER / CA_KEY_FILE).read_bytes())
    write_manifest(folder, ca_key)
    load_kit(folder)
    return folder


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """site-a (hospital-a) with an authorization.yaml, site-b (hospital-b) without, and a user's kit."""
    out = tmp_path_factory.mktemp("project") / "kits"
    spec = ProjectSpec.model_validate(
        {
            "name": "demo",
            "participants": [
                {"name": "site-a", "type": "gateway", "org": "hospital-a"},
                {"name": "site-b", "type": "gateway", "org": "hospital-b"},
                {"name": "alice", "type": "user", "org": "university", "role": "lead_researcher"},
            ],
        }
    )
    provision(spec, out)
    add_signed_file(out, "site-a", "authorization.yaml", AUTHORIZATION)
    return out


def preview(custos: CliRunner, kit: Path, user: str, org: str, role: str, right: str) -> str:
    run = custos(
        "gateway", "authz-preview", "--kit", str(kit), "--user", user, "--org", org, "--role", role,
        "--right", right,
    )  # fmt: skip
    assert run.code == 0, run.stderr
    assert run.stderr == ""
    return run.stdout


def test_allowed_by_the_kits_file(custos: CliRunner, kits: Path) -> None:
    out = preview(custos, kits / "site-a", "alice", "university", "lead_researcher", "submit_job")
    assert out == (
        "allowed: lead_researcher alice of university may submit_job at site-a (org hospital-a): "
        "allowed by 'any' for lead_researcher submit_job (authorization.yaml in the kit)\n"
    )


def test_blocked_by_the_kits_file_still_exits_0(custos: CliRunner, kits: Path) -> None:
    out = preview(custos, kits / "site-a", "mallory", "university", "lead_researcher", "submit_job")
    assert out == (
        "denied: lead_researcher mallory of university may not submit_job at site-a (org hospital-a): "
        "blocked by 'not n:mallory' for lead_researcher submit_job: submitter name is mallory "
        "(authorization.yaml in the kit)\n"
    )


def test_o_site_compares_with_the_org_in_the_kits_certificate(custos: CliRunner, kits: Path) -> None:
    own = preview(custos, kits / "site-a", "admin", "hospital-a", "org_admin", "activate_spec")
    assert own.startswith(
        "allowed: org_admin admin of hospital-a may activate_spec at site-a (org hospital-a)"
    )
    assert "submitter org hospital-a is the site's org" in own
    other = preview(custos, kits / "site-b", "admin", "hospital-a", "org_admin", "activate_spec")
    assert other == (
        "denied: org_admin admin of hospital-a may not activate_spec at site-b (org hospital-b): "
        "no condition for org_admin activate_spec ('o:site') matches admin of hospital-a at this site "
        "(org hospital-b); denied by default (built-in defaults)\n"
    )


def test_a_kit_without_the_file_uses_the_built_in_defaults(custos: CliRunner, kits: Path) -> None:
    out = preview(custos, kits / "site-b", "bob", "university", "member_researcher", "activate_spec")
    assert out == (
        "denied: member_researcher bob of university may not activate_spec at site-b (org hospital-b): "
        "no rule gives member_researcher the right activate_spec; denied by default (built-in defaults)\n"
    )


@pytest.mark.parametrize(
    ("role", "right", "expected"),
    [
        (
            "boss",
            "submit_job",
            "error: role 'boss' is not accepted; accepted roles are lead_researcher, member_researcher, "
            "org_admin, project_admin",
        ),
        (
            "gateway",
            "submit_job",
            "error: role 'gateway' is not accepted; accepted roles are lead_researcher",
        ),
        (
            "lead_researcher",
            "run",
            "error: right 'run' is not accepted; accepted rights are submit_job, activate_spec, custom_code",
        ),
    ],
)
def test_a_bad_role_or_right_is_one_line_listing_what_is_accepted(
    custos: CliRunner, kits: Path, role: str, right: str, expected: str
) -> None:
    run = custos(
        "gateway", "authz-preview", "--kit", str(kits / "site-a"), "--user", "alice", "--org", "university",
        "--role", role, "--right", right,
    )  # fmt: skip
    assert run.assert_one_line_error(1).startswith(expected)
    assert run.stdout == ""


def test_a_kit_that_is_not_a_gateways_is_refused(custos: CliRunner, kits: Path) -> None:
    run = custos(
        "gateway", "authz-preview", "--kit", str(kits / "alice"), "--user", "alice", "--org", "university",
        "--role", "lead_researcher", "--right", "submit_job",
    )  # fmt: skip
    line = run.assert_one_line_error(1)
    assert "belongs to alice (lead_researcher), not a gateway" in line


def test_a_broken_authorization_file_is_one_line_naming_the_field(
    custos: CliRunner, kits: Path, tmp_path: Path
) -> None:
    out = tmp_path / "copy"
    shutil.copytree(kits, out)
    add_signed_file(out, "site-b", "authorization.yaml", "format_version: 1\npermissions:\n  lead: any\n")
    run = custos(
        "gateway", "authz-preview", "--kit", str(out / "site-b"), "--user", "alice", "--org", "university",
        "--role", "lead_researcher", "--right", "submit_job",
    )  # fmt: skip
    line = run.assert_one_line_error(1)
    assert "authorization.yaml: permissions: role 'lead' is not accepted; accepted roles are" in line


def test_an_authorization_file_the_manifest_does_not_cover_is_refused(
    custos: CliRunner, kits: Path, tmp_path: Path
) -> None:
    out = tmp_path / "copy"
    shutil.copytree(kits, out)
    (out / "site-b" / "authorization.yaml").write_text(
        "format_version: 1\npermissions:\n  lead_researcher: any\n"
    )
    load_kit(out / "site-b")  # the kit itself still loads: the manifest does not list the added file
    run = custos(
        "gateway", "authz-preview", "--kit", str(out / "site-b"), "--user", "alice", "--org", "university",
        "--role", "lead_researcher", "--right", "submit_job",
    )  # fmt: skip
    line = run.assert_one_line_error(1)
    assert "has an authorization.yaml that its manifest does not cover" in line
    assert run.stdout == ""
