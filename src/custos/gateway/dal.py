"""The Data Access Layer server: the only way sandboxed code reaches rows.

One server per task, an Arrow Flight service on a unix socket whose folder is bound into that task's
sandbox alone. It serves `do_get` with a ticket (JSON of `custos.core.dal_wire.DalTicket`) and refuses
everything else. A ticket is served only when its token matches the task's token (compared in constant
time), its dataset is granted, and every column it returns or filters on is granted; filters are pushed
down into the source. Every request, served or refused, becomes an AccessRecord, kept in memory,
appended as a JSON line to the access log when one is given, and handed to `on_access` (the gateway
appends it to its hash-chained audit trail, whose head the orchestrator anchors: so the DAL's accesses
cannot be cut from the record either).

Every refusal is a Flight error carrying the DAL's sentence (`custos.core.dal_wire.DalRefusal`) and
nothing else: a Python exception raised here would reach the sandboxed code with this server's
traceback, which names the gateway's folders.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NoReturn

import pyarrow as pa
import pyarrow.flight as flight
from pydantic import ValidationError

from custos.core.clock import Clock, utcnow
from custos.core.dal_wire import DalRefusal, DalTicket
from custos.core.errors import InvalidInput, PermissionDenied
from custos.data.query import check_grant
from custos.data.source import DataSource

log = logging.getLogger(__name__)

MAX_TICKET_BYTES = 256 * 1024
MAX_TOKEN_CHARS = 256
# sockaddr_un holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107


@dataclass(frozen=True)
class DatasetGrant:
    """What one task may read of one dataset."""

    source: DataSource
    columns: frozenset[str]


@dataclass(frozen=True)
class AccessRecord:
    """One request to the DAL; the token is never kept.

    `allowed` says whether the request passed the checks; `rows` is what was served (0 when refused);
    `reason` says why a request was refused, or why an allowed read did not finish.
    """

    time: str
    dataset: str
    columns: list[str]
    filters: list[dict[str, Any]]
    rows: int
    allowed: bool
    reason: str | None = None


@dataclass
class _Ledger:
    """The access records of one server, safe to append to from Flight's threads."""

    access_log: Path | None
    clock: Clock
    on_access: Callable[[str], None] | None = None
    records: list[AccessRecord] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, ticket: DalTicket | None, rows: int, allowed: bool, reason: str | None) -> None:
        record = AccessRecord(
            time=self.clock().isoformat(),
            dataset=ticket.dataset if ticket else "",
            columns=list(ticket.columns) if ticket else [],
            filters=[f.model_dump() for f in ticket.filters] if ticket else [],
            rows=rows,
            allowed=allowed,
            reason=reason,
        )
        with self.lock:
            self.records.append(record)
            line = json.dumps(asdict(record), sort_keys=True)
            if self.access_log is not None:
                with self.access_log.open("a", encoding="utf-8") as out:
                    out.write(line + "\n")
            if self.on_access is not None:
                self.on_access(line)


