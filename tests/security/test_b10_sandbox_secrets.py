"""B10: a job cannot read /etc/shadow, the gateway's keys, other folders of the host, or /proc/1/environ."""

from __future__ import annotations

import json
import os
import secrets
import textwrap
from pathlib import Path

import pytest

from custos.sandbox import Bind, BubblewrapRunner, SandboxLimits, SandboxRequest

LIMITS = SandboxLimits(cpu_seconds=20, wall_seconds=60, max_processes=32)

PROBE = """
import json, os, sys
targets, unique = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))
opened = {}
for path in targets + ["/etc/shadow", "/etc/passwd", "/proc/1/environ", "/root/.ssh/id_rsa"]:
    try:
        with open(path, "rb") as f:
            f.read(1)
        opened[path] = "read"
    except OSError as error:
        opened[path] = type(error).__name__
names = set()
for top, folders, files in os.walk("/"):
    if top == "/":
        folders[:] = [f for f in folders if f not in ("proc", "sys", "dev", "usr")]
    names.update(files + folders)
print(json.dumps({"opened": opened, "found": sorted(unique & names)}))
"""


@pytest.fixture(scope="module")
def runner(sandbox_runner: BubblewrapRunner) -> BubblewrapRunner:
    return sandbox_runner  # each runner in turn (tests/conftest.py)


def test_b10_sandbox_cannot_read_gateway_key(runner: BubblewrapRunner, tmp_path: Path) -> None:
    token = secrets.token_hex(6)
    kit = tmp_path / f"kit-{token}"
    kit.mkdir(mode=0o700)
    key = kit / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n")
    key.chmod(0o600)
    dataset = tmp_path / "elsewhere" / f"patients-{token}.csv"
    dataset.parent.mkdir()
    dataset.write_text("id,age\n1,34\n")
    task = tmp_path / "task"
    task.mkdir()
    (task / "input.json").write_text("{}")
    output = tmp_path / "output"
    output.mkdir()

    result = runner.run(
        SandboxRequest(
            argv=[
                "-c",
                textwrap.dedent(PROBE),
                json.dumps([str(key), str(dataset), str(task / "input.json")]),
                json.dumps([kit.name, dataset.name]),
            ],
            output_dir=output,
            binds=[Bind(task, "/task")],
            limits=LIMITS,
        )
    )

    assert result.ok, result.stderr
    seen = json.loads(result.stdout)
    assert seen["found"] == []  # neither the kit nor the dataset is anywhere in the sandbox
    opened = seen["opened"]
    assert opened.pop(str(key)) == "FileNotFoundError"
    assert opened.pop(str(dataset)) == "FileNotFoundError"
    assert opened.pop(str(task / "input.json")) == "FileNotFoundError"  # only visible at /task
    assert opened.pop("/etc/shadow") == "FileNotFoundError"
    environ = opened.pop("/proc/1/environ")
    if os.geteuid() == 0:
        assert environ == "PermissionError"  # the sandbox's init belongs to root, the job does not
    assert "read" not in opened.values()
