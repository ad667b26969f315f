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
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from custos.core.errors import Conflict, InvalidInput
from custos.core.inert import inert
from custos.core.refs import parse_dataset_ref, parse_model_ref
from custos.core.states import SpecState
from custos.core.wire import (
    ApiToken,
    ApiTokenCreate,
    ApiTokenPublic,
    AuditAnchorPublic,
    DatasetInfo,
    MockTable,
    ModelDetail,
    ModelPublic,
    ModelPublish,
    PasswordSet,
    Resources,
    SignedPolicy,
    SitePublic,
    SpecCreate,
    SpecPublic,
    confidential_message,
)
from custos.data.ipc import table_from_ipc_b64
from custos.pki.kit import load_kit
from custos.registry import SealedArchive, build_archive, sign_archive, sign_message
from custos.sdk.code import CodeMixin
from custos.sdk.dataset import Dataset
from custos.sdk.releases import ReleasesMixin
from custos.sdk.responses import check_response, decode, decode_list
from custos.sdk.spec import Spec
from custos.sdk.waiting import WaitTimeout, poll_intervals

if TYPE_CHECKING:
    # pandas takes half a second to import; only mocks and result tables need it.
    import pandas as pd

PASSWORD_CHARS = (12, 1024)
_TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TRAIL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Client(CodeMixin, ReleasesMixin):
    """A signed-in session with one orchestrator. Use `Client.from_kit`; close it, or use `with`.

    The calls on your password and tokens, datasets, specs and models are here; those on jobs are in
    `custos.sdk.jobs`, custom code in `custos.sdk.code`, release review in `custos.sdk.releases`, and
    the connection itself (`from_kit`, `from_token`, `health`, `me`) in `custos.sdk.session`.
    """

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

    def sites(self) -> list[SitePublic]:
        """Every gateway: its org, the release it runs, when it was last seen, whether it is online
        (seen within `offline_after_s`), and how many tasks it is working on."""
        return decode_list(self._send("GET", "/sites"), SitePublic)

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

    # --- audit anchors --------------------------------------------------------------------------

    def audit_anchors(self, trail: str) -> list[AuditAnchorPublic]:
        """The heads the orchestrator keeps of an audit trail, oldest first: a gateway's (its name;
        for its org's admins) or its own (`orchestrator`; project admins). Pass them to
        `custos.audit.verify_trail(path, anchors=[(a.index, a.hash) for a in ...])` to find a cut end."""
        if not _TRAIL.fullmatch(trail):
            raise InvalidInput(f"{trail!r} is not a trail name: give a gateway's name, or 'orchestrator'")
        return decode_list(self._send("GET", f"/audit/anchors/{trail}"), AuditAnchorPublic)

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
                    inert(f"compute spec {spec_id} failed to activate: {spec.reason or 'no reason given'}")
                )
            if spec.state is not SpecState.ACTIVATING:
                raise Conflict(f"compute spec {spec_id} is {spec.state}, not activating")
            spec = self.spec(spec_id)
        raise WaitTimeout(f"compute spec {spec_id} is still {spec.state} after {timeout:g} s")

    def deactivate_spec(self, spec_id: str) -> Spec:
        return self._spec(self._send("POST", f"/specs/{spec_id}/deactivate"))

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

    def publish_confidential(self, sealed: SealedArchive, *, kit: Path | None = None) -> ModelDetail:
        """Publish `sealed` (from `seal_archive` of a package folder's archive) signed with your kit:
        the orchestrator stores only its ciphertext and signed terms. Deposit its data key at your key
        broker first (`custos keybroker` does both: docs/confidential.md)."""
        signer = load_kit(Path(kit)) if kit is not None else self._kit
        if signer is None:
            raise InvalidInput(
                "publishing a model signs it with a kit's key: connect with Client.from_kit or pass kit="
            )
        name, version = sealed.manifest.name, sealed.manifest.version
        message = confidential_message(name, version, sealed.digest, sealed.terms)
        signed = sign_message(name, version, sealed.digest, message, signer.private_key, signer.certificate)
        body = ModelPublish(
            **signed.model_dump(),
            archive_b64=base64.b64encode(sealed.data).decode("ascii"),
            confidential=sealed.terms,
        )
        return decode(self._send("POST", "/models", body=body.model_dump(mode="json")), ModelDetail)
