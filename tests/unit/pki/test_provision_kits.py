"""What `provision` keeps and writes for kits: the saved project, the issued ledger, certificate lifetimes,
gateways' authorization files and password-protected archives."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from custos.core.errors import InvalidInput, KitError
from custos.pki import ProjectSpec, load_kit, load_project, unpack_kit_archive
from custos.pki.project import dump_project
from custos.pki.provision import default_builders, provision

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PASSWORD = b"correct horse battery staple"
RULES: dict[str, Any] = {
    "site": "site-a",
    "allow": [{"org": "university", "roles": ["lead_researcher"], "actions": ["submit"]}],
    "zeta_first": True,
}


def spec_with(**changes: Any) -> ProjectSpec:
    data: dict[str, Any] = {
        "name": "demo",
        "participants": [
            {"name": "site-a", "type": "gateway", "org": "hospital-a"},
            {"name": "alice", "type": "user", "org": "university", "role": "lead_researcher"},
        ],
    }
    return ProjectSpec.model_validate({**data, **changes})


def write_project(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "project.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_saved_project_reads_back_to_the_same_spec(tmp_path: Path) -> None:
    spec = spec_with(certificate_days=90)
    spec = spec.model_copy(
        update={"participants": [spec.participants[0].model_copy(update={"authorization": RULES})]}
    )
    provision(spec, tmp_path / "kits")

    assert load_project(tmp_path / "kits" / "ca" / "project.yaml") == spec
    assert "`custos provision add` appends" in (tmp_path / "kits" / "ca" / "project.yaml").read_text()


def test_the_ledger_lists_every_certificate_with_its_serial_and_kit(tmp_path: Path) -> None:
    kits = provision(spec_with(), tmp_path / "kits", now=NOW)

    ledger = json.loads((tmp_path / "kits" / "ca" / "issued.json").read_text())

    assert ledger["version"] == 1
    assert [(c["name"], c["role"], c["kit"]) for c in ledger["certificates"]] == [
        ("orchestrator", "orchestrator", "orchestrator"),
        ("site-a", "gateway", "site-a"),
        ("alice", "lead_researcher", "alice"),
    ]
    for record, kit in zip(ledger["certificates"], kits, strict=True):
        cert = load_kit(kit).certificate
        assert int(record["serial"], 16) == cert.serial_number
        assert len(record["serial"]) % 2 == 0
        assert record["not_after"] == "2028-06-03T12:00:00Z"  # 825 days after NOW
        assert record["revoked_at"] is None


def test_certificate_days_sets_every_certificates_lifetime(tmp_path: Path) -> None:
    kits = provision(spec_with(certificate_days=30), tmp_path / "kits", now=NOW)

    assert {load_kit(k).certificate.not_valid_after_utc for k in kits} == {NOW + timedelta(days=30)}


def test_certificate_days_defaults_to_825(tmp_path: Path) -> None:
    assert spec_with().certificate_days == 825
    kits = provision(spec_with(), tmp_path / "kits", now=NOW)

    assert load_kit(kits[1]).certificate.not_valid_after_utc == NOW + timedelta(days=825)


def test_a_participant_may_have_its_own_lifetime(tmp_path: Path) -> None:
    text = (
        "name: demo\ncertificate_days: 60\nparticipants:\n"
        "  - {name: site-a, type: gateway, org: h, certificate_days: 7}\n"
        "  - {name: site-b, type: gateway, org: h}\n"
    )
    kits = provision(load_project(write_project(tmp_path, text)), tmp_path / "kits", now=NOW)

    assert [load_kit(k).certificate.not_valid_after_utc - NOW for k in kits] == [
        timedelta(days=60),
        timedelta(days=7),
        timedelta(days=60),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("certificate_days: 0\n", "certificate_days: Input should be greater than or equal to 1"),
        ("certificate_days: 4000\n", "certificate_days: Input should be less than or equal to 3650"),
        ("certificate_days: soon\n", "certificate_days: Input should be a valid integer"),
    ],
)
def test_bad_certificate_days_are_named(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(InvalidInput, match=expected):
        load_project(write_project(tmp_path, "name: demo\n" + text))


def test_a_gateways_authorization_is_written_in_its_own_order_and_signed(tmp_path: Path) -> None:
    text = "name: demo\nparticipants:\n  - name: site-a\n    type: gateway\n    org: h\n    authorization:\n"
    text += "".join(f"      {line}\n" for line in yaml.safe_dump(RULES, sort_keys=False).splitlines())
    kits = provision(load_project(write_project(tmp_path, text)), tmp_path / "kits")
    site_a = kits[1]

    written = (site_a / "authorization.yaml").read_text()
    assert written == yaml.safe_dump(RULES, sort_keys=False)
    assert list(yaml.safe_load(written)) == ["site", "allow", "zeta_first"]
    assert "authorization.yaml" in json.loads((site_a / "manifest.json").read_text())["files"]
    assert load_kit(site_a).authorization_path == site_a / "authorization.yaml"
    assert load_kit(kits[0]).authorization_path is None


def test_an_edited_authorization_file_stops_the_kit(tmp_path: Path) -> None:
    spec = spec_with()
    spec = spec.model_copy(
        update={"participants": [spec.participants[0].model_copy(update={"authorization": RULES})]}
    )
    kits = provision(spec, tmp_path / "kits")

    (kits[1] / "authorization.yaml").write_text("allow: everyone\n")

    with pytest.raises(KitError, match=r"authorization\.yaml that differs from the one provisioned"):
        load_kit(kits[1])


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            "{name: site-a, type: gateway, org: h, authorization: [a, b]}",
            "participants.0.authorization: authorization must be a mapping (key: value lines), not list",
        ),
        (
            "{name: site-a, type: gateway, org: h, authorization: text}",
            "authorization must be a mapping (key: value lines), not str",
        ),
        (
            "{name: alice, type: user, org: h, role: lead_researcher, authorization: {a: 1}}",
            "only a gateway carries a site authorization file",
        ),
    ],
)
def test_an_authorization_that_is_not_a_gateways_mapping_is_refused(
    tmp_path: Path, entry: str, expected: str
) -> None:
    with pytest.raises(InvalidInput, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_project(write_project(tmp_path, f"name: demo\nparticipants:\n  - {entry}\n"))


def test_an_oversized_authorization_is_refused(tmp_path: Path) -> None:
    big = {"notes": "x" * (64 * 1024)}

    with pytest.raises(ValueError, match=r"authorization is larger than 65536 bytes"):
        spec_with(participants=[{"name": "site-a", "type": "gateway", "org": "h", "authorization": big}])


def test_dump_project_leaves_out_unset_options() -> None:
    text = dump_project(spec_with())

    assert "authorization" not in text
    assert "certificate_days: 825" in text
    assert "certificate_days" not in text.split("participants:")[1]


def test_with_a_password_gateway_and_user_kits_become_archives(tmp_path: Path, fast_scrypt: None) -> None:
    out = tmp_path / "kits"

    kits = provision(spec_with(), out, archive_password=PASSWORD)

    assert kits == [out / "orchestrator", out / "site-a.kit", out / "alice.kit"]
    assert sorted(p.name for p in out.iterdir()) == ["alice.kit", "ca", "orchestrator", "site-a.kit"]
    assert load_kit(out / "orchestrator").identity.name == "orchestrator"
    ledger = json.loads((out / "ca" / "issued.json").read_text())
    assert [c["kit"] for c in ledger["certificates"]] == ["orchestrator", "site-a.kit", "alice.kit"]
    for name in ("site-a", "alice"):
        unpacked = unpack_kit_archive(out / f"{name}.kit", tmp_path / "received", PASSWORD)
        assert load_kit(unpacked).identity.name == name
        assert (unpacked / "rootCA.pem").read_bytes() == (out / "ca" / "rootCA.pem").read_bytes()


def test_a_short_archive_password_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"too short"):
        provision(spec_with(), tmp_path / "kits", archive_password=b"short")

    assert list(tmp_path.iterdir()) == []


def test_an_archive_name_that_collides_with_a_participant_is_refused(
    tmp_path: Path, fast_scrypt: None
) -> None:
    spec = spec_with(
        participants=[
            {"name": "bob", "type": "user", "org": "u", "role": "lead_researcher"},
            {"name": "bob.kit", "type": "user", "org": "u", "role": "lead_researcher"},
        ]
    )

    with pytest.raises(InvalidInput, match=r"cannot archive the kit of bob: bob\.kit is also a participant"):
        provision(spec, tmp_path / "kits", archive_password=PASSWORD)

    assert list(tmp_path.iterdir()) == []


def test_builders_and_a_password_do_not_mix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"either builders or archive_password"):
        provision(spec_with(), tmp_path / "kits", builders=default_builders(), archive_password=PASSWORD)
