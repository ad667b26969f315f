"""The bootstrap on its own, outside any sandbox: how it maps breaches to exit codes and runs targets."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from custos.sandbox.bootstrap import breach_code
from custos.sandbox.limits import LIMITS_VARIABLE, SandboxExit, SandboxLimits


def chained(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as caught:
            raise outer from caught
    except BaseException as raised:
        return raised


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (MemoryError(), SandboxExit.EXIT_MEMORY),
        (BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable"), SandboxExit.EXIT_PROCESSES),
        (RuntimeError("can't start new thread"), SandboxExit.EXIT_PROCESSES),
        (OSError(errno.EFBIG, "File too large"), SandboxExit.EXIT_OUTPUT),
        (OSError(errno.ENOSPC, "No space left on device"), SandboxExit.EXIT_TMP),
        (chained(ValueError("wrapped"), MemoryError()), SandboxExit.EXIT_MEMORY),
        (ValueError("bad"), None),
        (OSError(errno.ENOENT, "missing"), None),
    ],
)
def test_exceptions_map_to_the_limit_they_reveal(error: BaseException, code: SandboxExit | None) -> None:
    assert breach_code(error) == code


def run_bootstrap(
    *argv: str, limits: SandboxLimits | None = None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if limits is not None:
        env[LIMITS_VARIABLE] = limits.to_json()
    return subprocess.run(
        [sys.executable, "-m", "custos.sandbox.bootstrap", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_a_memory_error_exits_with_the_memory_code(tmp_path: Path) -> None:
    done = run_bootstrap(
        "-c", "x = bytearray(1 << 40)", limits=SandboxLimits(memory_bytes=256 << 20), cwd=tmp_path
    )

    assert done.returncode == SandboxExit.EXIT_MEMORY
    assert "MemoryError" in done.stderr
    assert "bootstrap.py" not in done.stderr  # the traceback shows the computation's frames only


def test_limits_are_applied_before_the_target_runs(tmp_path: Path) -> None:
    code = "import resource as r; print(r.getrlimit(r.RLIMIT_NPROC), r.getrlimit(r.RLIMIT_CORE))"

    done = run_bootstrap("-c", code, limits=SandboxLimits(max_processes=77), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(77, 77) (0, 0)"


def test_scripts_modules_and_exit_codes_behave_as_under_python(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("import sys\nprint(sys.argv)\nsys.exit(4)\n")

    by_path = run_bootstrap(str(script), "a", limits=SandboxLimits(), cwd=tmp_path)
    by_module = run_bootstrap("-m", "json.tool", "--help", limits=SandboxLimits(), cwd=tmp_path)
    by_message = run_bootstrap("-c", "raise SystemExit('no data')", limits=SandboxLimits(), cwd=tmp_path)

    assert (by_path.returncode, by_path.stdout.strip()) == (4, f"[{str(script)!r}, 'a']")
    assert by_module.returncode == 0 and "usage" in by_module.stdout
    assert (by_message.returncode, by_message.stderr.strip()) == (1, "no data")


def test_without_limits_the_bootstrap_refuses_to_run(tmp_path: Path) -> None:
    done = run_bootstrap("-c", "print('ran')", cwd=tmp_path)

    assert done.returncode == SandboxExit.EXIT_USAGE
    assert "ran" not in done.stdout
