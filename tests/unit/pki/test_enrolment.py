"""Adding a participant later: one new kit from the same CA, recorded, and no byte of another kit changed."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from custos.core.errors import Conflict, InvalidInput
from custos.core.identity import Identity, Role
from custos.pki import (
    ParticipantSpec,
    ProjectSpec,
    add_participant,
    create_root_ca,
    load_certificate_pem,
    load_kit,
    private_key_pem,
    unpack_kit_archive,
    verify_certificate,
)
from custos.pki import enrolment as enrolment_module
from custos.pki.project import load_project
from custos.pki.provision import provision

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PASSWORD = b"correct horse battery staple"
SITE_B = ParticipantSpec.model_validate({"name": "site-b", "type": "gateway", "org": "hospital-b"})


def every_file_digest(out: Path) -> dict[str, str]:
    """SHA-256 of every file in every kit folder and archive, outside the CA folder."""
    files = [p for p in out.rglob("*") if p.is_file() and p.relative_to(out).parts[0] != "ca"]
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


def test_add_issues_a_kit_from_the_same_ca_and_changes_no_other_kit(kits: Path) -> None:
    before = every_file_digest(kits)

    path = add_participant(kits, SITE_B)

    after = every_file_digest(kits)
    assert path == kits / "site-b"
    assert {k: v for k, v in after.items() if not k.startswith("site-b/")} == before
    assert sorted(k for k in after if k.startswith("site-b/")) == [
        f"site-b/{name}"
        for name in ["cert.pem", "config.json", "key.pem", "manifest.json", "rootCA.pem", "start.sh"]
    ]
    kit = load_kit(path)
    root = load_certificate_pem((kits / "ca" / "rootCA.pem").read_bytes())
    assert verify_certificate(kit.certificate, root, datetime.now(UTC)) == Identity(
        name="site-b", org="hospital-b", role=Role.GATEWAY
    )
    assert kit.config.project == "demo"
    assert kit.config.orchestrator_url == "https://127.0.0.1:8443"
    assert stat.S_IMODE((path / "key.pem").stat().st_mode) == 0o600
    assert sorted(p.name for p in kits.iterdir()) == [
        "alice@uni.org",
        "ca",
        "orchestrator",
        "site-a",
        "site-b",
    ]


def test_add_appends_the_participant_to_the_saved_project_and_ledger(kits: Path) -> None:
    add_participant(kits, SITE_B)

    spec = load_project(kits / "ca" / "project.yaml")
    ledger = json.loads((kits / "ca" / "issued.json").read_text())
    assert [p.name for p in spec.participants] == ["site-a", "alice@uni.org", "site-b"]
    assert [c["name"] for c in ledger["certificates"]] == [
        "orchestrator",
        "site-a",
        "alice@uni.org",
        "site-b",
    ]
    serial = load_kit(kits / "site-b").certificate.serial_number
    assert int(ledger["certificates"][-1]["serial"], 16) == serial
    assert ledger["certificates"][-1]["kit"] == "site-b"


def test_a_second_add_sees_the_first(kits: Path) -> None:
    add_participant(kits, SITE_B)
    bob = ParticipantSpec.model_validate(
        {"name": "bob", "type": "user", "org": "university", "role": "member_researcher"}
    )

    add_participant(kits, bob)

    assert [p.name for p in load_project(kits / "ca" / "project.yaml").participants][-2:] == ["site-b", "bob"]
    assert load_kit(kits / "bob").identity.role is Role.MEMBER_RESEARCHER


@pytest.mark.parametrize(
    ("name", "holder"),
    [
        ("site-a", "gateway of org hospital-a"),
        ("alice@uni.org", "lead_researcher of org university"),
        ("orchestrator", "the orchestrator"),
        ("ca", "reserved for the root CA folder"),
    ],
)
def test_a_taken_name_is_refused_with_one_line(kits: Path, name: str, holder: str) -> None:
    before = every_file_digest(kits)
    ca_before = {p.name: p.read_bytes() for p in (kits / "ca").iterdir()}
    data = {"name": name, "type": "user", "org": "university", "role": "member_researcher"}

    with pytest.raises(Conflict) as caught:
        add_participant(kits, ParticipantSpec.model_validate(data))

    assert caught.value.message == (
        f"project demo already has a participant named {name!r} ({holder}); "
        "names are unique within a project, so pick another"
    )
    assert every_file_digest(kits) == before
    assert {p.name: p.read_bytes() for p in (kits / "ca").iterdir()} == ca_before


def test_a_name_differing_only_in_case_is_the_same_name(kits: Path) -> None:
    with pytest.raises(Conflict, match=r"named 'site-a'"):
        add_participant(
            kits, ParticipantSpec.model_validate({"name": "SITE-A", "type": "gateway", "org": "h"})
        )


def test_a_folder_in_the_way_is_refused(kits: Path) -> None:
    (kits / "site-b").mkdir()

    with pytest.raises(Conflict, match=r"site-b already exists"):
        add_participant(kits, SITE_B)

    assert list((kits / "site-b").iterdir()) == []


def test_certificate_days_of_the_participant_wins_over_the_projects(kits: Path) -> None:
    short = SITE_B.model_copy(update={"certificate_days": 30})

    add_participant(kits, short, now=NOW)

    cert = load_kit(kits / "site-b").certificate
    assert cert.not_valid_after_utc == NOW + timedelta(days=30)


def test_the_projects_certificate_days_apply_by_default(tmp_path: Path) -> None:
    out = tmp_path / "kits"
    provision(ProjectSpec.model_validate({"name": "demo", "certificate_days": 90}), out, now=NOW)

    add_participant(out, SITE_B, now=NOW)

    assert load_kit(out / "site-b").certificate.not_valid_after_utc == NOW + timedelta(days=90)
    assert load_kit(out / "orchestrator").certificate.not_valid_after_utc == NOW + timedelta(days=90)


def test_a_gateway_added_with_an_authorization_carries_it_signed(kits: Path) -> None:
    rules = {"site": "site-b", "allow": [{"org": "university", "roles": ["lead_researcher"]}]}

    add_participant(kits, SITE_B.model_copy(update={"authorization": rules}))

    kit = load_kit(kits / "site-b")
    assert kit.authorization_path == kits / "site-b" / "authorization.yaml"
    assert yaml.safe_load(kit.authorization_path.read_text()) == rules
    assert "authorization.yaml" in json.loads((kits / "site-b" / "manifest.json").read_text())["files"]


def test_add_with_a_password_writes_an_archive_only(kits: Path, tmp_path: Path, fast_scrypt: None) -> None:
    path = add_participant(kits, SITE_B, archive_password=PASSWORD)

    assert path == kits / "site-b.kit"
    assert not (kits / "site-b").exists()
    assert json.loads((kits / "ca" / "issued.json").read_text())["certificates"][-1]["kit"] == "site-b.kit"
    unpacked = unpack_kit_archive(path, tmp_path / "received", PASSWORD)
    assert load_kit(unpacked).identity.name == "site-b"


def test_a_failure_while_recording_leaves_nothing_behind(kits: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = every_file_digest(kits)
    ca_before = {p.name: p.read_bytes() for p in (kits / "ca").iterdir()}
    real_write = enrolment_module.write_atomic

    def failing_write(path: Path, data: str | bytes, *, mode: int = 0o644) -> None:
        if path.name == "issued.json":
            raise OSError(28, "No space left on device")
        real_write(path, data, mode=mode)

    monkeypatch.setattr(enrolment_module, "write_atomic", failing_write)

    with pytest.raises(OSError, match=r"No space left"):
        add_participant(kits, SITE_B)

    assert every_file_digest(kits) == before
    assert {p.name: p.read_bytes() for p in (kits / "ca").iterdir()} == ca_before
    assert sorted(p.name for p in kits.iterdir()) == ["alice@uni.org", "ca", "orchestrator", "site-a"]


def test_add_without_a_ca_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"has no ca/ folder; pass the -o folder"):
        add_participant(tmp_path, SITE_B)


def test_add_to_a_folder_from_before_the_saved_project_is_refused(kits: Path) -> None:
    (kits / "ca" / "project.yaml").unlink()

    with pytest.raises(InvalidInput, match=r"project\.yaml is missing"):
        add_participant(kits, SITE_B)


def test_a_foreign_ca_key_is_refused(kits: Path, tmp_path: Path) -> None:
    _, other_key = create_root_ca("demo")
    (kits / "ca" / "rootCA.key").chmod(0o600)
    (kits / "ca" / "rootCA.key").write_bytes(private_key_pem(other_key))

    with pytest.raises(InvalidInput, match=r"rootCA\.key is not the key of .*rootCA\.pem"):
        add_participant(kits, SITE_B)
    assert not (kits / "site-b").exists()
