"""`custos provision create|add|revoke|unpack`, run as the admin and the participants run them."""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner as TyperRunner

from custos.cli.provision import app as provision_app
from custos.pki import load_certificate_pem, load_crl, load_kit, load_project
from custos.pki.authority import serial_hex
from custos.pki.provision import provision

from .conftest import CliRunner

PROJECT = {
    "name": "study",
    "participants": [
        {"name": "site-a", "type": "gateway", "org": "hospital-a"},
        {"name": "alice", "type": "user", "org": "university", "role": "lead_researcher"},
    ],
}
PASSWORD = "correct horse battery staple"


@pytest.fixture
def project_file(tmp_path: Path) -> Path:
    path = tmp_path / "project.yaml"
    path.write_text(yaml.safe_dump(PROJECT, sort_keys=False))
    return path


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password.txt"
    path.write_text(PASSWORD + "\n")
    return path


@pytest.fixture
def kits(project_file: Path, tmp_path: Path) -> Path:
    """The project, provisioned in-process (what `provision create` does) for tests of the other commands."""
    out = tmp_path / "kits"
    provision(load_project(project_file), out)
    return out


def digests(out: Path) -> dict[str, str]:
    files = [p for p in out.rglob("*") if p.is_file() and p.relative_to(out).parts[0] != "ca"]
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


def test_create_prints_one_line_per_kit_then_the_ca(custos: CliRunner, project_file: Path) -> None:
    run = custos("provision", "create", "project.yaml", "-o", "kits")

    assert run.code == 0, run.stderr
    assert run.stdout.splitlines() == [
        "wrote kit kits/orchestrator  (orchestrator orchestrator, org study)",
        "wrote kit kits/site-a  (gateway site-a, org hospital-a)",
        "wrote kit kits/alice  (lead_researcher alice, org university)",
        "wrote root CA kits/ca/rootCA.pem",
        "keep kits/ca/rootCA.key offline and private: it signs every certificate of project study",
    ]


def test_the_old_form_still_creates(custos: CliRunner, project_file: Path, tmp_path: Path) -> None:
    run = custos("provision", "project.yaml", "-o", "kits")

    assert run.code == 0, run.stderr
    assert run.stdout.splitlines()[0] == "wrote kit kits/orchestrator  (orchestrator orchestrator, org study)"
    assert load_kit(tmp_path / "kits" / "site-a").identity.name == "site-a"


def test_create_with_archives_then_unpack_at_the_site(
    custos: CliRunner, project_file: Path, password_file: Path, tmp_path: Path
) -> None:
    create = custos(
        "provision", "create", "project.yaml", "-o", "kits", "--archive", "--password-file", "password.txt"
    )
    unpack = custos("provision", "unpack", "kits/site-a.kit", "-o", "site", "--password-file", "password.txt")

    assert create.code == 0, create.stderr
    assert create.stdout.splitlines() == [
        "wrote kit kits/orchestrator  (orchestrator orchestrator, org study)",
        "wrote kit archive kits/site-a.kit  (gateway site-a, org hospital-a)",
        "wrote kit archive kits/alice.kit  (lead_researcher alice, org university)",
        "wrote root CA kits/ca/rootCA.pem",
        "keep kits/ca/rootCA.key offline and private: it signs every certificate of project study",
        "send each .kit file and its password by different channels; "
        "the participant runs: custos provision unpack NAME.kit -o DIR",
    ]
    assert sorted(p.name for p in (tmp_path / "kits").iterdir()) == [
        "alice.kit",
        "ca",
        "orchestrator",
        "site-a.kit",
    ]
    assert unpack.code == 0, unpack.stderr
    assert unpack.stdout.splitlines() == [
        "unpacked kit site/site-a  (gateway site-a, org hospital-a); its CA-signed manifest verifies"
    ]
    assert load_kit(tmp_path / "site" / "site-a").identity.org == "hospital-a"


def test_unpack_with_the_wrong_password_is_one_line(
    custos: CliRunner, project_file: Path, password_file: Path, tmp_path: Path
) -> None:
    custos(
        "provision", "create", "project.yaml", "-o", "kits", "--archive", "--password-file", "password.txt"
    )
    (tmp_path / "wrong.txt").write_text("not the password\n")

    line = custos(
        "provision", "unpack", "kits/alice.kit", "-o", "home", "--password-file", "wrong.txt"
    ).assert_one_line_error()

    assert line.startswith("error: wrong password or damaged archive kits/alice.kit")
    assert not (tmp_path / "home").exists()


def test_add_prints_the_new_kit_and_changes_no_other(custos: CliRunner, kits: Path, tmp_path: Path) -> None:
    before = digests(tmp_path / "kits")

    run = custos(
        *shlex.split("provision add --out kits --name site-b --org hospital-b --type gateway --days 30")
    )

    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "wrote kit kits/site-b  (gateway site-b, org hospital-b)"
    assert lines[1].startswith("added site-b to kits/ca/project.yaml; its certificate is valid until ")
    assert lines[1].endswith("; no other kit changed")
    after = digests(tmp_path / "kits")
    assert {k: v for k, v in after.items() if not k.startswith("site-b/")} == before
    cert = load_kit(tmp_path / "kits" / "site-b").certificate
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 30


