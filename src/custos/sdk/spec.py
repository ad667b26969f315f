"""A compute spec as the SDK returns it: the orchestrator's SpecPublic, plus what you can do with it.

    spec = client.create_spec("bmi", "stats@1.0.0", ["site-a/patients"], ["age", "bmi"])
    spec = spec.activate()
    job = spec.submit({"columns": ["bmi"], "statistics": ["mean"]})

`Spec` is a SpecPublic (same fields, same JSON), so code written against SpecPublic keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import PrivateAttr

from custos.core.errors import CustosError
from custos.core.inert import inert
from custos.core.wire import SpecPublic
from custos.sdk.display import fields_html

if TYPE_CHECKING:
    from custos.sdk.job import Job


class SpecSource(Protocol):
    """What a Spec asks of the client that fetched it (a `custos.sdk.Client`)."""

    def spec(self, spec_id: str) -> Spec: ...

    def activate_spec(self, spec_id: str, *, wait: bool = ..., timeout: float = ...) -> Spec: ...

    def deactivate_spec(self, spec_id: str) -> Spec: ...

    def submit_job(self, spec_id: str, params: Mapping[str, Any]) -> Job: ...


class Spec(SpecPublic):
    """A spec's state when it was fetched. Its methods ask the orchestrator and return fresh objects."""

    _client: SpecSource | None = PrivateAttr(default=None)

    @classmethod
    def bound(cls, wire: SpecPublic, client: SpecSource) -> Spec:
        spec = cls.model_validate(wire.model_dump())
        spec._client = client
        return spec

    def _bound_client(self) -> SpecSource:
        if self._client is None:
            raise CustosError(
                f"compute spec {self.id} is not bound to a client; use client.spec({self.id!r})"
            )
        return self._client

    def refresh(self) -> Spec:
        return self._bound_client().spec(self.id)

    def activate(self, *, wait: bool = True, timeout: float = 60) -> Spec:
        """`Client.activate_spec` for this spec."""
        return self._bound_client().activate_spec(self.id, wait=wait, timeout=timeout)

    def deactivate(self) -> Spec:
        return self._bound_client().deactivate_spec(self.id)

    def submit(self, params: Mapping[str, Any]) -> Job:
        """Submit a job on this (active) spec."""
        return self._bound_client().submit_job(self.id, params)

    def __repr__(self) -> str:
        reason = f" reason={self.reason!r}" if self.reason else ""
        return inert(
            f"<Spec {self.id} {self.name!r} {self.model} {self.state.value} "
            f"datasets={','.join(self.datasets)} columns={','.join(self.columns)}{reason}>"
        )

    def _repr_html_(self) -> str:
        limits = self.resources.model_dump(exclude_none=True)
        fields = [
            ("name", self.name),
            ("state", self.state.value),
            ("reason", self.reason),
            ("model", self.model),
            ("datasets", ", ".join(self.datasets)),
            ("columns", ", ".join(self.columns)),
            ("resources", ", ".join(f"{k}={v}" for k, v in limits.items())),
            ("owner", f"{self.owner} ({self.org})"),
            ("created", f"{self.created_at:%Y-%m-%d %H:%M:%S} UTC"),
        ]
        return fields_html(f"compute spec {self.id}", fields)
