"""The DAL client that sandboxed code reads rows with: Arrow Flight over the task's unix socket.

It runs inside the sandbox, so it imports nothing beyond pyarrow and `custos.core`. The server's
refusals come back as Custos errors carrying the server's own sentence (`DalRefusal`).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import assert_never

import pyarrow as pa
import pyarrow.flight as flight
from pydantic import ValidationError

from custos.core.dal_wire import DalRefusal, DalTicket, Filter
from custos.core.errors import CustosError, InvalidInput, PermissionDenied


class FlightDalReader:
    """A `DalReader` talking to the task's DAL server."""

    def __init__(self, socket_path: str, token: str) -> None:
        self._token = token
        self._client = flight.FlightClient(f"grpc+unix://{socket_path}")

    def read(self, dataset: str, columns: Sequence[str], filters: Sequence[Filter] = ()) -> pa.Table:
        try:
            ticket = DalTicket(
                token=self._token, dataset=dataset, columns=list(columns), filters=list(filters)
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "request"
            raise InvalidInput(f"DAL request {where}: {first['msg']}") from None
        try:
            return self._client.do_get(flight.Ticket(ticket.model_dump_json().encode())).read_all()
        except (flight.FlightError, pa.ArrowException) as exc:
            raise _refusal(exc) from None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> FlightDalReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _refusal(exc: Exception) -> CustosError:
    """The DAL's refusal as a Custos error carrying the DAL's own sentence (`DalRefusal`), without
    gRPC's transport detail."""
    extra = getattr(exc, "extra_info", None)
    try:
        refusal = DalRefusal.model_validate_json(extra) if isinstance(extra, bytes) and extra else None
    except ValidationError:
        refusal = None
    if refusal is None:
        first = str(exc).split(". Detail: ", 1)[0].split(". gRPC client debug context:", 1)[0]
        return CustosError(f"the data access layer failed: {first}")
    match refusal.kind:
        case "denied":
            return PermissionDenied(refusal.message)
        case "invalid":
            return InvalidInput(refusal.message)
        case "failed":
            return CustosError(f"the data access layer failed: {refusal.message}")
        case _:
            assert_never(refusal.kind)
