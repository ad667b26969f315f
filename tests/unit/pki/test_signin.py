"""Signing in with a kit against a real HTTPS server with mutual TLS on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from custos.core.errors import AuthenticationFailed
from custos.core.identity import Identity, Role
from custos.pki import KitAuth, client_ssl_context, sign_in

from .conftest import AuthServer, Project, RunningServer, serve_in_thread


def client_for(server: RunningServer, project: Project, **kwargs: object) -> httpx.Client:
    return httpx.Client(base_url=server.url, verify=client_ssl_context(project.user), timeout=10, **kwargs)  # type: ignore[arg-type]


def test_sign_in_returns_a_token_for_the_kits_identity(auth_server: RunningServer, project: Project) -> None:
    with client_for(auth_server, project) as client:
        grant = sign_in(client, project.user)
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {grant.token}"})

    assert (grant.name, grant.org, grant.role) == ("alice@uni.org", "university", "lead_researcher")
    assert grant.expires_at > datetime.now(UTC)
    assert me.status_code == 200
    assert me.json()["name"] == "alice@uni.org"
    assert auth_server.auth.sign_ins == 1


def test_sign_in_with_a_key_that_does_not_match_the_certificate_is_refused_with_the_servers_reason(
    auth_server: RunningServer, project: Project
) -> None:
    # The TLS layer accepts alice's certificate; only the signed nonce can show the key is not hers.
    impostor = dataclasses.replace(project.user, private_key=project.gateway.private_key)
    with client_for(auth_server, project) as client, pytest.raises(AuthenticationFailed) as caught:
        sign_in(client, impostor)

    assert "signature does not match the certificate for alice@uni.org" in caught.value.message
    assert auth_server.auth.sign_ins == 0


def test_sign_in_refuses_a_grant_for_someone_else(auth_server: RunningServer, project: Project) -> None:
    auth_server.auth.impersonate = Identity(name="bob", org="university", role=Role.PROJECT_ADMIN)
    with client_for(auth_server, project) as client, pytest.raises(AuthenticationFailed) as caught:
        sign_in(client, project.user)

    assert "signed us in as bob" in caught.value.message


def test_kit_auth_signs_in_once_and_reuses_the_token(auth_server: RunningServer, project: Project) -> None:
    auth = KitAuth(project.user)
    assert auth.identity is None

    with client_for(auth_server, project, auth=auth) as client:
        first = client.get("/api/v1/me")
        second = client.get("/api/v1/me")

    assert [first.status_code, second.status_code] == [200, 200]
    assert auth_server.auth.sign_ins == 1
    assert auth_server.auth.unauthorized == 0
    assert auth.identity == Identity(name="alice@uni.org", org="university", role=Role.LEAD_RESEARCHER)


def test_kit_auth_signs_in_again_after_a_401_and_resends_the_body(
    auth_server: RunningServer, project: Project
) -> None:
    auth = KitAuth(project.user)
    with client_for(auth_server, project, auth=auth) as client:
        assert client.get("/api/v1/me").status_code == 200
        auth_server.auth.tokens.clear()  # the server forgets every token, as after a restart

        response = client.post("/api/v1/echo", json={"round": 3})

    assert response.status_code == 200
    assert response.json() == {"round": 3}
    assert auth_server.auth.echoed == [{"round": 3}]
    assert auth_server.auth.unauthorized == 1
    assert auth_server.auth.sign_ins == 2
    # httpx keeps every earlier exchange: the refused attempt, then the challenge and the token.
    assert [(r.request.url.path, r.status_code) for r in response.history] == [
        ("/api/v1/echo", 401),
        ("/api/v1/auth/challenge", 200),
        ("/api/v1/auth/token", 200),
    ]
    # Sign-in requests made inside the auth flow keep the client's timeouts.
    timeouts = [r.request.extensions.get("timeout") for r in response.history]
    assert timeouts == [httpx.Timeout(10).as_dict()] * 3


def test_kit_auth_retries_a_401_only_once(auth_server: RunningServer, project: Project) -> None:
    # A server that keeps refusing: every token it grants is forgotten before it can be used.
    auth_server.auth.tokens = _ForgetfulDict()
    with client_for(auth_server, project, auth=KitAuth(project.user)) as client:
        response = client.get("/api/v1/me")

    assert response.status_code == 401
    assert auth_server.auth.sign_ins == 2
    assert auth_server.auth.unauthorized == 2


class _ForgetfulDict(dict[str, Identity]):
    def __setitem__(self, key: str, value: Identity) -> None:
        pass


def test_kit_auth_renews_a_token_before_it_expires(auth_server: RunningServer, project: Project) -> None:
    now = [datetime.now(UTC)]
    auth = KitAuth(project.user, clock=lambda: now[0])
    with client_for(auth_server, project, auth=auth) as client:
        assert client.get("/api/v1/me").status_code == 200
        now[0] += timedelta(minutes=9, seconds=45)  # the 10-minute token has 15 s left
        assert client.get("/api/v1/me").status_code == 200

    assert auth_server.auth.sign_ins == 2
    assert auth_server.auth.unauthorized == 0


def test_kit_auth_raises_when_the_server_refuses_sign_in(
    auth_server: RunningServer, project: Project
) -> None:
    auth_server.auth.impersonate = Identity(name="site-b", org="hospital-b", role=Role.GATEWAY)
    with (
        client_for(auth_server, project, auth=KitAuth(project.user)) as client,
        pytest.raises(AuthenticationFailed) as caught,
    ):
        client.get("/api/v1/me")

    assert "but the kit belongs to alice@uni.org" in caught.value.message


def test_kit_auth_works_with_an_async_client(auth_server: RunningServer, project: Project) -> None:
    async def call_twice() -> list[int]:
        async with httpx.AsyncClient(
            base_url=auth_server.url,
            verify=client_ssl_context(project.user),
            auth=KitAuth(project.user),
            timeout=10,
        ) as client:
            return [(await client.get("/api/v1/me")).status_code for _ in range(2)]

    assert asyncio.run(call_twice()) == [200, 200]
    assert auth_server.auth.sign_ins == 1


def test_client_context_checks_the_servers_name(project: Project) -> None:
    # A gateway's certificate names no host, so a gateway kit cannot pose as the orchestrator even
    # though the same CA signed it.
    with (
        serve_in_thread(AuthServer(kit=project.gateway).app(), project.gateway) as url,
        httpx.Client(verify=client_ssl_context(project.user), timeout=10) as client,
        pytest.raises(httpx.ConnectError, match=r"mismatch"),
    ):
        client.get(f"{url}/api/v1/me")


def test_orchestrator_certificate_is_valid_for_localhost_too(
    auth_server: RunningServer, project: Project
) -> None:
    port = httpx.URL(auth_server.url).port
    with httpx.Client(verify=client_ssl_context(project.user), timeout=10) as client:
        response = client.get(f"https://localhost:{port}/api/v1/me")

    assert response.status_code == 401
    assert response.json() == {"detail": "token is missing, expired or revoked; sign in again"}
