"""Invariant 4 at the data: the DAL serves only granted columns, whatever the sandboxed code asks for.

A real DAL server on a unix socket and the real in-sandbox Flight client: a column that is not granted
is refused whether it is asked for, filtered on, or smuggled in a raw ticket, and nothing of it is sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from custos.computations.dal_client import FlightDalReader
from custos.core.dal_wire import DalTicket, Filter
from custos.core.errors import PermissionDenied
from custos.data.file_source import FileSource
from custos.data.synthetic import synthetic_patients, write_dataset
from custos.gateway.dal import DalServer, DatasetGrant

TOKEN = "sandbox-task-token-7f3c9b21d4e8"


@pytest.fixture
def dal(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[tuple[DalServer, Path]]:
    write_dataset(synthetic_patients(500, site=0), tmp_path / "patients.csv")
    source = FileSource("patients", tmp_path / "patients.csv", "csv")
    socket = tmp_path_factory.mktemp("dal") / "dal.sock"
    grants = {"patients": DatasetGrant(source=source, columns=frozenset({"age", "sex"}))}
    with DalServer.start(socket, TOKEN, grants) as server:
        yield server, socket


@pytest.mark.parametrize(
    ("columns", "filters"),
    [
        (["age", "diagnosis"], []),
        (["diagnosis"], []),
        (["age"], [Filter(column="diagnosis", op="==", value="rare-disorder")]),
        (["age"], [Filter(column="postcode", op="not_null")]),
    ],
)
def test_the_dal_refuses_a_column_that_is_not_granted(
    dal: tuple[DalServer, Path], columns: list[str], filters: list[Filter]
) -> None:
    server, socket = dal
    with FlightDalReader(str(socket), TOKEN) as reader:
        with pytest.raises(PermissionDenied, match="are not granted to this task; granted: age, sex"):
            reader.read("patients", columns, filters)
        assert reader.read("patients", ["age", "sex"]).num_rows == 500
    refused, served = server.accesses
    assert (refused.allowed, refused.rows) == (False, 0)
    assert (served.allowed, served.rows) == (True, 500)


def test_a_raw_ticket_cannot_reach_an_ungranted_column(dal: tuple[DalServer, Path]) -> None:
    server, socket = dal
    client = flight.FlightClient(f"grpc+unix://{socket}")
    try:
        for column in ("diagnosis", "Diagnosis", "diagnosis ", 'age", "diagnosis', "*"):
            ticket = DalTicket(token=TOKEN, dataset="patients", columns=[column])
            with pytest.raises(flight.FlightUnauthorizedError):
                client.do_get(flight.Ticket(ticket.model_dump_json().encode())).read_all()
    finally:
        client.close()
    assert [record.allowed for record in server.accesses] == [False] * 5


def test_the_served_table_holds_only_granted_columns(dal: tuple[DalServer, Path]) -> None:
    _, socket = dal
    with FlightDalReader(str(socket), TOKEN) as reader:
        table = reader.read("patients", ["sex"], [Filter(column="age", op=">", value=50)])
    assert isinstance(table, pa.Table)
    assert table.column_names == ["sex"]