class _DalService(flight.FlightServerBase):  # type: ignore[misc]
    def __init__(
        self, location: str, token: str, grants: Mapping[str, DatasetGrant], ledger: _Ledger
    ) -> None:
        super().__init__(location)
        self._token = token.encode()
        self._grants = dict(grants)
        self._ledger = ledger

    def do_get(self, context: flight.ServerCallContext, ticket: flight.Ticket) -> flight.FlightDataStream:
        request = self._parse(ticket.ticket)
        if not hmac.compare_digest(request.token.encode(), self._token):
            self._refuse(
                request, flight.FlightUnauthenticatedError, "the DAL token is not valid for this task"
            )
        grant = self._grants.get(request.dataset)
        if grant is None:
            granted = ", ".join(sorted(self._grants)) or "none"
            self._refuse(
                request,
                flight.FlightUnauthorizedError,
                f"dataset {request.dataset} is not granted to this task; granted: {granted}",
            )
        try:
            check_grant(request.dataset, grant.columns, request.columns, request.filters)
        except PermissionDenied as exc:
            self._refuse(request, flight.FlightUnauthorizedError, exc.message)
        try:
            reader = grant.source.read(request.columns, request.filters)
        except InvalidInput as exc:
            self._refuse(request, flight.FlightServerError, exc.message, kind="invalid")
        except Exception as exc:
            self._failed(request, exc)
        return flight.GeneratorStream(reader.schema, self._stream(request, reader))

    def _stream(self, request: DalTicket, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        rows = 0
        problem: str | None = "the client stopped reading before the end"
        try:
            for batch in reader:
                rows += batch.num_rows
                yield batch
            problem = None
        except Exception as exc:
            problem = f"reading failed ({type(exc).__name__})"
            log.exception("DAL read of dataset %s failed", request.dataset)
            # The source's own message can quote rows, including columns that were not granted.
            raise _flight_error(
                flight.FlightServerError, f"reading dataset {request.dataset} failed at the gateway", "failed"
            ) from None
        finally:
            reader.close()
            self._ledger.add(request, rows, True, problem)

    def _parse(self, raw: bytes) -> DalTicket:
        if len(raw) > MAX_TICKET_BYTES:
            message = f"the ticket is larger than {MAX_TICKET_BYTES} bytes"
        else:
            try:
                return DalTicket.model_validate_json(raw)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "ticket"
                message = f"the ticket is not a valid DAL ticket: {where}: {first['msg']}"
        self._refuse(None, flight.FlightServerError, message, kind="invalid")

    def _refuse(
        self,
        request: DalTicket | None,
        error: type[flight.FlightError],
        message: str,
        kind: Literal["denied", "invalid"] = "denied",
    ) -> NoReturn:
        self._ledger.add(request, 0, False, message)
        raise _flight_error(error, message, kind) from None

    def _failed(self, request: DalTicket, exc: Exception) -> NoReturn:
        log.exception("DAL read of dataset %s failed", request.dataset)
        self._ledger.add(request, 0, True, f"reading failed ({type(exc).__name__})")
        message = f"reading dataset {request.dataset} failed at the gateway"
        raise _flight_error(flight.FlightServerError, message, "failed") from None

    def _unsupported(self, what: str) -> NoReturn:
        self._refuse(
            None,
            flight.FlightUnauthorizedError,
            f"the data access layer serves only do_get; {what} is refused",
        )

    def list_flights(self, context: Any, criteria: Any) -> NoReturn:
        self._unsupported("list_flights")

    def get_flight_info(self, context: Any, descriptor: Any) -> NoReturn:
        self._unsupported("get_flight_info")

    def get_schema(self, context: Any, descriptor: Any) -> NoReturn:
        self._unsupported("get_schema")

    def do_put(self, context: Any, descriptor: Any, reader: Any, writer: Any) -> NoReturn:
        self._unsupported("do_put")

    def do_exchange(self, context: Any, descriptor: Any, reader: Any, writer: Any) -> NoReturn:
        self._unsupported("do_exchange")

    def list_actions(self, context: Any) -> NoReturn:
        self._unsupported("list_actions")

    def do_action(self, context: Any, action: Any) -> NoReturn:
        self._unsupported("do_action")


def _flight_error(
    error: type[flight.FlightError], message: str, kind: Literal["denied", "invalid", "failed"]
) -> flight.FlightError:
    """A Flight error whose message is `message` and whose detail says what kind of refusal it is."""
    return error(message, DalRefusal(kind=kind, message=message).model_dump_json().encode())


class DalServer:
    """A running DAL for one task. Start with `DalServer.start(...)`; stop with `stop()` or `with`."""

    def __init__(self, service: _DalService, socket_path: Path, ledger: _Ledger) -> None:
        self._service = service
        self._socket_path = socket_path
        self._ledger = ledger
        self._stopped = False
        self._stop_lock = threading.Lock()

    @classmethod
    def start(
        cls,
        socket_path: Path,
        token: str,
        grants: Mapping[str, DatasetGrant],
        *,
        access_log: Path | None = None,
        clock: Clock = utcnow,
        on_access: Callable[[str], None] | None = None,
    ) -> DalServer:
        """Serve on `grpc+unix://<socket_path>`; returns once the socket accepts connections."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidInput(f"token: the DAL needs a token of 1 to {MAX_TOKEN_CHARS} characters")
        if len(os.fsencode(socket_path)) > MAX_SOCKET_PATH_BYTES:
            raise InvalidInput(
                f"socket_path: {socket_path.name} is in a folder too deep for a unix socket "
                f"(at most {MAX_SOCKET_PATH_BYTES} bytes); use a shorter path"
            )
        if not socket_path.parent.is_dir():
            raise InvalidInput(
                f"socket_path: the folder for {socket_path.name} does not exist; create it first"
            )
        if socket_path.exists():
            raise InvalidInput(
                f"socket_path: {socket_path.name} already exists; give each task a fresh folder"
            )
        ledger = _Ledger(access_log, clock, on_access)
        service = _DalService(f"grpc+unix://{socket_path}", token, grants, ledger)
        server = cls(service, socket_path, ledger)
        try:
            if not stat.S_ISSOCK(socket_path.stat().st_mode):
                raise InvalidInput(f"socket_path: {socket_path.name} is not a socket after binding")
            # The sandboxed code runs as another, unprivileged uid. Only its sandbox sees this folder,
            # and the token guards every read, so any uid may connect.
            socket_path.chmod(0o666)
        except BaseException:
            server.stop()
            raise
        return server

    @property
    def location(self) -> str:
        return f"grpc+unix://{self._socket_path}"

    @property
    def accesses(self) -> list[AccessRecord]:
        """Every request so far, served or refused, oldest first."""
        with self._ledger.lock:
            return list(self._ledger.records)

    def stop(self) -> None:
        """Stop serving, waiting for requests in flight, and remove the socket. Safe to call twice."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
            self._service.shutdown()
            self._service.wait()
            self._socket_path.unlink(missing_ok=True)

    def __enter__(self) -> DalServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
