"""A job as the SDK returns it: the orchestrator's JobPublic, plus what you can do with it.

    job = client.submit_job(spec.id, {"columns": ["bmi"], "statistics": ["mean"]})
    job.wait()                  # blocks, with a progress bar; Conflict if it failed
    job.result().tables()
    job.cancel()                # its gateways end its sandboxes; no result of it is accepted

`Job` is a JobPublic (same fields, same JSON), so code written against JobPublic keeps working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pydantic import PrivateAttr

from custos.core.errors import CustosError
from custos.core.inert import inert
from custos.core.states import TaskState
from custos.core.wire import JobPublic, TaskKind
from custos.sdk.display import fields_html, table_html

if TYPE_CHECKING:
    from custos.sdk.result import Result


class JobSource(Protocol):
    """What a Job asks of the client that fetched it (a `custos.sdk.Client`)."""

    def job(self, job_id: str) -> Job: ...

    def wait_job(self, job_id: str, *, timeout: float = ..., progress: bool = ...) -> Job: ...

    def job_result(self, job_id: str) -> Result: ...

    def cancel_job(self, job_id: str) -> Job: ...


class Job(JobPublic):
    """A job's state when it was fetched. `refresh`, `wait` and `result` ask the orchestrator again."""

    _client: JobSource | None = PrivateAttr(default=None)

    @classmethod
    def bound(cls, wire: JobPublic, client: JobSource) -> Job:
        job = cls.model_validate(wire.model_dump())
        job._client = client
        return job

    def _bound_client(self) -> JobSource:
        if self._client is None:
            raise CustosError(f"job {self.id} is not bound to a client; use client.job({self.id!r})")
        return self._client

    def refresh(self) -> Job:
        """The job as it is now."""
        return self._bound_client().job(self.id)

    def wait(self, *, timeout: float = 300, progress: bool = True) -> Job:
        """Block until the job has succeeded or is held for release review, drawing a progress bar of
        its tasks on stderr. Conflict with the reason if it failed or was cancelled; WaitTimeout after
        `timeout` seconds (the job goes on)."""
        return self._bound_client().wait_job(self.id, timeout=timeout, progress=progress)

    def result(self) -> Result:
        """The result of the succeeded job (Conflict while it is not available)."""
        return self._bound_client().job_result(self.id)

    def cancel(self) -> Job:
        """Cancel the job (see `Client.cancel_job`) and return it as it now is."""
        return self._bound_client().cancel_job(self.id)

    def tasks_done(self) -> tuple[int, int]:
        """(done, all) compute tasks of the current round, as the progress bar counts them."""
        current = [t for t in self.tasks if t.kind is TaskKind.COMPUTE and t.round == self.round]
        return sum(1 for t in current if t.state is TaskState.DONE), len(current)

    def __repr__(self) -> str:
        done, total = self.tasks_done()
        reason = f" reason={self.reason!r}" if self.reason else ""
        return inert(
            f"<Job {self.id} {self.model} {self.state.value} round={self.round} "
            f"tasks={done}/{total} done{reason}>"
        )

    def _repr_html_(self) -> str:
        fields = [
            ("state", self.state.value),
            ("model", self.model),
            ("spec", self.spec_id),
            ("round", self.round),
            ("reason", self.reason),
            ("submitted by", f"{self.submitter} ({self.org})"),
            ("created", f"{self.created_at:%Y-%m-%d %H:%M:%S} UTC"),
            ("finished", f"{self.finished_at:%Y-%m-%d %H:%M:%S} UTC" if self.finished_at else None),
        ]
        tasks = table_html(
            ["gateway", "dataset", "kind", "round", "state", "attempt", "error"],
            [
                [t.gateway, t.dataset, t.kind.value, t.round, t.state.value, t.attempt, t.error]
                for t in self.tasks
            ],
        )
        return fields_html(f"job {self.id}", fields) + tasks
