"""Run the real `custos` command line in a child process, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    def assert_one_line_error(self, code: int = 1) -> str:
        """The failure contract: exit `code`, exactly one line `error: ...` on stderr, no traceback."""
        assert self.code == code, (self.code, self.stdout, self.stderr)
        lines = self.stderr.splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("error: "), self.stderr
        assert "Traceback" not in self.stderr + self.stdout
        return lines[0]


CliRunner = Callable[..., Run]


@pytest.fixture
def custos(tmp_path: Path) -> CliRunner:
    def run(*args: str, env: dict[str, str] | None = None, script: bool = False) -> Run:
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOS_")}
        child_env.update(env or {})
        if script:
            argv = [str(Path(sys.executable).parent / "custos"), *args]
        else:
            argv = [sys.executable, "-m", "custos.cli", *args]
        done = subprocess.run(
            argv, cwd=tmp_path, env=child_env, capture_output=True, text=True, timeout=120, check=False
        )
        return Run(done.returncode, done.stdout, done.stderr)

    return run
