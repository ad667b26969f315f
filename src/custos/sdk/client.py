"""The researcher's and custodian's Python client for an orchestrator.

    with Client.from_kit(Path("kits/alice")) as client:  # or Client.from_token(url, token, root_ca=...)
        spec = client.create_spec("bmi", "stats@1.0.0", ["site-a/patients"], ["age", "bmi"])
        client.activate_spec(spec.id)
        job = client.submit_job(spec.id, {"columns": ["bmi"], "statistics": ["mean"]})
        job.wait()  # a progress bar on stderr; the same as client.wait_job(job.id, progress=True)
        print(job.result().tables())

Every method sends one request (the waits poll) and returns a typed object. A refusal raises the
`custos.core.errors` exception for its HTTP status with the server's sentence; an orchestrator that
cannot be reached raises a CustosError that names its URL.
"""

from __future__ import annotations

import base64
import inspect
import os
import re
import ssl
import textwrap
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, get_args
from urllib.parse import urlencode

import httpx

from custos.computations.custom.code_package import build_code_package, verify_code_package
from custos.core.blobs import check_blob, refs_in
from custos.core.errors import Conflict, CustosError, InvalidInput
from custos.core.refs import parse_dataset_ref, parse_model_ref
from custos.core.states import JobState, ReleaseState, SpecState
from custos.core.wire import (
    API_TOKEN_PREFIX,
    ApiToken,
    ApiTokenCreate,
    ApiTokenPublic,
    BudgetPublic,
    CodeOutput,
    CodeRequestCreate,
    CodeRequestDetail,
    CodeRequestPublic,
    CodeReviewCreate,
    CodeSource,
    DatasetInfo,
    JobCreate,
    JobPreview,
    JobPublic,
    JobResult,
    Me,
    MockTable,
    ModelDetail,
    ModelPublic,
    ModelPublish,
    PasswordSet,
    ReleaseDetail,
    ReleasedLogCreate,
    ReleasedLogPublic,
    ReleasePublic,
    ReleaseVoteCreate,
    Resources,
    SignedPolicy,
    SpecCreate,
    SpecPublic,
)
from custos.data.ipc import table_from_ipc_b64
from custos.pki.kit import Kit, load_kit
from custos.pki.signin import KitAuth
from custos.pki.tls import client_ssl_context
from custos.registry import build_archive, sign_archive
from custos.sdk.dataset import Dataset
from custos.sdk.job import Job
from custos.sdk.progress import JobProgress
from custos.sdk.responses import check_response, decode, decode_list
from custos.sdk.result import Result
from custos.sdk.spec import Spec
from custos.sdk.waiting import WaitTimeout, poll_intervals

if TYPE_CHECKING:
    # pandas takes half a second to import; only mocks and result tables need it.
    import pandas as pd

API_PREFIX = "/api/v1"
JOB_DONE_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.AWAITING_RELEASE}
)
PASSWORD_CHARS = (12, 1024)
_TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_RELEASE_ID = re.compile(r"rel_[0-9a-f]{16}")
_CODE_ID = re.compile(r"code_[0-9a-f]{16}")


class BearerToken(httpx.Auth):
    """httpx authentication with an API token: the same header on every request."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


def root_ssl_context(root_ca: Path) -> ssl.SSLContext:
    """A client context that trusts only the project's root CA and presents no certificate."""
    if not root_ca.is_file():
        raise InvalidInput(
            f"root_ca {root_ca} is not a file; give the project's root certificate "
            "(rootCA.pem in any startup kit of the project)"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cafile=str(root_ca))
    except ssl.SSLError as exc:
        raise InvalidInput(f"root_ca {root_ca} is not a PEM certificate ({exc.reason})") from exc
    return context


