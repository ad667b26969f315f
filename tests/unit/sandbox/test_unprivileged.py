"""The runner as a non-root gateway uses it: unprivileged bubblewrap in a user namespace.

The test drops to an unused uid with setpriv and drives the runner from the system Python, which that
uid can reach (the project's interpreter may live in a folder only root can enter).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import custos

GATEWAY_UID = 300_123  # outside the range the runner hands to sandboxes
SYSTEM_PYTHON = Path("/usr/bin/python3")
SOURCE_ROOT = Path(custos.__file__).resolve().parents[1]

DRIVER = """
import json, sys
from pathlib import Path
from custos.sandbox import BubblewrapRunner, SandboxLimits, SandboxRequest

runner = BubblewrapRunner(python=Path(sys.executable))
output = Path(sys.argv[1])
fast = SandboxLimits(cpu_seconds=5, wall_seconds=20, max_processes=24)
report = {"privileged": runner.privileged, "whole_run": runner.whole_run_limits}

ok = runner.run(SandboxRequest(argv=["-c", '''
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
json.dump({"uid": os.getuid(), "caps": status["CapEff"].strip(), "nnp": status["NoNewPrivs"].strip(),
           "unshare": libc.unshare(0x10000000)}, open("/output/result.json", "w"))
'''], output_dir=output, limits=fast))
report["ok"] = [ok.failure, ok.stderr]
report["inside"] = json.load(open(output / "result.json"))
bomb_code = "import os\\nwhile True: os.fork()"
bomb = runner.run(SandboxRequest(argv=["-c", bomb_code], output_dir=output, limits=fast))
report["bomb"] = bomb.failure
slow = runner.run(SandboxRequest(
    argv=["-c", "import time; time.sleep(600)"], output_dir=output,
    limits=SandboxLimits(wall_seconds=1, max_processes=24),
))
report["slow"] = slow.failure
spin = runner.run(SandboxRequest(
    argv=["-c", "import signal\\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\\nwhile True: pass"],
    output_dir=output, limits=SandboxLimits(cpu_seconds=1, wall_seconds=30, max_processes=24),
))
report["spin"] = spin.failure
print(json.dumps(report))
"""


def _searchable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


@pytest.fixture
def reachable_tmp() -> Iterator[Path]:
    """A fresh folder other users can search (not list), in a temp folder they can search: not below
    pytest's own, whose permissions any pytest session that starts meanwhile resets to owner-only."""
    folder = Path(tempfile.mkdtemp(prefix="custos-non-root-"))
    try:
        folder.chmod(0o711)
        if not _searchable_by_others(folder):
            pytest.skip(f"{folder.parent} is not searchable by other users")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")
def test_a_non_root_gateway_gets_the_same_guarantees(reachable_tmp: Path) -> None:
    if shutil.which("bwrap") is None or shutil.which("setpriv") is None:
        pytest.skip("needs bubblewrap and setpriv")
    if not SYSTEM_PYTHON.exists() or not _searchable_by_others(SOURCE_ROOT):
        pytest.skip("needs a system Python and a source tree other users can read")
    version = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import sys; print(sys.version_info >= (3, 11))"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if version.stdout.strip() != "True":
        pytest.skip("the system Python is older than 3.11")
    output = reachable_tmp / "output"
    output.mkdir()
    os.chown(output, GATEWAY_UID, GATEWAY_UID)
    driver = reachable_tmp / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER))
    driver.chmod(0o644)

    done = subprocess.run(
        [
            *("setpriv", f"--reuid={GATEWAY_UID}", f"--regid={GATEWAY_UID}", "--clear-groups", "--"),
            *(str(SYSTEM_PYTHON), str(driver), str(output)),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=reachable_tmp,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SOURCE_ROOT), "HOME": str(reachable_tmp)},
        check=False,
    )

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["privileged"] is False
    # A non-root gateway cannot make cgroups: per-process limits, said once on stderr (three runs here).
    assert report["whole_run"] is False
    assert done.stderr.count("sandboxed runs get per-process limits only") == 1, done.stderr
    assert report["ok"][0] is None, report["ok"][1]
    assert report["inside"] == {"uid": GATEWAY_UID, "caps": "0000000000000000", "nnp": "1", "unshare": -1}
    assert report["bomb"] == "process limit of 24 reached"
    assert report["slow"] == "wall-clock limit of 1 s exceeded"
    # Killed at the hard CPU limit, having ignored SIGXCPU: still named, without a cgroup to count.
    assert report["spin"] == "CPU time limit of 1 s exceeded"
    assert _processes_of(GATEWAY_UID) == []


def _processes_of(uid: int) -> list[str]:
    """Running processes of `uid`. Zombies are left out: the namespace's init ends as one until the
    host's init collects its exit status, and a zombie runs nothing."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields and int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
            found.append(f"{entry.name} {fields['Name'].strip()} {fields['State'].strip()}")
    return found
