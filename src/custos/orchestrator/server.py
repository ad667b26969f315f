"""`custos orchestrator start`: serve the app over HTTPS with the kit's certificate."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

import uvicorn

from custos.core.errors import InvalidInput, KitError
from custos.core.identity import Role
from custos.orchestrator.app import create_app
from custos.orchestrator.settings import OrchestratorSettings
from custos.pki.kit import Kit, load_kit
from custos.pki.tls import ServerSSLOptions, server_ssl_options
from custos.privacy.filters import PRIVACY_FILE


def orchestrator_ssl_options(kit: Kit) -> ServerSSLOptions:
    """TLS for the orchestrator: a client certificate is optional, so that a browser signing in with a
    password can connect, but one that is presented must chain to the project's root, or the
    handshake fails. Without one, every route but sign-in and /healthz answers 401 until the caller
    proves who it is (kit signature, password session, or API token)."""
    return server_ssl_options(kit, require_client_certificate=False)


class ForwardingOptions(TypedDict):
    """uvicorn's keyword arguments for forwarding headers."""

    proxy_headers: bool
    forwarded_allow_ips: list[str] | None


def forwarding_options(trusted_proxies: Sequence[str]) -> ForwardingOptions:
    """How the server learns a client's address, which sign-in failures are counted against
    (services/rate_limit.py). By default it is the TCP peer, and `X-Forwarded-For` is ignored: it is
    whatever the client chose to write. Behind reverse proxies, their addresses (or networks) in
    `trusted_proxies` make the server take the client's address from the header they set, and from
    them only."""
    for proxy in trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise InvalidInput(
                f"--trusted-proxy {proxy}: not an IP address or network; "
                "give one like 10.0.0.5 or 10.0.0.0/24"
            ) from None
    if not trusted_proxies:
        return ForwardingOptions(proxy_headers=False, forwarded_allow_ips=None)
    return ForwardingOptions(proxy_headers=True, forwarded_allow_ips=list(trusted_proxies))


def serve(
    kit_dir: Path,
    *,
    state_dir: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    database_url: str | None = None,
    trusted_proxies: Sequence[str] = (),
) -> None:
    forwarding = forwarding_options(trusted_proxies)
    kit = load_kit(kit_dir)
    if kit.identity.role is not Role.ORCHESTRATOR:
        raise KitError(
            f"kit at {kit_dir} belongs to {kit.identity.name} ({kit.identity.role}), not an orchestrator"
        )
    state = state_dir or kit_dir / "state"
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    url = database_url or f"sqlite:///{state / 'orchestrator.db'}"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # The orchestrator's task filters, as the gateways' (privacy.yaml in the state folder, if any).
    privacy = state / PRIVACY_FILE
    settings = OrchestratorSettings(
        database_url=url, audit_path=state / "audit.log", privacy_path=privacy if privacy.is_file() else None
    )
    app = create_app(settings, kit.root_certificate)
    uvicorn.run(
        app,
        host=host or kit.config.listen_host or "127.0.0.1",
        port=port or kit.config.listen_port or 8443,
        log_level="warning",
        timeout_keep_alive=75,
        # Gateways hold long polls open; do not wait for them on shutdown.
        timeout_graceful_shutdown=2,
        **forwarding,
        **orchestrator_ssl_options(kit),
    )
