"""The orchestrator's start line names its database without the password."""

from __future__ import annotations

from custos.orchestrator.server import redacted_url


def test_the_password_of_a_database_url_is_not_logged() -> None:
    shown = redacted_url("postgresql+psycopg://custos:s3cret-pw@db.internal:5432/custos")
    assert "s3cret-pw" not in shown
    assert shown == "postgresql+psycopg://custos:***@db.internal:5432/custos"


def test_a_sqlite_url_is_shown_as_is() -> None:
    assert redacted_url("sqlite:////srv/custos/orchestrator.db") == "sqlite:////srv/custos/orchestrator.db"
