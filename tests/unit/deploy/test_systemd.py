"""The systemd units in deploy/systemd/ are what `systemd-analyze verify` accepts without a warning,
and the gateway's keeps out the hardening that would break bubblewrap (docs/operations.md)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[3] / "deploy" / "systemd"
INSTALLED_PATH = "/opt/custos/bin/custos"
ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed here (no systemd): the units are not verified"
)
# Options bubblewrap cannot run under (each over-mounts /proc, forbids its namespaces, or its cgroups).
NOT_FOR_THE_GATEWAY = {
    "RestrictNamespaces",
    "PrivateUsers",
    "ProtectKernelTunables",
    "ProtectKernelLogs",
    "ProtectProc",
    "ProcSubset",
    "ProtectControlGroups",
    "SystemCallFilter",
    "MemoryDenyWriteExecute",
}


def _service(name: str) -> dict[str, str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name, encoding="utf-8")
    return dict(parser["Service"])


def _verify(
    tmp_path: Path, *units: str, edit: tuple[str, str] = ("", "")
) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` on copies whose ExecStart names this checkout's custos (the installed
    path does not exist here), with `edit` (old, new) made; the gateway's template is verified as an
    instance."""
    custos = str(Path(sys.executable).with_name("custos"))
    names = []
    for unit in units:
        text = (UNITS / unit).read_text(encoding="utf-8").replace(INSTALLED_PATH, custos)
        if edit[0]:
            text = text.replace(*edit)
        name = unit.replace("@.", "@site-a.")
        (tmp_path / unit).write_text(text, encoding="utf-8")
        if name != unit:
            (tmp_path / name).symlink_to(unit)
        names.append(f"./{name}")
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, "verify", "--man=no", *names], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


@needs_systemd
def test_the_units_verify_without_a_warning(tmp_path: Path) -> None:
    done = _verify(tmp_path, "custos-orchestrator.service", "custos-gateway@.service")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


@needs_systemd
def test_verify_reports_a_wrong_option(tmp_path: Path) -> None:
    # The check above would pass on anything if verify never spoke: a misspelt option must be reported.
    done = _verify(
        tmp_path, "custos-orchestrator.service", edit=("ProtectHome=yes", "ProtectHome=yes\nProtectHomme=yes")
    )
    assert "ProtectHomme" in done.stderr


def test_the_gateway_keeps_out_what_breaks_bubblewrap_and_delegates_cgroups() -> None:
    gateway = _service("custos-gateway@.service")
    assert NOT_FOR_THE_GATEWAY.isdisjoint(gateway)
    assert gateway["Delegate"] == "yes"
    assert gateway["NoNewPrivileges"] == "yes"
    assert gateway["CapabilityBoundingSet"] == ""


def test_the_orchestrator_takes_the_hardening_the_gateway_cannot() -> None:
    orchestrator = _service("custos-orchestrator.service")
    assert NOT_FOR_THE_GATEWAY - {"MemoryDenyWriteExecute"} <= set(orchestrator)
    assert orchestrator["RestrictNamespaces"] == "yes"
    assert orchestrator["NoNewPrivileges"] == "yes"
