"""Provisioning writes the CA and every kit, all or nothing, and `custos provision` reports them."""

from __future__ import annotations

import ipaddress
import json
import os
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from cryptography import x509
from typer.testing import CliRunner

from custos.cli.provision import app as provision_app
from custos.cli.provision import create_command
from custos.core.errors import InvalidInput
from custos.core.identity import Identity, Role
from custos.pki import load_certificate_pem, load_kit, load_private_key_pem, verify_certificate
from custos.pki.project import ProjectSpec
from custos.pki.provision import ProvisionContext, default_builders, provision

from .conftest import PROJECT

SPEC = ProjectSpec.model_validate(PROJECT)


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_provision_writes_the_ca_and_one_kit_per_participant(tmp_path: Path) -> None:
    out = tmp_path / "kits"

    kits = provision(SPEC, out)

    assert kits == [out / "orchestrator", out / "site-a", out / "alice@uni.org"]
    kit_files = ["cert.pem", "config.json", "key.pem", "manifest.json", "rootCA.pem", "start.sh"]
    folders = ["orchestrator", "site-a", "alice@uni.org"]
    assert tree(out) == sorted(
        ["ca", "ca/issued.json", "ca/project.yaml", "ca/rootCA.key", "ca/rootCA.pem", *folders]
        + [f"{k}/{f}" for k in folders for f in kit_files]
    )
    assert stat.S_IMODE((out / "ca" / "rootCA.key").stat().st_mode) == 0o600
    for kit in kits:
        assert stat.S_IMODE((kit / "key.pem").stat().st_mode) == 0o600
        assert os.access(kit / "start.sh", os.X_OK)


def test_every_kit_is_signed_by_the_project_ca_and_the_ca_key_is_in_no_kit(tmp_path: Path) -> None:
    out = tmp_path / "kits"
    kits = provision(SPEC, out)
    root = load_certificate_pem((out / "ca" / "rootCA.pem").read_bytes())
    ca_key_pem = (out / "ca" / "rootCA.key").read_bytes()
    load_private_key_pem(ca_key_pem)

    identities = [verify_certificate(load_kit(kit).certificate, root, datetime.now(UTC)) for kit in kits]

    assert identities == [
        Identity(name="orchestrator", org="demo", role=Role.ORCHESTRATOR),
        Identity(name="site-a", org="hospital-a", role=Role.GATEWAY),
        Identity(name="alice@uni.org", org="university", role=Role.LEAD_RESEARCHER),
    ]
    for kit in kits:
        assert (kit / "rootCA.pem").read_bytes() == (out / "ca" / "rootCA.pem").read_bytes()
        for file in kit.iterdir():
            assert ca_key_pem not in file.read_bytes()


