"""The researcher's and custodian's Python client for an orchestrator.

    with Client.from_kit(Path("kits/alice")) as client:
        spec = client.create_spec("bmi", "stats@1.0.0", ["site-a/patients"], ["age", "bmi"])
        client.activate_spec(spec.id)
        job = client.submit_job(spec.id, {"columns": ["bmi"], "statistics": ["mean"]})
        client.wait_job(job.id)
        print(client.job_result(job.id).tables())

Every method sends one request (the waits poll) and returns a typed object. A refusal raises the
`custos.core.errors` exception for its HTTP status with the server's sentence; an orchestrator that
cannot be reached raises a CustosError that names its URL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from custos.core.errors import Conflict, CustosError
from custos.core.refs import parse_dataset_ref, parse_model_ref
from custos.core.states import JobState, SpecState
from custos.core.wire import (
    DatasetInfo,
    JobCreate,
    JobPublic,
    JobResult,
    Me,
    MockTable,
    Resources,
    SpecCreate,
    SpecPublic,
)
from custos.data.ipc import table_from_ipc_b64
from custos.pki.kit import load_kit
from custos.pki.signin import KitAuth
from custos.pki.tls import client_ssl_context
from custos.sdk.dataset import Dataset
from custos.sdk.progress import JobProgress
from custos.sdk.responses import check_response, decode, decode_list
from custos.sdk.result import Result
from custos.sdk.waiting import WaitTimeout, poll_intervals

if TYPE_CHECKING:
    # pandas takes half a second to import; only mocks and result tables need it.
    import pandas as pd

API_PREFIX = "/api/v1"
JOB_DONE_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.AWAITING_RELEASE}
)


class Client:
    """A signed-in session with one orchestrator. Use `Client.from_kit`; close it, or use `with`."""

    def __init__(self, http: httpx.Client, *, url: str) -> None:
        """`http` must have base_url `url + "/api/v1"`, TLS and authentication already set up."""
        self._http = http
        self.url = url.rstrip("/")

    @classmethod
    def from_kit(cls, kit_dir: Path, *, timeout: float = 30) -> Client:
        """Connect with the startup kit `custos provision` wrote for you (certificate, key, project CA)."""
        kit = load_kit(Path(kit_dir))
        url = kit.config.orchestrator_url.rstrip("/")
        http = httpx.Client(
            base_url=url + API_PREFIX,
            verify=client_ssl_context(kit),
            auth=KitAuth(kit),
            timeout=timeout,
        )
        return cls(http, url=url)

    # --- plumbing ---------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<custos.Client {self.url}>"

    def _send(self, method: str, path: str, *, body: Any = None, auth: bool = True) -> httpx.Response:
        try:
            if auth:
                return self._http.request(method, path, json=body)
            return self._http.request(method, path, json=body, auth=None)
        except httpx.TimeoutException as exc:
            raise CustosError(f"the orchestrator at {self.url} did not answer in time ({exc})") from exc
        except httpx.TransportError as exc:
            raise CustosError(f"the orchestrator at {self.url} is unreachable: {exc}") from exc

    # --- identity and health ----------------------------------------------------------------------

    def health(self) -> bool:
        """True when the orchestrator answers /healthz with status ok. Needs no sign-in."""
        response = check_response(self._send("GET", self.url + "/healthz", auth=False))
        body = response.json()
        return isinstance(body, dict) and body.get("status") == "ok"

    def me(self) -> Me:
        return decode(self._send("GET", "/me"), Me)

    # --- datasets ---------------------------------------------------------------------------------

    def datasets(self) -> list[DatasetInfo]:
        return decode_list(self._send("GET", "/datasets"), DatasetInfo)

    def dataset(self, ref: str) -> Dataset:
        """`ref` is gateway/dataset, e.g. site-a/patients."""
        parsed = parse_dataset_ref(ref)
        info = decode(self._send("GET", f"/datasets/{parsed.gateway}/{parsed.dataset}"), DatasetInfo)
        return Dataset(info, load_mock=lambda: self.mock(ref))

    def mock(self, ref: str) -> pd.DataFrame:
        """The dataset's mock table: its schema, plausible values, no real row."""
        parsed = parse_dataset_ref(ref)
        table = decode(self._send("GET", f"/datasets/{parsed.gateway}/{parsed.dataset}/mock"), MockTable)
        frame: pd.DataFrame = table_from_ipc_b64(table.mock_arrow_b64).to_pandas()
        return frame

    # --- compute specs ----------------------------------------------------------------------------

    def create_spec(
        self,
        name: str,
        model: str,
        datasets: Sequence[str],
        columns: Sequence[str],
        resources: Resources | Mapping[str, Any] | None = None,
    ) -> SpecPublic:
        """Propose a compute spec. The orchestrator checks it against the datasets' policies."""
        parse_model_ref(model)
        for ref in datasets:
            parse_dataset_ref(ref)
        if isinstance(resources, Mapping):
            resources = Resources.model_validate(dict(resources))
        body = SpecCreate(
            name=name,
            model=model,
            datasets=list(datasets),
            columns=list(columns),
            resources=resources if resources is not None else Resources(),
        )
        return decode(self._send("POST", "/specs", body=body.model_dump(mode="json")), SpecPublic)

    def spec(self, spec_id: str) -> SpecPublic:
        return decode(self._send("GET", f"/specs/{spec_id}"), SpecPublic)

    def specs(self) -> list[SpecPublic]:
        return decode_list(self._send("GET", "/specs"), SpecPublic)

    def activate_spec(self, spec_id: str, *, wait: bool = True, timeout: float = 60) -> SpecPublic:
        """Ask every gateway the spec names to validate and prepare it.

        With `wait`, poll until it is active; raise Conflict with the gateways' reason if it failed, and
        WaitTimeout if it is still activating after `timeout` seconds.
        """
        spec = decode(self._send("POST", f"/specs/{spec_id}/activate"), SpecPublic)
        if not wait:
            return spec
        for _ in poll_intervals(timeout):
            if spec.state is SpecState.ACTIVE:
                return spec
            if spec.state is SpecState.FAILED:
                raise Conflict(
                    f"compute spec {spec_id} failed to activate: {spec.reason or 'no reason given'}"
                )
            if spec.state is not SpecState.ACTIVATING:
                raise Conflict(f"compute spec {spec_id} is {spec.state}, not activating")
            spec = self.spec(spec_id)
        raise WaitTimeout(f"compute spec {spec_id} is still {spec.state} after {timeout:g} s")

    def deactivate_spec(self, spec_id: str) -> SpecPublic:
        return decode(self._send("POST", f"/specs/{spec_id}/deactivate"), SpecPublic)

    # --- jobs -------------------------------------------------------------------------------------

    def submit_job(self, spec_id: str, params: Mapping[str, Any]) -> JobPublic:
        body = JobCreate(spec_id=spec_id, params=dict(params))
        return decode(self._send("POST", "/jobs", body=body.model_dump(mode="json")), JobPublic)

    def job(self, job_id: str) -> JobPublic:
        return decode(self._send("GET", f"/jobs/{job_id}"), JobPublic)

    def wait_job(self, job_id: str, *, timeout: float = 300, progress: bool = False) -> JobPublic:
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
            raise Conflict(f"job {job_id} {job.state}: {job.reason or 'no reason given'}")
        return job

    def job_result(self, job_id: str) -> Result:
        """The result of a succeeded job. Conflict (with the server's reason) while it is not available."""
        return Result(decode(self._send("GET", f"/jobs/{job_id}/result"), JobResult))