def test_add_a_user_with_an_authorization_file_is_refused(
    custos: CliRunner, kits: Path, tmp_path: Path
) -> None:
    (tmp_path / "auth.yaml").write_text("allow: [university]\n")

    line = custos(
        *shlex.split(
            "provision add --out kits --name bob --org university --type user"
            " --role member_researcher --authorization auth.yaml"
        )
    ).assert_one_line_error()

    assert "only a gateway carries a site authorization file" in line


def test_add_a_gateway_with_an_authorization_file(custos: CliRunner, kits: Path, tmp_path: Path) -> None:
    (tmp_path / "auth.yaml").write_text("site: site-b\nallow:\n  - org: university\n")

    run = custos(
        *shlex.split(
            "provision add --out kits --name site-b --org hospital-b --type gateway --authorization auth.yaml"
        )
    )

    assert run.code == 0, run.stderr
    kit = load_kit(tmp_path / "kits" / "site-b")
    assert kit.authorization_path is not None
    assert yaml.safe_load(kit.authorization_path.read_text()) == {
        "site": "site-b",
        "allow": [{"org": "university"}],
    }


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--name", "site-a", "--org", "hospital-a", "--type", "gateway"],
            "already has a participant named 'site-a'",
        ),
        (
            ["--name", "bob", "--org", "university", "--type", "user"],
            "a user needs --role; accepted roles are",
        ),
        (
            ["--name", "Bad Name", "--org", "h", "--type", "gateway"],
            "new participant: name 'Bad Name' is not accepted",
        ),
    ],
    ids=["duplicate", "no-role", "bad-name"],
)
def test_add_refusals_are_one_line(
    custos: CliRunner, kits: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    before = digests(tmp_path / "kits")

    line = custos("provision", "add", "--out", "kits", *args).assert_one_line_error()

    assert expected in line
    assert digests(tmp_path / "kits") == before


def test_revoke_writes_the_list_and_says_to_push_it(custos: CliRunner, kits: Path, tmp_path: Path) -> None:
    serial = load_kit(tmp_path / "kits" / "site-a").certificate.serial_number

    first = custos("provision", "revoke", "site-a", "--out", "kits", "--reason", "laptop stolen")
    second = custos("provision", "revoke", "alice", "--out", "kits")

    assert first.code == 0, first.stderr
    lines = first.stdout.splitlines()
    assert (
        lines[0]
        == f"revoked the certificate of site-a (gateway, org hospital-a, serial {serial_hex(serial)})"
    )
    assert lines[1].startswith("wrote kits/ca/revoked.crl.pem (CRL number 1, revoked on ")
    assert lines[1].endswith(
        "push it to the orchestrator (`custos provision push-crl kits/ca/revoked.crl.pem --kit ADMIN_KIT`): "
        "until the orchestrator loads this list, site-a can still connect"
    )
    assert "(CRL number 2, " in second.stdout
    root = load_certificate_pem((tmp_path / "kits" / "ca" / "rootCA.pem").read_bytes())
    crl = load_crl((tmp_path / "kits" / "ca" / "revoked.crl.pem").read_bytes(), root)
    assert crl.number == 2
    assert serial in crl.revoked


def test_revoke_refusals_are_one_line(custos: CliRunner, kits: Path) -> None:
    custos("provision", "revoke", "site-a", "--out", "kits")

    again = custos("provision", "revoke", "site-a", "--out", "kits").assert_one_line_error()
    unknown = custos("provision", "revoke", "nobody", "--out", "kits").assert_one_line_error()

    assert "site-a" in again and "was already revoked on" in again
    assert (
        unknown
        == "error: no certificate was issued to 'nobody' in kits; issued to: orchestrator, site-a, alice"
    )


def test_password_file_without_archive_is_refused(
    custos: CliRunner, project_file: Path, password_file: Path
) -> None:
    line = custos(
        "provision", "create", "project.yaml", "-o", "kits", "--password-file", "password.txt"
    ).assert_one_line_error()

    assert line == "error: --password-file is used only with --archive"


def test_the_password_is_asked_twice_and_hidden(
    project_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = TyperRunner()

    created = runner.invoke(
        provision_app,
        ["create", "project.yaml", "-o", "kits", "--archive"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    unpacked = runner.invoke(provision_app, ["unpack", "kits/alice.kit", "-o", "home"], input=f"{PASSWORD}\n")

    assert created.exit_code == 0, created.output
    assert created.output.count("Kit archive password") == 1
    assert "Repeat for confirmation" in created.output
    assert PASSWORD not in created.output
    assert unpacked.exit_code == 0, unpacked.output
    assert "unpacked kit home/alice  (lead_researcher alice, org university)" in unpacked.output


def test_a_multi_line_password_file_is_refused(custos: CliRunner, project_file: Path, tmp_path: Path) -> None:
    (tmp_path / "two.txt").write_text("first line\nsecond line\n")

    line = custos(
        "provision", "create", "project.yaml", "-o", "kits", "--archive", "--password-file", "two.txt"
    ).assert_one_line_error()

    assert line == "error: --password-file two.txt holds more than one line; write the password alone"
    assert not (tmp_path / "kits").exists()
