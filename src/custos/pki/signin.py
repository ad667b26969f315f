"""Signing in with a startup kit: prove to the orchestrator that we hold the certificate's key.

The server sends a nonce for our certificate; we sign `auth_message(challenge_id, nonce, fingerprint)`
with the kit's key and get back a short-lived bearer token bound to the certificate
(docs/architecture.md, "Sign-in").
`sign_in` does it once; `KitAuth` plugs it into an httpx client so every request carries a token.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from custos.core.clock import Clock, utcnow
from custos.core.errors import AuthenticationFailed, CustosError
from custos.core.identity import Identity, Role
from custos.core.wire import (
    Challenge,
    ChallengeRequest,
    TokenGrant,
    TokenRequest,
    WireModel,
    auth_message,
)
from custos.pki.certs import certificate_pem, fingerprint
from custos.pki.kit import Kit
from custos.pki.verify import sign

CHALLENGE_PATH = "/api/v1/auth/challenge"
TOKEN_PATH = "/api/v1/auth/token"  # noqa: S105 - a URL path, not a secret
# Sign in again this long before the token expires, so a request never leaves with a token that dies
# on the way.
REFRESH_MARGIN = timedelta(seconds=30)

_Model = TypeVar("_Model", bound=WireModel)


def sign_in(client: httpx.Client, kit: Kit) -> TokenGrant:
    """Sign in at the orchestrator `client` points to. Raises AuthenticationFailed if it refuses."""
    request = client.build_request("POST", CHALLENGE_PATH, json=challenge_request(kit))
    challenge = read_answer(client.send(request, auth=None), Challenge)
    request = client.build_request("POST", TOKEN_PATH, json=token_request(kit, challenge))
    return check_grant(read_answer(client.send(request, auth=None), TokenGrant), kit)


def challenge_request(kit: Kit) -> dict[str, Any]:
    return ChallengeRequest(certificate_pem=certificate_pem(kit.certificate)).model_dump(mode="json")


def token_request(kit: Kit, challenge: Challenge) -> dict[str, Any]:
    message = auth_message(challenge.challenge_id, challenge.nonce, fingerprint(kit.certificate))
    body = TokenRequest(
        challenge_id=challenge.challenge_id,
        certificate_pem=certificate_pem(kit.certificate),
        signature=base64.b64encode(sign(kit.private_key, message)).decode(),
    )
    return body.model_dump(mode="json")


def read_answer(response: httpx.Response, model: type[_Model]) -> _Model:
    """The wire model in a sign-in answer; a 4xx becomes AuthenticationFailed with the server's detail."""
    path = response.request.url.path
    if 400 <= response.status_code < 500:
        raise AuthenticationFailed(_detail(response))
    if response.status_code != 200:
        raise CustosError(f"the orchestrator answered {response.status_code} to {path}; try again later")
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise CustosError(
            f"the orchestrator sent an answer to {path} that is not a {model.__name__}; "
            "is the URL a Custos orchestrator of the same version?"
        ) from exc


def check_grant(grant: TokenGrant, kit: Kit) -> TokenGrant:
    """Refuse a grant for someone other than the kit's holder: we would act under a wrong name."""
    mine = kit.identity
    if (grant.name, grant.org, grant.role) != (mine.name, mine.org, mine.role.value):
        raise AuthenticationFailed(
            f"the orchestrator signed us in as {grant.name} ({grant.org}, {grant.role}) "
            f"but the kit belongs to {mine.name} ({mine.org}, {mine.role.value})"
        )
    return grant


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list) and detail and isinstance(detail[0], dict) and "msg" in detail[0]:
        return str(detail[0]["msg"])
    return f"the orchestrator refused sign-in with status {response.status_code}"


@dataclass(frozen=True)
class _Send:
    request: httpx.Request
    # The flow parses the answers to its own sign-in requests, so their bodies must be read first.
    read_body: bool


class KitAuth(httpx.Auth):
    """httpx authentication with a startup kit: signs in on first use, caches the token, renews it
    shortly before it expires, and after a 401 signs in again once and retries the request.

    One instance serves one client used from one thread (or one event loop).
    """

    def __init__(self, kit: Kit, *, clock: Clock = utcnow) -> None:
        self._kit = kit
        self._clock = clock
        self._grant: TokenGrant | None = None

    @property
    def identity(self) -> Identity | None:
        """Who the orchestrator signed us in as; None before the first sign-in."""
        if self._grant is None:
            return None
        return Identity(name=self._grant.name, org=self._grant.org, role=Role(self._grant.role))

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()  # a retry after 401 sends the body again
        flow = self._flow(request)
        step = next(flow)
        while True:
            response = yield step.request
            if step.read_body:
                response.read()
            try:
                step = flow.send(response)
            except StopIteration:
                return

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        flow = self._flow(request)
        step = next(flow)
        while True:
            response = yield step.request
            if step.read_body:
                await response.aread()
            try:
                step = flow.send(response)
            except StopIteration:
                return

    def _flow(self, request: httpx.Request) -> Generator[_Send, httpx.Response, None]:
        if not self._token_fresh():
            yield from self._sign_in(request)
        response = yield _Send(self._authorized(request), read_body=False)
        if response.status_code == 401:
            yield from self._sign_in(request)
            yield _Send(self._authorized(request), read_body=False)

    def _sign_in(self, request: httpx.Request) -> Generator[_Send, httpx.Response, None]:
        self._grant = None
        # The sign-in requests keep the client's timeouts; a bare Request would wait forever.
        extensions = {k: v for k, v in request.extensions.items() if k == "timeout"}
        answer = yield _Send(
            httpx.Request(
                "POST",
                request.url.join(CHALLENGE_PATH),
                json=challenge_request(self._kit),
                extensions=extensions,
            ),
            read_body=True,
        )
        challenge = read_answer(answer, Challenge)
        answer = yield _Send(
            httpx.Request(
                "POST",
                request.url.join(TOKEN_PATH),
                json=token_request(self._kit, challenge),
                extensions=extensions,
            ),
            read_body=True,
        )
        self._grant = check_grant(read_answer(answer, TokenGrant), self._kit)

    def _token_fresh(self) -> bool:
        if self._grant is None:
            return False
        expires_at = self._grant.expires_at
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        return self._clock() < expires_at - REFRESH_MARGIN

    def _authorized(self, request: httpx.Request) -> httpx.Request:
        assert self._grant is not None
        request.headers["Authorization"] = f"Bearer {self._grant.token}"
        return request
