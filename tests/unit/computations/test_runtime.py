"""The in-sandbox entry point: one round at one site, result.json or error.json (type and message)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from custos.computations.runtime import answer, main, run
from custos.computations.stats.model import StatsModel
from custos.core.digest import canonical_json

PARAMS = {"columns": ["age", "sex"], "statistics": ["count", "mean"], "group_by": "sex"}
TABLE = pa.table({"age": [30, 40, None, 50], "sex": ["F", "M", "F", None]})


def write_input(tmp_path: Path, **overrides: Any) -> Path:
    task = {
        "model": "stats@1.0.0",
        "dataset": "cohort",
        "params": PARAMS,
        "round_input": {"phase": "summary"},
        "dal_socket": "/dal/dal.sock",
        "dal_token": "token-that-must-not-leak",
        **overrides,
    }
    path = tmp_path / "input.json"
    path.write_bytes(canonical_json(task))
    return path


def outputs(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir())


def test_run_writes_the_sites_result_as_canonical_json(tmp_path: Path, arrow_reader: Any) -> None:
    out = tmp_path / "output"
    out.mkdir()
    reader = arrow_reader({"cohort": TABLE})
    assert run(write_input(tmp_path), out, reader) == 0
    assert outputs(out) == ["result.json"]
    written = (out / "result.json").read_bytes()
    expected = StatsModel().compute_site(
        arrow_reader({"cohort": TABLE}), "cohort", PARAMS, {"phase": "summary"}
    )
    assert written == canonical_json(expected)
    assert reader.reads == [("cohort", ["age", "sex"], [])]


def test_a_failing_computation_writes_only_the_error_type_and_message(
    tmp_path: Path, arrow_reader: Any
) -> None:
    out = tmp_path / "output"
    out.mkdir()
    path = write_input(tmp_path, round_input={"phase": "nope"})
    assert run(path, out, arrow_reader({"cohort": TABLE})) == 1
    assert outputs(out) == ["error.json"]
    error = json.loads((out / "error.json").read_bytes())
    assert error == {
        "type": "InvalidInput",
        "message": "round_input.phase is 'nope'; expected 'summary' or 'quantiles'",
    }


def test_a_malformed_input_is_reported_by_field_without_echoing_its_values(
    tmp_path: Path, arrow_reader: Any
) -> None:
    out = tmp_path / "output"
    out.mkdir()
    path = write_input(tmp_path, round_input="not an object")
    assert run(path, out, arrow_reader({"cohort": TABLE})) == 1
    text = (out / "error.json").read_text()
    assert "round_input" in text
    assert "token-that-must-not-leak" not in text


def test_the_module_runs_as_a_program_and_reports_an_unknown_model(tmp_path: Path) -> None:
    out = tmp_path / "output"
    out.mkdir()
    path = write_input(tmp_path, model="nope@1.0")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-m", "custos.computations.runtime", str(path), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    error = json.loads((out / "error.json").read_bytes())
    assert error == {
        "type": "NotFound",
        "message": "unknown model nope@1.0; available: stats@1.0.0, glm@1.0.0, fedavg@1.0.0",
    }


def test_the_runtime_does_not_import_pandas() -> None:
    code = "import sys, custos.computations.runtime; sys.exit(3 if 'pandas' in sys.modules else 0)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


def test_main_prints_usage_for_wrong_arguments(capsys: Any) -> None:
    assert main(["only-one"]) == 2
    assert "usage:" in capsys.readouterr().err


class _Exhausted:
    """A reader whose every read runs out of memory, as a round over the sandbox's limit does."""

    def read(self, *args: Any, **kwargs: Any) -> pa.Table:
        raise MemoryError


def test_a_broken_limit_is_not_answered_but_ends_the_runtime() -> None:
    request = json.loads(canonical_json({
        "model": "stats@1.0.0", "dataset": "cohort", "params": PARAMS, "round_input": {"phase": "summary"},
        "dal_socket": "/ipc/dal.sock", "dal_token": "t",
    }))  # fmt: skip
    readers: dict[tuple[str, str], Any] = {("/ipc/dal.sock", "t"): _Exhausted()}

    with pytest.raises(MemoryError):
        answer(request, readers)
    # any other error is answered, and the runtime goes on
    assert answer(request | {"round_input": {"phase": "nope"}}, readers)["ok"] is False
