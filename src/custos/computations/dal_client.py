"""The DAL client that sandboxed code reads rows with: Arrow Flight over the task's unix socket.

It runs inside the sandbox, so it imports nothing beyond pyarrow and `custos.core`. The server's
refusals come back as Custos errors carrying the server's own message.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

import pyarrow as pa
import pyarrow.flight as flight
from pydantic import ValidationError

from custos.core.dal_wire import DalTicket, Filter
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
        except (flight.FlightUnauthorizedError, flight.FlightUnauthenticatedError) as exc:
            raise PermissionDenied(_server_message(exc)) from None
        except pa.ArrowInvalid as exc:
            raise InvalidInput(_server_message(exc)) from None
        except flight.FlightError as exc:
            raise CustosError(f"the data access layer failed: {_server_message(exc)}") from None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> FlightDalReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _server_message(exc: Exception) -> str:
    """The server's sentence, without gRPC's transport detail and the server's traceback."""
    extra = getattr(exc, "extra_info", None)
    if isinstance(extra, bytes) and extra:
        return extra.decode(errors="replace")
    return str(exc).split(". Detail: ", 1)[0].split(". gRPC client debug context:", 1)[0]
