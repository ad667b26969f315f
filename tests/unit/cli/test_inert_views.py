"""Every CLI view of someone else's text is inert: a source under review, a job's reason, a kept log,
an audit trail, an error line. Hostile text is shown as visible escapes; nothing raw reaches the
terminal, and no module prints around the helpers that make it so."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console, RenderableType

from custos.audit import AuditTrail
from custos.cli.code import source_view
from custos.cli.failures import describe
from custos.cli.output import echo, job_tables
from custos.core.errors import NotFound
from custos.core.wire import JobPublic, Resources, Submitter, TaskAssignment, TaskKind
from custos.gateway.code_logs import failed_task_log, write_code_log

from .conftest import CliRunner

RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
HOSTILE = "ok\x1b[2K\x1b[1Gfake \x1b[8mgone \x9b8m \u202eesrever [bold]x[/bold]"
SHOWN = "ok\\x1b[2K\\x1b[1Gfake \\x1b[8mgone \\x9b8m \\u202eesrever [bold]x[/bold]"
JOB = "job_0123456789abcdef"
CLI = Path(__file__).parents[3] / "src" / "custos" / "cli"


def render(*renderables: RenderableType, width: int = 400) -> str:
    console = Console(record=True, width=width, color_system=None)
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


def assert_inert(*texts: str) -> None:
    for text in texts:
        assert not RAW.findall(text), text


def test_a_source_shows_its_hidden_characters_escaped_under_a_warning_that_counts_them() -> None:
    source = f"def f(dal, datasets, params):\n    x = 1  # {HOSTILE}\n\treturn x\n"
    text = render(*source_view(source))
    assert_inert(text)
    assert f"x = 1  # {SHOWN}" in text
    assert text.splitlines()[0].startswith("warning: the source holds 5 hidden characters")
    assert "return x" in text  # a tab is not hidden


def test_a_clean_source_has_no_warning_and_a_long_line_is_wrapped_not_cut() -> None:
    source = "def f(dal, datasets, params):\n    return 1" + " " * 120 + "; steal()\n"
    text = render(*source_view(source), width=80)
    assert "warning" not in text
    assert "steal()" in text  # past the terminal's edge, still shown


def test_a_jobs_reason_and_task_errors_are_inert() -> None:
    job = JobPublic.model_validate(
        {
            "id": JOB, "spec_id": "spec_1", "model": "custom@1.0.0", "state": "failed", "round": 0,
            "reason": HOSTILE, "submitter": "alice", "org": "university",
            "created_at": datetime(2025, 1, 2, tzinfo=UTC), "finished_at": None,
            "tasks": [
                {"id": "task_a", "gateway": "site-a", "dataset": "patients", "kind": "compute", "round": 0,
                 "state": "failed", "attempt": 1, "error": HOSTILE},
            ],
        }
    )  # fmt: skip
    text = render(*job_tables(job))
    assert_inert(text)
    assert text.count(SHOWN) == 2


def test_an_error_line_is_one_inert_line() -> None:
    message = describe(NotFound(f"unknown dataset {HOSTILE}\r\x1b[2Knothing to see"))
    assert_inert(message)
    assert message == f"unknown dataset {SHOWN} \\x1b[2Knothing to see"  # a carriage return ends a line


def test_echo_prints_lines_inert(capsys: pytest.CaptureFixture[str]) -> None:
    echo(f"first {HOSTILE}\nsecond")
    echo(HOSTILE, err=True)
    out, err = capsys.readouterr()
    assert_inert(out, err)
    assert out == f"first {SHOWN}\nsecond\n"
    assert err == f"{SHOWN}\n"


def test_gateway_log_show_prints_a_hostile_log_and_type_inert(custos: CliRunner, tmp_path: Path) -> None:
    task = TaskAssignment(
        task_id="task_1", attempt=1, kind=TaskKind.COMPUTE, spec_id="spec_1", job_id=JOB, round=0,
        model="custom@1.0.0", dataset="patients", columns=["age"], params={}, round_input={},
        submitter=Submitter(name="alice", org="university", role="lead_researcher"), resources=Resources(),
    )  # fmt: skip
    reply = {"type": "Bad\nError\x1b[8m", "log": f"Traceback:\nValueError: {HOSTILE}\n"}
    write_code_log(tmp_path, failed_task_log(task, "site-a", reply))
    run = custos("gateway", "log", "show", "--state", str(tmp_path), "--job", JOB)
    assert run.code == 0, run.stderr
    assert_inert(run.stdout, run.stderr)
    assert run.stdout == (
        f"── log of task task_1 (attempt 1) of job {JOB} at site-a/patients: Bad\\nError\\x1b[8m\n"
        f"Traceback:\nValueError: {SHOWN}\n"
    )


def test_audit_show_prints_a_hostile_event_inert(custos: CliRunner, tmp_path: Path) -> None:
    trail = tmp_path / "audit.log"
    AuditTrail(trail).append(user="alice", action="job_failed", job=JOB, message=HOSTILE)
    run = custos("audit", "show", "--trail", str(trail), env={"COLUMNS": "400"})
    assert run.code == 0, run.stderr
    assert_inert(run.stdout, run.stderr)
    assert SHOWN in run.stdout
    as_json = custos("audit", "show", "--trail", str(trail), "--json")
    assert_inert(as_json.stdout)
    assert "\\u001b[2K" in as_json.stdout


def _is_str(node: ast.expr) -> bool:
    if isinstance(node, ast.BinOp):
        return _is_str(node.left) or _is_str(node.right)
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _raw_prints(tree: ast.AST) -> list[str]:
    """Calls that print a string around `echo`, `shown` and `add_row`: `typer.echo(...)`, `print(...)`,
    and `<console>.print(f"...")` (read as Rich markup, and not inert)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "print":
            found.append(f"line {node.lineno}: print(...)")
        elif isinstance(func, ast.Attribute) and func.attr == "echo" and ast.unparse(func.value) == "typer":
            found.append(f"line {node.lineno}: typer.echo(...)")
        elif isinstance(func, ast.Attribute) and func.attr == "print" and node.args and _is_str(node.args[0]):
            found.append(f"line {node.lineno}: .print({ast.unparse(node.args[0])[:40]})")
    return found


def test_no_cli_module_prints_text_around_the_inert_helpers() -> None:
    offenders = {
        path.name: raw
        for path in sorted(CLI.glob("*.py"))
        if path.name not in ("output.py", "plain.py")
        and (raw := _raw_prints(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert offenders == {}
