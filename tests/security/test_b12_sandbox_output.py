"""B12: a job cannot write outside its output folder, and cannot fill it past the output quota."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

from custos.sandbox import Bind, BubblewrapRunner, SandboxLimits, SandboxRequest, SandboxResult

LIMITS = SandboxLimits(
    cpu_seconds=10, wall_seconds=30, max_processes=32, output_bytes=1 << 20, output_files=20
)

WRITER = """
import json, os, sys
outcome = {}
for path in json.loads(sys.argv[1]):
    try:
        with open(path, "w") as f:
            f.write("pwned")
        outcome[path] = "written"
    except OSError as error:
        outcome[path] = type(error).__name__
for folder in ("/", "/usr", "/task"):
    try:
        os.mkdir(os.path.join(folder, "pwned"))
        outcome[folder + " mkdir"] = "written"
    except OSError as error:
        outcome[folder + " mkdir"] = type(error).__name__
print(json.dumps(outcome))
"""


@pytest.fixture(scope="module")
def runner(sandbox_runner: BubblewrapRunner) -> BubblewrapRunner:
    return sandbox_runner  # each runner in turn (tests/conftest.py)


def run(
    runner: BubblewrapRunner, output: Path, source: str, *args: str, binds: Sequence[Bind] = ()
) -> SandboxResult:
    output.mkdir(exist_ok=True)
    argv = ["-c", textwrap.dedent(source), *args]
    return runner.run(SandboxRequest(argv=argv, output_dir=output, binds=binds, limits=LIMITS))


def test_b12_cannot_write_outside_output(runner: BubblewrapRunner, tmp_path: Path) -> None:
    task = tmp_path / "task"
    task.mkdir()
    (task / "input.json").write_text("{}")
    host_target = tmp_path / "host-file"
    targets = [
        "/pwned",
        "/etc/pwned",
        "/usr/lib/pwned",
        f"{sys.prefix}/pwned",
        "/task/input.json",
        "/task/new.json",
        "/proc/sys/kernel/hostname",
        str(host_target),
        "/output/result.json",
    ]

    result = run(runner, tmp_path / "output", WRITER, json.dumps(targets), binds=[Bind(task, "/task")])

    assert result.ok, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome.pop("/output/result.json") == "written"
    assert "written" not in outcome.values(), outcome
    assert (task / "input.json").read_text() == "{}"
    assert sorted(p.name for p in task.iterdir()) == ["input.json"]
    assert not host_target.exists()
    assert not (Path(sys.prefix) / "pwned").exists()
    assert (tmp_path / "output" / "result.json").read_text() == "pwned"


def test_b12_output_quota_one_big_file(runner: BubblewrapRunner, tmp_path: Path) -> None:
    output = tmp_path / "output"

    result = run(runner, output, "open('/output/dump.csv', 'wb').write(b'x' * (3 << 20))")

    assert result.failure == "output limit of 1 MiB exceeded"
    assert list(output.iterdir()) == []  # output that broke a limit is never left half-used


def test_b12_output_quota_many_small_files_adding_up(runner: BubblewrapRunner, tmp_path: Path) -> None:
    output = tmp_path / "output"

    result = run(
        runner, output, "for i in range(8):\n    open(f'/output/part{i}', 'wb').write(b'x' * (200 << 10))"
    )

    assert result.failure == "output limit of 1 MiB exceeded"
    assert list(output.iterdir()) == []


def test_b12_output_quota_many_files(runner: BubblewrapRunner, tmp_path: Path) -> None:
    output = tmp_path / "output"

    result = run(
        runner,
        output,
        """
        import os
        for i in range(10_000_000):
            os.mkdir(f"/output/d{i}") if i % 2 else open(f"/output/f{i}", "w").close()
        """,
    )

    assert result.failure == "output limit of 20 files exceeded"
    assert list(output.iterdir()) == []


def test_b12_links_in_output_are_refused_and_removed(runner: BubblewrapRunner, tmp_path: Path) -> None:
    output = tmp_path / "output"
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")

    result = run(
        runner,
        output,
        f"import os\nopen('/output/ok.json', 'w').write('1')\nos.symlink({str(secret)!r}, '/output/r.json')",
    )

    assert result.failure is not None and "output contains r.json" in result.failure
    assert list(output.iterdir()) == []
    assert secret.read_text() == "host secret"
