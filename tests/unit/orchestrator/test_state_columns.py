"""State columns are typed as their enums on SQLite and PostgreSQL: rows read back as enum members,
the database keeps the enum's value (the schema and the stored strings are as before), and a string
outside the enum is refused before it reaches the database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from custos.core.states import SPEC_MACHINE, SpecState
from custos.orchestrator.db import Database, migrate
from custos.orchestrator.tables import ComputeSpec

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def _spec(state: SpecState | str) -> ComputeSpec:
    return ComputeSpec(
        id="spec_1",
        name="s",
        model="stats@1.0.0",
        datasets=["gw/patients"],
        columns=["age"],
        resources={},
        state=state,
        reason=None,
        owner="alice",
        org="university",
        owner_role="researcher",
        created_at=NOW,
        updated_at=NOW,
    )


def test_a_state_is_stored_as_its_value_and_read_back_as_the_enum(database_url: str) -> None:
    db = Database(database_url)
    try:
        migrate(db.engine)
        with db.session() as session:
            session.add(_spec(SpecState.CREATED))
        with db.session() as session:
            spec = session.execute(select(ComputeSpec)).scalar_one()
            assert spec.state is SpecState.CREATED
            SPEC_MACHINE.move(spec, SpecState.ACTIVATING)
        with db.session() as session:
            stored = session.execute(text("SELECT state FROM specs WHERE id = 'spec_1'")).scalar_one()
            assert type(stored) is str and stored == "activating"
            found = session.execute(
                select(ComputeSpec.id).where(ComputeSpec.state == SpecState.ACTIVATING)
            ).scalar_one()
            assert found == "spec_1"
    finally:
        db.dispose()


def test_a_string_outside_the_enum_is_refused(database_url: str) -> None:
    db = Database(database_url)
    try:
        migrate(db.engine)
        refused = pytest.raises(StatementError, match="'paused' is not among the defined enum values")
        with refused, db.session() as session:
            session.add(_spec("paused"))
        with db.session() as session:
            assert session.execute(select(ComputeSpec)).first() is None
    finally:
        db.dispose()
