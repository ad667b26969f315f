"""The operator's log: text or JSON lines on one handler, routine library chatter at DEBUG."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from custos.core.operator_log import configure_logging, parse_level


@pytest.fixture(autouse=True)
def _restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_time_level_logger_process_and_message() -> None:
    out = io.StringIO()
    configure_logging("site-a", log_format="json", stream=out)
    logging.getLogger("custos.gateway").info("connected; published %d dataset(s)", 2)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("custos.gateway").exception("a task failed")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "connected; published 2 dataset(s)"
    assert (first["level"], first["logger"], first["process"]) == ("info", "custos.gateway", "site-a")
    assert first["time"].endswith("+00:00")
    assert second["level"] == "error"
    assert "ValueError: boom" in second["exception"]


def test_migrations_and_http_requests_show_only_at_debug() -> None:
    out = io.StringIO()
    configure_logging("orchestrator", stream=out)
    logging.getLogger("alembic.runtime.migration").info("Running upgrade 0001 -> 0002")
    logging.getLogger("httpx").info("HTTP Request: GET /api/v1/gateway/tasks/next")
    logging.getLogger("custos.orchestrator").info("listening on https://127.0.0.1:8443")
    assert out.getvalue().count("\n") == 1
    assert "listening on" in out.getvalue()

    verbose = io.StringIO()
    configure_logging("orchestrator", level="debug", stream=verbose)
    logging.getLogger("alembic.runtime.migration").info("Running upgrade 0001 -> 0002")
    assert "DEBUG Running upgrade 0001 -> 0002" in verbose.getvalue()


def test_warning_level_hides_info() -> None:
    out = io.StringIO()
    configure_logging("orchestrator", level="warning", stream=out)
    logging.getLogger("custos.orchestrator").info("routine")
    logging.getLogger("custos.orchestrator").warning("the database is back")
    assert out.getvalue().splitlines()[0].endswith("WARNING the database is back")


def test_an_unknown_level_is_refused_naming_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match="debug, info, warning, error"):
        parse_level("verbose")
