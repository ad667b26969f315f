"""`custos audit show|verify`, run as a user would: a child process of `python -m custos.cli`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from custos.audit import AuditTrail

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def custos(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOS_")}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "custos.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def trail_path(tmp_path: Path) -> Path:
    path = tmp_path / "audit.log"
    times = iter(T0 + timedelta(hours=h) for h in range(10))
    trail = AuditTrail(path, clock=lambda: next(times))
    trail.append(user="ann", action="job.submit", job="job_1", message="first")
    trail.append(user="bob", action="job.submit", job="job_2", message="second")
    trail.append(user="ann", action="release.approve", job="job_2", message="third")
    return path


def test_show_prints_a_table(trail_path: Path) -> None:
    done = custos("audit", "show", "--trail", str(trail_path), cwd=trail_path.parent)
    assert done.returncode == 0, done.stderr
    assert "release.approve" in done.stdout and "job_1" in done.stdout


def test_show_filters_as_json_lines(trail_path: Path) -> None:
    filters = ("--user", "ann", "--since", "2025-03-01T13:00:00Z", "--json")
    done = custos("audit", "show", "--trail", str(trail_path), *filters, cwd=trail_path.parent)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["user"], r["message"], r["line"]) for r in rows] == [("ann", "third", 3)]

    by_job = custos(
        "audit", "show", "--trail", str(trail_path), "--job", "job_2", "--json", cwd=trail_path.parent
    )
    assert [json.loads(line)["message"] for line in by_job.stdout.splitlines()] == ["second", "third"]


def test_verify_ok(trail_path: Path) -> None:
    done = custos("audit", "verify", "--trail", str(trail_path), cwd=trail_path.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "ok: 3 events, chain intact"


def test_verify_tampered_is_one_line_and_exit_1(trail_path: Path) -> None:
    trail_path.write_bytes(trail_path.read_bytes().replace(b"second", b"secOnd"))
    done = custos("audit", "verify", "--trail", str(trail_path), cwd=trail_path.parent)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "tampered: line 2: edited: the line does not match the seal in its id"
    ]


def test_verify_reports_partial_lines(trail_path: Path) -> None:
    data = trail_path.read_bytes()
    trail_path.write_bytes(data[:-5])
    done = custos("audit", "verify", "--trail", str(trail_path), cwd=trail_path.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "ok: 2 events, chain intact"
    assert "partial lines (left by an interrupted append): 3" in done.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("show", "--since", "yesterday"), "is not an ISO-8601 time"),
        (("show", "--trail", "absent.log"), "no audit trail at absent.log"),
        (("verify", "--trail", "absent.log"), "no audit trail at absent.log"),
    ],
)
def test_user_errors_are_one_line(trail_path: Path, args: tuple[str, ...], expected: str) -> None:
    full = ["audit", args[0], *(() if "--trail" in args else ("--trail", str(trail_path))), *args[1:]]
    done = custos(*full, cwd=trail_path.parent)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], done.stderr
    assert "Traceback" not in done.stderr