class Client:
    """A signed-in session with one orchestrator. Use `Client.from_kit`; close it, or use `with`."""

    def __init__(self, http: httpx.Client, *, url: str) -> None:
        """`http` must have base_url `url + "/api/v1"`, TLS and authentication already set up."""
        self._http = http
        self.url = url.rstrip("/")
        self._kit: Kit | None = None

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
        client = cls(http, url=url)
        client._kit = kit  # the key that signs what this client publishes
        return client

    @classmethod
    def from_token(cls, url: str, token: str, *, root_ca: Path, timeout: float = 30) -> Client:
        """Connect with an API token from `custos token create`, without a kit. `root_ca` is the
        project's root certificate: the orchestrator's certificate must chain to it."""
        if not token.startswith(API_TOKEN_PREFIX):
            raise InvalidInput(
                f"an API token starts with {API_TOKEN_PREFIX!r}; create one with `custos token create`"
            )
        url = url.rstrip("/")
        http = httpx.Client(
            base_url=url + API_PREFIX,
            verify=root_ssl_context(Path(root_ca)),
            auth=BearerToken(token),
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

    # --- password and API tokens ------------------------------------------------------------------

    def set_password(self, password: str) -> None:
        """Set or change your password for the web portal; your open browser sessions end. Only a
        client signed in with a kit may (`Client.from_kit`), else PermissionDenied."""
        low, high = PASSWORD_CHARS
        if not low <= len(password) <= high:
            # Said without the password itself, which must not end up in a traceback.
            raise InvalidInput(f"a password must have {low} to {high} characters, not {len(password)}")
        body = PasswordSet(password=password).model_dump(mode="json")
        check_response(self._send("POST", "/auth/password", body=body))

    def create_token(self, name: str, days: int = 90) -> ApiToken:
        """A new API token for `Client.from_token`. Its `token` is shown this once: store it."""
        body = ApiTokenCreate(name=name, days=days).model_dump(mode="json")
        return decode(self._send("POST", "/tokens", body=body), ApiToken)

    def tokens(self) -> list[ApiTokenPublic]:
        """Your API tokens, oldest first, without the tokens themselves."""
        return decode_list(self._send("GET", "/tokens"), ApiTokenPublic)

    def revoke_token(self, token_id: str) -> None:
        """Revoke one of your API tokens at once. NotFound if you hold none with that id."""
        if not _TOKEN_ID.fullmatch(token_id):
            raise InvalidInput(f"{token_id!r} is not an API token id; `custos token list` shows yours")
        check_response(self._send("DELETE", f"/tokens/{token_id}"))

    # --- datasets ---------------------------------------------------------------------------------

    def datasets(self) -> list[DatasetInfo]:
        return decode_list(self._send("GET", "/datasets"), DatasetInfo)

    def search_datasets(self, text: str) -> list[DatasetInfo]:
        """The datasets whose name, description, licence, owner org, column names or column notes
        contain every word of `text` (case-insensitive), best match first."""
        if not text.split():
            raise InvalidInput("a dataset search needs at least one word, e.g. 'diabetes' or 'age years'")
        return decode_list(self._send("GET", "/datasets?" + urlencode({"q": text})), DatasetInfo)

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

    def push_policy(self, signed: SignedPolicy) -> DatasetInfo:
        """Put a signed policy in force for its dataset (an org admin of the dataset's org signs it:
        `custos.policy.signing.sign_policy`, or `custos policy sign`)."""
        parsed = parse_dataset_ref(signed.dataset)
        path = f"/datasets/{parsed.gateway}/{parsed.dataset}/policy"
        return decode(self._send("PUT", path, body=signed.model_dump(mode="json")), DatasetInfo)

    def publish_revocations(self, crl_pem: str) -> int:
        """Put a newer revocation list (from `custos provision revoke`) in force at the orchestrator,
        which relays it to the gateways. Project admins only. Returns the list's number."""
        response = self._send("PUT", "/crl", body={"crl_pem": crl_pem})
        number = check_response(response).json().get("number")
        return int(number)

    # --- compute specs ----------------------------------------------------------------------------

    def create_spec(
        self,
        name: str,
        model: str,
        datasets: Sequence[str],
        columns: Sequence[str],
        resources: Resources | Mapping[str, Any] | None = None,
    ) -> Spec:
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
        return self._spec(self._send("POST", "/specs", body=body.model_dump(mode="json")))

    def spec(self, spec_id: str) -> Spec:
        return self._spec(self._send("GET", f"/specs/{spec_id}"))

    def specs(self) -> list[Spec]:
        return [Spec.bound(s, self) for s in decode_list(self._send("GET", "/specs"), SpecPublic)]

    def _spec(self, response: httpx.Response) -> Spec:
        return Spec.bound(decode(response, SpecPublic), self)

    def activate_spec(self, spec_id: str, *, wait: bool = True, timeout: float = 60) -> Spec:
        """Ask every gateway the spec names to validate and prepare it.

        With `wait`, poll until it is active; raise Conflict with the gateways' reason if it failed, and
        WaitTimeout if it is still activating after `timeout` seconds.
        """
        spec = self._spec(self._send("POST", f"/specs/{spec_id}/activate"))
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

    def deactivate_spec(self, spec_id: str) -> Spec:
        return self._spec(self._send("POST", f"/specs/{spec_id}/deactivate"))

    # --- jobs -------------------------------------------------------------------------------------

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
            raise Conflict(f"job {job_id} {job.state}: {job.reason or 'no reason given'}")
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

    # --- release review ---------------------------------------------------------------------------

    def releases(self, state: ReleaseState | str | None = None) -> list[ReleasePublic]:
        """The held results you may review (never your own jobs'), oldest first; `state` filters."""
        if state is None:
            return decode_list(self._send("GET", "/releases"), ReleasePublic)
        try:
            value = ReleaseState(state).value
        except ValueError:
            accepted = ", ".join(ReleaseState)
            raise InvalidInput(f"release state {state!r} is not one of {accepted}") from None
        return decode_list(self._send("GET", f"/releases?state={value}"), ReleasePublic)

    def release(self, release_id: str) -> ReleaseDetail:
        """A release with its held result, and the model, parameters and columns that made it."""
        return decode(self._send("GET", f"/releases/{_release_id(release_id)}"), ReleaseDetail)

    def approve_release(self, release_id: str, reason: str = "") -> ReleaseDetail:
        """Approve; the last approval the policy needs releases the result to the researcher."""
        return self._vote(release_id, "approve", reason)

    def return_release(self, release_id: str, reason: str) -> ReleaseDetail:
        """Send the result back to the researcher with `reason`; it is not released and the job fails."""
        return self._vote(release_id, "return", reason)

    def reject_release(self, release_id: str, reason: str) -> ReleaseDetail:
        """Refuse the release with `reason`; the job fails."""
        return self._vote(release_id, "reject", reason)

    def _vote(self, release_id: str, decision: str, reason: str) -> ReleaseDetail:
        if decision != "approve" and not reason.strip():
            raise InvalidInput(f"reason is required to {decision} a release: tell the researcher why")
        body = ReleaseVoteCreate(reason=reason).model_dump(mode="json")
        path = f"/releases/{_release_id(release_id)}/{decision}"
        return decode(self._send("POST", path, body=body), ReleaseDetail)

    # --- model registry ---------------------------------------------------------------------------

    def models(self) -> list[ModelPublic]:
        """Every registry entry: the built-in models and the published packages."""
        return decode_list(self._send("GET", "/models"), ModelPublic)

    def model(self, ref: str) -> ModelDetail:
        """One entry, `name@version`; a package's manifest comes with it."""
        parsed = parse_model_ref(ref)
        return decode(self._send("GET", f"/models/{parsed.name}/{parsed.version}"), ModelDetail)

    def publish_model(self, path: Path, *, kit: Path | None = None) -> ModelDetail:
        """Build the deterministic archive of the package folder `path`, sign it with your kit's key
        (the kit of `Client.from_kit`, or `kit`) and publish it. Publishing the same archive again is
        a no-op; another archive under a published name@version is refused (Conflict)."""
        signer = load_kit(Path(kit)) if kit is not None else self._kit
        if signer is None:
            raise InvalidInput(
                "publishing a model signs it with a kit's key: connect with Client.from_kit or pass kit="
            )
        built = build_archive(Path(path))
        signed = sign_archive(built, key=signer.private_key, certificate=signer.certificate)
        body = ModelPublish(**signed.model_dump(), archive_b64=base64.b64encode(built.data).decode("ascii"))
        return decode(self._send("POST", "/models", body=body.model_dump(mode="json")), ModelDetail)

    # --- custom code: prototype on mock, submit for review, run once approved ---------------------

    def run_on_mock(
        self,
        fn: CodeArg,
        datasets: Sequence[str],
        params: Mapping[str, Any] | None = None,
        *,
        function: str | None = None,
        output: str | None = None,
    ) -> dict[str, Any]:
        """Run `fn` (a function, a module's source with `function=`, or a package folder as a `Path`)
        on each dataset's mock table, locally, exactly as a gateway runs it on the data:
        `fn(dal, [name], params)` reading through a DAL reader with the same projection, filters and
        refusals (the columns your grant to model `custom` gives, when the policy has one), and its
        output checked as the gateway checks it, against `output` as `submit` takes it (a package's
        manifest declares it; left out, the type returned). Returns {gateway/dataset: DataFrame, dict
        or bytes}. An error raises with its full traceback: there is no real data here."""
        from custos.computations.custom.disclosure import check_output
        from custos.computations.custom.site import run_code
        from custos.computations.custom.wire import decode_output
        from custos.policy.asset import load_policy
        from custos.policy.checks import granted_columns
        from custos.testing.readers import TableDalReader

        runnable = _code_to_run(fn, function)
        declared = _declared_output(output)
        if runnable.code.package_b64 is not None:  # the defaults the orchestrator fills in, too
            package = verify_code_package(runnable.code.archive())
            params = package.manifest.check_params(dict(params or {}))
            if declared is not None and declared != package.output:
                raise InvalidInput(
                    f"output is {declared}, but the package's manifest declares {package.output}"
                )
            declared = package.output
        me = self.me()
        results: dict[str, Any] = {}
        for ref in datasets:
            parsed = parse_dataset_ref(ref)
            info = decode(self._send("GET", f"/datasets/{parsed.gateway}/{parsed.dataset}"), DatasetInfo)
            path = f"/datasets/{parsed.gateway}/{parsed.dataset}/mock"
            table = table_from_ipc_b64(decode(self._send("GET", path), MockTable).mock_arrow_b64)
            granted = None
            if info.policy_yaml:
                columns = granted_columns(load_policy(info.policy_yaml), me.name, me.org, "custom", "1.0.0")
                granted = {parsed.dataset: columns} if columns else None
            reader = TableDalReader({parsed.dataset: table}, granted=granted)
            encoded = run_code(
                runnable.code, runnable.function, reader, [parsed.dataset], dict(params or {}), declared
            )
            check_output(encoded, declared or str(encoded.get("type")))
            results[str(parsed)] = decode_output(encoded)
        return results

    def submit(
        self,
        fn: CodeArg,
        datasets: Sequence[str],
        params: Mapping[str, Any] | None = None,
        *,
        function: str | None = None,
        output: str | None = None,
    ) -> CodeRequestDetail:
        """Submit `fn`'s exact source (imports inside the function, or a module's source with
        `function=`) for review by the custodians of `datasets`; or a package folder (a `Path` to a
        folder with `custos-model.toml`) as its deterministic archive, whose manifest names the
        entrypoint, parameters and output. `output` is what a function returns: `table` (the default,
        a DataFrame), `json` (a dict) or `file:TYPE` (the bytes of a csv, json, parquet, pdf or png
        file, e.g. `file:png`). Refused for a dataset whose policy does not accept custom code."""
        runnable = _code_to_run(fn, function)
        for ref in datasets:
            parse_dataset_ref(ref)
        package = runnable.code.package_b64 is not None
        body = CodeRequestCreate(
            function=None if package else runnable.function, source=runnable.code.source,
            package_b64=runnable.code.package_b64, datasets=list(datasets), params=dict(params or {}),
            output=_declared_output(output),
        )  # fmt: skip
        return decode(self._send("POST", "/code", body=body.model_dump(mode="json")), CodeRequestDetail)

    def code_requests(self) -> list[CodeRequestPublic]:
        """Your code requests and those you may review, oldest first."""
        return decode_list(self._send("GET", "/code"), CodeRequestPublic)

    def code_request(self, request_id: str) -> CodeRequestDetail:
        """A code request with its exact source, parameters, datasets and decisions."""
        return decode(self._send("GET", f"/code/{_code_id(request_id)}"), CodeRequestDetail)

    def approve_code(self, request_id: str, reason: str = "") -> CodeRequestDetail:
        """Approve for your org: the approval, signed with your kit's key, binds the digest of the
        source you were shown (recomputed here), its function, parameters, datasets and author."""
        from custos.core.clock import utcnow
        from custos.policy.code_approval import approval_for, sign_code_approval

        if self._kit is None:
            raise InvalidInput("approving code signs it with your kit's key: connect with Client.from_kit")
        request = self.code_request(request_id)
        signed = sign_code_approval(
            approval_for(request, utcnow()), key=self._kit.private_key, certificate=self._kit.certificate
        )
        body = CodeReviewCreate(reason=reason, approval=signed).model_dump(mode="json")
        return decode(self._send("POST", f"/code/{request.id}/approve", body=body), CodeRequestDetail)

    def deny_code(self, request_id: str, reason: str) -> CodeRequestDetail:
        """Deny with `reason`, which the researcher reads."""
        if not reason.strip():
            raise InvalidInput("reason is required to deny a code request: tell the researcher why")
        body = CodeReviewCreate(reason=reason).model_dump(mode="json")
        return decode(self._send("POST", f"/code/{_code_id(request_id)}/deny", body=body), CodeRequestDetail)

    def run_code(self, request_id: str) -> JobPublic:
        """Run approved code as a job; wait with `wait_job`. Its result is held for release review."""
        return decode(self._send("POST", f"/code/{_code_id(request_id)}/run"), JobPublic)

    def code_result(self, job_id: str) -> dict[str, Any]:
        """A released custom code job's outputs: {gateway/dataset: DataFrame, dict or a file's bytes}."""
        from custos.computations.custom.wire import decode_output

        result = self.job_result(job_id).data
        return {ref: decode_output(output) for ref, output in result.get("sites", {}).items()}


def _release_id(release_id: str) -> str:
    if not _RELEASE_ID.fullmatch(release_id):
        raise InvalidInput(f"{release_id!r} is not a release id; `custos release list` shows yours")
    return release_id


def _declared_output(output: str | None) -> CodeOutput | None:
    accepted: tuple[CodeOutput, ...] = get_args(CodeOutput)
    for value in accepted:
        if output == value:
            return value
    if output is None:
        return None
    raise InvalidInput(f"output {output!r} is not one of {', '.join(accepted)}")


def _code_id(request_id: str) -> str:
    if not _CODE_ID.fullmatch(request_id):
        raise InvalidInput(f"{request_id!r} is not a code request id; `custos code list` shows yours")
    return request_id


CodeArg = Callable[..., Any] | str | os.PathLike[str]


class _Runnable(NamedTuple):
    code: CodeSource
    function: str  # a function's name, or a package's entrypoint


def _code_to_run(fn: CodeArg, function: str | None) -> _Runnable:
    """A package folder's archive and entrypoint, or a function's exact source and name."""
    folder = Path(fn) if isinstance(fn, os.PathLike) else None
    if isinstance(fn, str) and "\n" not in fn and fn.strip() and Path(fn).is_dir():
        folder = Path(fn)
    if folder is None:
        source, name = _function_source(fn, function)  # type: ignore[arg-type]
        return _Runnable(CodeSource(source=source), name)
    if function is not None:
        raise InvalidInput(
            f"{folder} is a package: it runs its manifest's entrypoint; leave out function (--function)"
        )
    built = build_code_package(folder)
    archive = base64.b64encode(built.data).decode("ascii")
    return _Runnable(CodeSource(package_b64=archive), built.manifest.entrypoint)


def _function_source(fn: Callable[..., Any] | str, function: str | None) -> tuple[str, str]:
    """The exact source to run and the name of the function to call."""
    if isinstance(fn, str):
        if not function:
            raise InvalidInput("give function= with a module's source: the name of the function to call")
        return fn, function
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise InvalidInput(f"the source of {fn!r} is not available ({exc}); pass the source text") from None
    return source, function or fn.__name__
