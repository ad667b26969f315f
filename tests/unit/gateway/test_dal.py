"""The DAL end to end over a real unix socket: real server, real Flight client, real files.

A granted read is served with its filters pushed down and recorded; a wrong token, a dataset or a column
that is not granted (returned or filtered on) are refused with a clear message and recorded as refused.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pytest

from custos.computations.dal_client import FlightDalReader
from custos.core.dal_wire import DalRefusal, DalTicket, Filter
from custos.core.errors import CustosError, InvalidInput, PermissionDenied
from custos.data.file_source import FileSource
from custos.data.synthetic import synthetic_patients, write_dataset
from custos.gateway.dal import AccessRecord, DalServer, DatasetGrant

TOKEN = "task-token-0123456789abcdef"
GRANTED = frozenset({"age", "bmi", "sex"})


@pytest.fixture
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A unix socket's path must stay under 108 bytes: keep the folder name short.
    return tmp_path_factory.mktemp("dal")


@pytest.fixture
def patients(tmp_path: Path) -> tuple[pa.Table, FileSource]:
    table = synthetic_patients(3_000, site=0)
    write_dataset(table, tmp_path / "patients.parquet")
    return table, FileSource("patients", tmp_path / "patients.parquet", "parquet")


@pytest.fixture
def server(folder: Path, patients: tuple[pa.Table, FileSource]) -> Iterator[DalServer]:
    grants = {"patients": DatasetGrant(source=patients[1], columns=GRANTED)}
    with DalServer.start(folder / "dal.sock", TOKEN, grants, access_log=folder / "access.log") as running:
        yield running


@pytest.fixture
def client(folder: Path, server: DalServer) -> Iterator[FlightDalReader]:
    with FlightDalReader(str(folder / "dal.sock"), TOKEN) as reader:
        yield reader


def _log(folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (folder / "access.log").read_text().splitlines()]


def test_a_granted_read_is_served_and_recorded(
    folder: Path, server: DalServer, client: FlightDalReader, patients: tuple[pa.Table, FileSource]
) -> None:
    table = client.read("patients", ["age", "bmi"])
    assert table.column_names == ["age", "bmi"]
    assert table.equals(patients[0].select(["age", "bmi"]))
    (record,) = server.accesses
    assert record == AccessRecord(
        time=record.time, dataset="patients", columns=["age", "bmi"], filters=[], rows=3_000, allowed=True
    )
    assert datetime.fromisoformat(record.time).tzinfo is not None
    assert _log(folder) == [
        {
            "allowed": True,
            "columns": ["age", "bmi"],
            "dataset": "patients",
            "filters": [],
            "reason": None,
            "rows": 3_000,
            "time": record.time,
        }
    ]


def test_filters_are_pushed_down_and_recorded(
    server: DalServer, client: FlightDalReader, patients: tuple[pa.Table, FileSource]
) -> None:
    filters = [Filter(column="sex", op="==", value="F"), Filter(column="age", op=">=", value=60)]
    table = client.read("patients", ["bmi"], filters)
    real = patients[0]
    expected = real.filter(pc.and_(pc.equal(real["sex"], "F"), pc.greater_equal(real["age"], 60)))
    assert table.column("bmi").to_pylist() == expected.column("bmi").to_pylist()
    (record,) = server.accesses
    assert record.rows == expected.num_rows
    assert record.filters == [
        {"column": "sex", "op": "==", "value": "F"},
        {"column": "age", "op": ">=", "value": 60},
    ]


def test_a_wrong_token_is_refused_and_never_recorded(folder: Path, server: DalServer) -> None:
    with (
        FlightDalReader(str(folder / "dal.sock"), "not-the-token") as reader,
        pytest.raises(PermissionDenied, match=r"^the DAL token is not valid for this task$"),
    ):
        reader.read("patients", ["age"])
    (record,) = server.accesses
    assert (record.dataset, record.allowed, record.rows) == ("patients", False, 0)
    assert record.reason == "the DAL token is not valid for this task"
    assert "not-the-token" not in (folder / "access.log").read_text()
    assert TOKEN not in (folder / "access.log").read_text()


def test_a_dataset_not_granted_is_refused(server: DalServer, client: FlightDalReader) -> None:
    with pytest.raises(
        PermissionDenied, match="dataset visits is not granted to this task; granted: patients"
    ):
        client.read("visits", ["age"])
    (record,) = server.accesses
    assert (record.dataset, record.allowed) == ("visits", False)


@pytest.mark.parametrize(
    ("columns", "filters"),
    [
        (["age", "postcode"], []),
        (["age"], [Filter(column="postcode", op="==", value="AB12 3CD")]),
        (["age"], [Filter(column="diagnosis", op="is_null")]),
    ],
)
def test_a_column_not_granted_is_refused_also_in_a_filter(
    server: DalServer, client: FlightDalReader, columns: list[str], filters: list[Filter]
) -> None:
    with pytest.raises(PermissionDenied, match="of dataset patients are not granted to this task") as caught:
        client.read("patients", columns, filters)
    assert "granted: age, bmi, sex" in caught.value.message
    (record,) = server.accesses
    assert (record.allowed, record.rows, record.columns) == (False, 0, columns)
    assert record.reason == caught.value.message


def test_a_bad_filter_value_is_invalid_input(server: DalServer, client: FlightDalReader) -> None:
    with pytest.raises(InvalidInput, match=r"^filter on column 'age': value 'old' is not a number"):
        client.read("patients", ["age"], [Filter(column="age", op=">", value="old")])
    (record,) = server.accesses
    assert record.allowed is False


def test_a_malformed_ticket_is_refused_and_recorded(folder: Path, server: DalServer) -> None:
    raw = flight.FlightClient(f"grpc+unix://{folder / 'dal.sock'}")
    try:
        for ticket in (b"not json", b'{"token": "x"}', b"{" * 300_000):
            with pytest.raises(flight.FlightServerError, match="ticket") as refused:
                raw.do_get(flight.Ticket(ticket)).read_all()
            # The DAL's sentence and its kind, never the server's traceback (it names its folders).
            assert DalRefusal.model_validate_json(refused.value.extra_info).kind == "invalid"
            assert "Traceback" not in str(refused.value) and ".py" not in str(refused.value)
    finally:
        raw.close()
    assert [r.allowed for r in server.accesses] == [False, False, False]


@pytest.mark.parametrize("call", ["list_flights", "do_action", "do_put", "get_schema", "list_actions"])
def test_everything_but_do_get_is_refused(folder: Path, server: DalServer, call: str) -> None:
    raw = flight.FlightClient(f"grpc+unix://{folder / 'dal.sock'}")
    descriptor = flight.FlightDescriptor.for_path("patients")
    calls: dict[str, Callable[[], object]] = {
        "list_flights": lambda: list(raw.list_flights()),
        "do_action": lambda: list(raw.do_action(flight.Action("drop", b""))),
        "do_put": lambda: raw.do_put(descriptor, pa.schema([("a", pa.int64())]))[0].close(),
        "get_schema": lambda: raw.get_schema(descriptor),
        "list_actions": lambda: list(raw.list_actions()),
    }
    try:
        # Flight reports most refusals as unauthorized; get_schema's goes through as an unknown error.
        with pytest.raises(pa.ArrowException, match=r"serves only do_get; .* is refused"):
            calls[call]()
    finally:
        raw.close()
    assert server.accesses[-1].allowed is False


class _BrokenSource:
    """A source that fails after its first batch with a message quoting a row."""

    name = "broken"

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([("x", pa.float64())])

    def read(self, columns: Sequence[str], filters: Sequence[Filter] = ()) -> pa.RecordBatchReader:
        def batches() -> Iterator[pa.RecordBatch]:
            yield pa.record_batch({"x": [1.0, 2.0]})
            raise RuntimeError("could not convert row 7: name='Jane Smith'")

        return pa.RecordBatchReader.from_batches(self.arrow_schema(), batches())


def test_a_failing_read_reports_no_source_detail(folder: Path) -> None:
    grants = {"broken": DatasetGrant(source=_BrokenSource(), columns=frozenset({"x"}))}
    with DalServer.start(folder / "dal.sock", TOKEN, grants) as server:
        with (
            FlightDalReader(str(folder / "dal.sock"), TOKEN) as reader,
            pytest.raises(CustosError, match="reading dataset broken failed at the gateway") as caught,
        ):
            reader.read("broken", ["x"])
        assert "Jane" not in str(caught.value)
        (record,) = server.accesses
    assert (record.allowed, record.rows, record.reason) == (True, 2, "reading failed (RuntimeError)")


def test_concurrent_reads_are_all_served(server: DalServer, client: FlightDalReader) -> None:
    results: list[int] = []
    errors: list[BaseException] = []

    def work(age: int) -> None:
        try:
            results.append(
                client.read("patients", ["age"], [Filter(column="age", op="<", value=age)]).num_rows
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(30 + 10 * i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(results) == 6
    assert len(server.accesses) == 6


def test_the_socket_is_connectable_by_any_uid_and_removed_on_stop(
    folder: Path, patients: tuple[pa.Table, FileSource]
) -> None:
    grants = {"patients": DatasetGrant(source=patients[1], columns=GRANTED)}
    server = DalServer.start(folder / "dal.sock", TOKEN, grants)
    try:
        mode = os.stat(folder / "dal.sock").st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) & 0o666 == 0o666
        assert server.location == f"grpc+unix://{folder / 'dal.sock'}"
    finally:
        server.stop()
    server.stop()
    assert not (folder / "dal.sock").exists()
    with FlightDalReader(str(folder / "dal.sock"), TOKEN) as reader, pytest.raises(CustosError):
        reader.read("patients", ["age"])


def test_start_refuses_bad_arguments(folder: Path, patients: tuple[pa.Table, FileSource]) -> None:
    grants = {"patients": DatasetGrant(source=patients[1], columns=GRANTED)}
    with pytest.raises(InvalidInput, match="token"):
        DalServer.start(folder / "dal.sock", "", grants)
    (folder / "taken.sock").write_text("")
    with pytest.raises(InvalidInput, match=r"taken\.sock already exists"):
        DalServer.start(folder / "taken.sock", TOKEN, grants)
    deep = folder / ("d" * 120)
    with pytest.raises(InvalidInput, match="too deep for a unix socket"):
        DalServer.start(deep / "dal.sock", TOKEN, grants)


def test_the_clock_is_injected(folder: Path, patients: tuple[pa.Table, FileSource]) -> None:
    grants = {"patients": DatasetGrant(source=patients[1], columns=GRANTED)}
    moment = datetime(2030, 5, 17, 12, 0, tzinfo=UTC)
    with DalServer.start(folder / "dal.sock", TOKEN, grants, clock=lambda: moment) as server:
        with FlightDalReader(str(folder / "dal.sock"), TOKEN) as reader:
            reader.read("patients", ["sex"])
        assert server.accesses[0].time == "2030-05-17T12:00:00+00:00"


def test_the_client_checks_its_request_before_sending(client: FlightDalReader) -> None:
    with pytest.raises(InvalidInput, match="DAL request columns"):
        client.read("patients", [])


def test_a_read_the_client_abandons_is_recorded_and_does_not_block_stop(folder: Path, tmp_path: Path) -> None:
    write_dataset(pa.table({"x": pa.array(np.arange(5_000_000, dtype=np.float64))}), tmp_path / "big.parquet")
    grants = {
        "big": DatasetGrant(
            source=FileSource("big", tmp_path / "big.parquet", "parquet"), columns=frozenset({"x"})
        )
    }
    server = DalServer.start(folder / "dal.sock", TOKEN, grants)
    try:
        raw = flight.FlightClient(server.location)
        ticket = DalTicket(token=TOKEN, dataset="big", columns=["x"])
        stream = raw.do_get(flight.Ticket(ticket.model_dump_json().encode()))
        assert stream.read_chunk().data.num_rows > 0
        del stream
        raw.close()
    finally:
        server.stop()
    (record,) = server.accesses
    assert record.allowed is True
    assert 0 < record.rows < 5_000_000
    assert record.reason == "the client stopped reading before the end"
