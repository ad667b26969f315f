"""`custos demo` end to end: real orchestrator and gateway processes, a study, a refusal, a clean stop."""

from __future__ import annotations

import ast
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from .conftest import CliRunner

pytestmark = pytest.mark.integration

ROWS = 2000


def test_demo_runs_the_study_and_stops_every_process(
    custos: CliRunner, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A short folder: the gateway's per-task unix socket must fit in 107 bytes of path.
    workdir = tmp_path_factory.mktemp("d") / "demo"
    run = custos("demo", "--workdir", str(workdir), "--rows", str(ROWS), env={"COLUMNS": "200"})
    assert run.code == 0, run.stdout + run.stderr
    out = run.stdout
    for ref in ("site-a/patients", "site-b/patients", "site-c/patients"):
        assert ref in out
    # Pooled over the three sites: every patient is counted once.
    assert re.search(rf"\bage\s+{3 * ROWS}\s", out), out
    assert re.search(r"bmi\s+F\s+\d+", out), out
    assert "refused by the" in out
    assert "postcode" in out.split("refused by the", 1)[1]
    assert "demo finished in" in out

    pids = ast.literal_eval(re.search(r"pids (\{[^}]*\})", out).group(1))  # type: ignore[union-attr]
    assert set(pids) == {"orchestrator", "site-a", "site-b", "site-c"}
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert (workdir / "logs" / "orchestrator.log").is_file()


def test_sigterm_to_the_demo_stops_the_processes_it_started(tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp("d") / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOS_")} | {"COLUMNS": "200"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "custos.cli", "demo", "--workdir", str(workdir), "--rows", "500"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        assert demo.stdout is not None
        seen = ""
        deadline = time.monotonic() + 120
        while "pids {" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([demo.stdout], [], [], 1.0)
            if ready:
                line = demo.stdout.readline()
                if not line:
                    break
                seen += line
        match = re.search(r"pids (\{[^}]*\})", seen)
        assert match is not None, seen
        pids = ast.literal_eval(match.group(1))
        demo.send_signal(signal.SIGTERM)
        demo.communicate(timeout=60)
        assert demo.returncode == 128 + signal.SIGTERM
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=30)
        if demo.stdout is not None:
            demo.stdout.close()  # also when the test failed, so no unclosed pipe warns in a later test
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