def test_orchestrator_kit_names_its_host_and_where_to_listen(tmp_path: Path) -> None:
    spec = SPEC.model_copy(
        update={"orchestrator": SPEC.orchestrator.model_copy(update={"host": "custos.example.org"})}
    )
    out = tmp_path / "kits"
    provision(spec, out)

    orchestrator = load_kit(out / "orchestrator")
    san = orchestrator.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    gateway_config = json.loads((out / "site-a" / "config.json").read_text())

    assert san.get_values_for_type(x509.DNSName) == ["custos.example.org", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert (orchestrator.config.listen_host, orchestrator.config.listen_port) == ("0.0.0.0", 8443)
    assert orchestrator.config.orchestrator_url == "https://custos.example.org:8443"
    assert gateway_config["orchestrator_url"] == "https://custos.example.org:8443"
    assert gateway_config["listen_host"] is None


def test_orchestrator_on_an_ip_listens_on_that_ip(tmp_path: Path) -> None:
    provision(SPEC, tmp_path / "kits")

    config = load_kit(tmp_path / "kits" / "orchestrator").config

    assert (config.listen_host, config.listen_port, config.kind, config.role) == (
        "127.0.0.1",
        8443,
        "orchestrator",
        "orchestrator",
    )


def test_start_scripts(tmp_path: Path) -> None:
    out = tmp_path / "kits"
    provision(SPEC, out)
    # A stand-in `custos` on PATH that prints its arguments, to see what each start.sh would run.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "custos").write_text('#!/bin/sh\necho "custos $*"\n')
    (bin_dir / "custos").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}

    def run(kit: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(out / kit / "start.sh"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    orchestrator = run("orchestrator", "--workers", "2")
    gateway = run("site-a", "datasets.yaml")
    gateway_without_data = run("site-a")
    user = run("alice@uni.org")

    assert orchestrator.stdout == f"custos orchestrator start --kit {out / 'orchestrator'} --workers 2\n"
    assert gateway.stdout == f"custos gateway start --kit {out / 'site-a'} --data datasets.yaml\n"
    assert gateway_without_data.returncode != 0
    assert "usage: start.sh DATASETS.yaml" in gateway_without_data.stderr
    assert user.returncode == 0
    assert f'custos dataset list --kit "{out / "alice@uni.org"}"' in user.stdout
    assert "Keep key.pem private" in user.stdout


def test_non_empty_output_folder_is_refused_and_left_untouched(tmp_path: Path) -> None:
    out = tmp_path / "kits"
    out.mkdir()
    (out / "notes.txt").write_text("mine")

    with pytest.raises(InvalidInput, match=r"already exists and is not empty"):
        provision(SPEC, out)

    assert tree(tmp_path) == ["kits", "kits/notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"


def test_output_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "kits").write_text("mine")

    with pytest.raises(InvalidInput, match=r"already exists"):
        provision(SPEC, tmp_path / "kits")

    assert tree(tmp_path) == ["kits"]


def test_empty_output_folder_is_used(tmp_path: Path) -> None:
    (tmp_path / "kits").mkdir()

    provision(SPEC, tmp_path / "kits")

    assert sorted(p.name for p in (tmp_path / "kits").iterdir()) == [
        "alice@uni.org",
        "ca",
        "orchestrator",
        "site-a",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["kits"]


class FailingBuilder:
    """A builder that fails after the kits are written, as a full disk would."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def initialize(self, ctx: ProvisionContext) -> None:
        pass

    def build(self, ctx: ProvisionContext) -> None:
        self.seen = sorted(p.name for p in ctx.workspace.iterdir())
        raise OSError(28, "No space left on device")

    def finalize(self, ctx: ProvisionContext) -> None:
        pass


def test_a_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    failing = FailingBuilder()

    with pytest.raises(OSError, match=r"No space left"):
        provision(SPEC, tmp_path / "kits", builders=[*default_builders(), failing])

    assert failing.seen == ["alice@uni.org", "ca", "orchestrator", "site-a"]  # the work was under way
    assert list(tmp_path.iterdir()) == []


def test_builders_are_finalized_in_reverse_order(tmp_path: Path) -> None:
    calls: list[str] = []

    class Recorder:
        def __init__(self, name: str) -> None:
            self.name = name

        def initialize(self, ctx: ProvisionContext) -> None:
            calls.append(f"initialize {self.name}")

        def build(self, ctx: ProvisionContext) -> None:
            calls.append(f"build {self.name}")

        def finalize(self, ctx: ProvisionContext) -> None:
            calls.append(f"finalize {self.name}")

    kits = provision(SPEC, tmp_path / "out", builders=[Recorder("a"), Recorder("b")])

    assert calls == ["initialize a", "initialize b", "build a", "build b", "finalize b", "finalize a"]
    assert kits == []
    assert (tmp_path / "out").is_dir()


def test_provision_command_prints_one_line_per_kit(tmp_path: Path) -> None:
    project_file = tmp_path / "project.yaml"
    project_file.write_text(
        "name: demo\nparticipants:\n  - {name: site-a, type: gateway, org: hospital-a}\n", encoding="utf-8"
    )
    app = typer.Typer()
    app.add_typer(provision_app, name="provision")

    result = CliRunner().invoke(app, ["provision", "create", str(project_file), "-o", str(tmp_path / "out")])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"wrote kit {tmp_path / 'out' / 'orchestrator'}  (orchestrator orchestrator, org demo)"
    assert lines[1] == f"wrote kit {tmp_path / 'out' / 'site-a'}  (gateway site-a, org hospital-a)"
    assert lines[2] == f"wrote root CA {tmp_path / 'out' / 'ca' / 'rootCA.pem'}"
    assert "offline and private" in lines[3]


def test_provision_command_lets_project_errors_through(tmp_path: Path) -> None:
    project_file = tmp_path / "project.yaml"
    project_file.write_text("name: demo\nextra: 1\n", encoding="utf-8")

    with pytest.raises(InvalidInput, match=r"extra: unknown field"):
        create_command(project_file, tmp_path / "out")

    assert not (tmp_path / "out").exists()
