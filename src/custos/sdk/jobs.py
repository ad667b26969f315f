"""The Client's calls on jobs: submit (or preview what one would spend), poll until done, fetch the
result with its downloads, read the privacy budget spent, and the released logs of failed custom code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from custos.core.blobs import check_blob, refs_in
from custos.core.errors import Conflict
from custos.core.inert import inert
from custos.core.states import JobState
from custos.core.wire import (
    BudgetPublic,
    JobCreate,
    JobPreview,
    JobPublic,
    JobResult,
    ReleasedLogCreate,
    ReleasedLogPublic,
)
from custos.sdk.job import Job
from custos.sdk.progress import JobProgress
from custos.sdk.responses import check_response, decode, decode_list
from custos.sdk.result import Result
from custos.sdk.session import Session
from custos.sdk.waiting import WaitTimeout, poll_intervals

JOB_DONE_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.AWAITING_RELEASE}
)


class JobsMixin(Session):
    """Jobs on active specs: submit, preview, wait, results and their downloads, budget, released logs."""

    def submit_job(self, spec_id: str, params: Mapping[str, Any]) -> Job:
        """Queue a job on an active spec. The returned Job is a JobPublic that can also `wait()`."""
        body = JobCreate(spec_id=spec_id, params=dict(params))
        response = self._send("POST", "/jobs", body=body.model_dump(mode="json"))
        return Job.bound(decode(response, JobPublic), self)

    def preview_job(self, spec_id: str, params: Mapping[str, Any]) -> JobPreview:
        """What the job would spend of your privacy budget per dataset, and what would remain (per the
        orchestrator's mirror of the gateways' ledgers). It is checked as a submission is; nothing runs."""
        body = JobCreate(spec_id=spec_id, params=dict(params))
        return decode(self._send("POST", "/jobs/preview", body=body.model_dump(mode="json")), JobPreview)

    def budget(self) -> list[BudgetPublic]:
        """What you and your org have spent per dataset, as the gateways last reported it (org admins
        see every row of their org's datasets)."""
        return decode_list(self._send("GET", "/budget"), BudgetPublic)

    def job(self, job_id: str) -> Job:
        return Job.bound(decode(self._send("GET", f"/jobs/{job_id}"), JobPublic), self)

    def cancel_job(self, job_id: str) -> Job:
        """Cancel a job that has not finished; its open tasks fail, and a result sent for them later
        is refused. What a gateway already spent of a privacy budget stays spent."""
        return Job.bound(decode(self._send("POST", f"/jobs/{job_id}/cancel"), JobPublic), self)

    def wait_job(self, job_id: str, *, timeout: float = 300, progress: bool = False) -> Job:
        """Poll until the job has succeeded or is held for release review, and return it.

        Raise Conflict with the reason if it failed or was cancelled, WaitTimeout after `timeout` seconds.
        `progress` draws a progress bar of the job's tasks on stderr.
        """
        with JobProgress(job_id, enabled=progress) as bar:
            for _ in poll_intervals(timeout):
                job = self.job(job_id)
                bar.update(job)
                if job.state in JOB_DONE_STATES:
                    break
            else:
                raise WaitTimeout(f"job {job_id} is still {job.state} after {timeout:g} s")
        if job.state in (JobState.FAILED, JobState.CANCELLED):
            raise Conflict(inert(f"job {job_id} {job.state}: {job.reason or 'no reason given'}"))
        return job

    def job_result(self, job_id: str) -> Result:
        """The result of a succeeded job. Conflict (with the server's reason) while it is not available."""
        wire = decode(self._send("GET", f"/jobs/{job_id}/result"), JobResult)
        blobs = {digest: self._blob(job_id, digest, size) for digest, size in refs_in(wire.result).items()}
        return Result(wire, blobs)

    def _blob(self, job_id: str, digest: str, size: int) -> bytes:
        """A blob of the job's result (its model weights), checked against its reference."""
        response = check_response(self._send("GET", f"/jobs/{job_id}/blobs/{digest}"))
        return check_blob(digest, size, response.content)

    def job_logs(self, job_id: str) -> list[ReleasedLogPublic]:
        """The full logs of the job's failed custom code tasks that a custodian has released, oldest
        first; empty until one is (until then the job's reason holds only a redacted message)."""
        return decode_list(self._send("GET", f"/jobs/{job_id}/logs"), ReleasedLogPublic)

    def release_log(
        self, job_id: str, *, gateway: str, task_id: str, attempt: int, log: str
    ) -> ReleasedLogPublic:
        """As a custodian of `gateway`'s org: release a failed custom code task's full log, as the
        gateway kept it (`custos gateway log show`), to the job's researcher."""
        body = ReleasedLogCreate(gateway=gateway, task_id=task_id, attempt=attempt, log=log)
        response = self._send("POST", f"/jobs/{job_id}/logs", body=body.model_dump(mode="json"))
        return decode(response, ReleasedLogPublic)
