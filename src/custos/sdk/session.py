"""A signed-in HTTPS session with one orchestrator: TLS that trusts only the project's root CA, sign-in
with a startup kit or an API token, and one request at a time. An orchestrator that cannot be reached
raises a CustosError that names its URL. `custos.sdk.Client` is a Session with the API's calls.
"""

from __future__ import annotations

import ssl
from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from custos.core.errors import CustosError, InvalidInput
from custos.core.wire import API_TOKEN_PREFIX, Me
from custos.pki.kit import Kit, load_kit
from custos.pki.signin import KitAuth
from custos.pki.tls import client_ssl_context
from custos.sdk.responses import check_response, decode

API_PREFIX = "/api/v1"


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


class Session:
    """The connection every call of a Client goes through: its URL, its HTTP client, and the kit it
    signed in with (None with an API token), whose key signs what the client publishes or approves."""

    def __init__(self, http: httpx.Client, *, url: str) -> None:
        """`http` must have base_url `url + "/api/v1"`, TLS and authentication already set up."""
        self._http = http
        self.url = url.rstrip("/")
        self._kit: Kit | None = None

    @classmethod
    def from_kit(cls, kit_dir: Path, *, timeout: float = 30) -> Self:
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
    def from_token(cls, url: str, token: str, *, root_ca: Path, timeout: float = 30) -> Self:
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

    def __enter__(self) -> Self:
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
