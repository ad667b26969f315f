"""The contract every federated model meets.

A model runs in two places. At the orchestrator, `start` and `aggregate` drive rounds: each round the
orchestrator hands every gateway the same `round_input`, collects one result per site, and `aggregate`
either asks for another round or returns the final result. In the sandbox at each gateway,
`compute_site` reads rows only through a `DalReader` and returns sufficient statistics. Before a site
result leaves the gateway, the gateway (not the sandboxed code) applies `filter_site_result`.

Everything passed between the two sides is JSON: no pickles, no code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from custos.core.dal_wire import Filter
from custos.core.schema import DatasetSchema

Json = dict[str, Any]


class DalReader(Protocol):
    """Rows for sandboxed code. Implementations: the DAL Flight client, and a mock-backed reader."""

    def read(self, dataset: str, columns: Sequence[str], filters: Sequence[Filter] = ()) -> pa.Table:
        """Return the granted `columns` of `dataset`, with `filters` applied at the source."""
        ...


@dataclass(frozen=True)
class NextRound:
    """Ask every site for another round. `state` is persisted by the orchestrator between rounds."""

    round_input: Json
    state: Json


@dataclass(frozen=True)
class Final:
    result: Json


Step = NextRound | Final


class FederatedModel(Protocol):
    name: str
    version: str

    def validate_params(
        self, params: Mapping[str, Any], schema: DatasetSchema, columns: Sequence[str]
    ) -> None:
        """Raise InvalidInput naming the field if `params` are not valid for `schema` and the spec's
        `columns`. MUST NOT touch data."""
        ...

    def columns_used(self, params: Mapping[str, Any]) -> list[str]:
        """Every column the computation will read, for policy checks and DAL grants."""
        ...

    def start(self, params: Mapping[str, Any]) -> NextRound:
        """The first round."""
        ...

    def aggregate(
        self, params: Mapping[str, Any], state: Json, site_results: Mapping[str, Json], min_count: int
    ) -> Step:
        """Combine one round's site results (keyed by `gateway/dataset`). MUST be deterministic.
        `min_count` is the strictest minimum cell count among the datasets' policies: pooled cells
        below it, and totals that would reveal them, are suppressed."""
        ...

    def compute_site(
        self, dal: DalReader, dataset: str, params: Mapping[str, Any], round_input: Json
    ) -> Json:
        """One site's part of a round, run in the sandbox."""
        ...

    def filter_site_result(self, params: Mapping[str, Any], result: Json, min_count: int) -> Json:
        """Disclosure control applied by the gateway to what leaves the site."""
        ...
