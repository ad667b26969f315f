"""B13: setuid binaries, ptrace, mount and unshare are denied: no capabilities, no_new_privs, seccomp."""

from __future__ import annotations

import json
import os
import stat
import textwrap
from pathlib import Path

import pytest

from custos.sandbox import BubblewrapRunner, SandboxLimits, SandboxRequest

LIMITS = SandboxLimits(cpu_seconds=10, wall_seconds=30, max_processes=32)
MOUNT = Path("/usr/bin/mount")

PROBE = """
import ctypes, json, os, signal, subprocess, time
libc = ctypes.CDLL(None, use_errno=True)
seen = {}
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
    seen[key] = status[key].strip()
seen["uid"] = os.getuid()

def call(key, name, *args):
    ctypes.set_errno(0)
    result = getattr(libc, name)(*args)
    seen[key] = "allowed" if result == 0 else os.strerror(ctypes.get_errno())

call("unshare_user", "unshare", 0x10000000)     # CLONE_NEWUSER
call("unshare_mount", "unshare", 0x00020000)    # CLONE_NEWNS
call("mount", "mount", b"none", b"/tmp", b"tmpfs", 0, None)
call("chroot", "chroot", b"/tmp")
try:
    os.setuid(0)
    seen["setuid"] = "allowed"
except OSError as error:
    seen["setuid"] = error.strerror

child = os.fork()
if child == 0:
    time.sleep(30)
    os._exit(0)
ctypes.set_errno(0)
seen["ptrace"] = "allowed" if libc.ptrace(16, child, None, None) == 0 else os.strerror(ctypes.get_errno())
os.kill(child, signal.SIGKILL)
os.waitpid(child, 0)

mount = subprocess.run(["/usr/bin/mount", "-t", "tmpfs", "none", "/tmp"], capture_output=True, text=True)
seen["setuid_mount_exit"] = mount.returncode
seen["unshare_tool_exit"] = subprocess.run(["/usr/bin/unshare", "-U", "true"], capture_output=True).returncode
print(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def runner(sandbox_runner: BubblewrapRunner) -> BubblewrapRunner:
    return sandbox_runner  # each runner in turn (tests/conftest.py)


@pytest.mark.skipif(
    not MOUNT.exists() or not Path("/usr/bin/unshare").exists(), reason="needs mount and unshare"
)
def test_b13_no_privileges(runner: BubblewrapRunner, tmp_path: Path) -> None:
    output = tmp_path / "output"
    output.mkdir()

    result = runner.run(SandboxRequest(argv=["-c", textwrap.dedent(PROBE)], output_dir=output, limits=LIMITS))

    assert result.ok, result.stderr
    seen = json.loads(result.stdout)
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(seen[key], 16) == 0, key
    assert seen["NoNewPrivs"] == "1"
    assert seen["Seccomp"] == "2"  # a filter is installed
    for call in ("unshare_user", "unshare_mount", "mount", "chroot", "setuid", "ptrace"):
        assert seen[call] == "Operation not permitted", call
    if MOUNT.stat().st_mode & stat.S_ISUID:
        assert seen["setuid_mount_exit"] != 0  # the setuid bit gives nothing under no_new_privs
    assert seen["unshare_tool_exit"] != 0
    if os.geteuid() == 0:
        assert seen["uid"] != 0
