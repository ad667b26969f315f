"""`custos orchestrator start`: serve the app over HTTPS with the kit's certificate."""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TypedDict

import uvicorn
from prometheus_client import start_http_server
from sqlalchemy.engine import make_url

from custos.core.errors import InvalidInput, KitError
from custos.core.identity import Role
from custos.core.operator_log import LogFormat, configure_logging
from custos.orchestrator.app import create_app
from custos.orchestrator.settings import OrchestratorSettings
from custos.pki.kit import Kit, load_kit
from custos.pki.tls import ServerSSLOptions, server_ssl_options
from custos.privacy.filters import PRIVACY_FILE

# The separate metrics port (--metrics-port) listens on this address only.
METRICS_HOST = "127.0.0.1"
# Open requests (long polls) get this long to finish after SIGTERM or SIGINT; then they are cut.
SHUTDOWN_GRACE_S = 2.0


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


log = logging.getLogger("custos.orchestrator")


class OrchestratorServer(uvicorn.Server):
    """uvicorn's server, as an operator expects it to behave: one line once it listens; on SIGTERM or
    SIGINT, open long polls are told to return (`on_stop`), the server shuts down within its grace,
    and the process exits 0 (uvicorn would raise the signal again after its shutdown, and the process
    would end killed by it)."""

    def __init__(self, config: uvicorn.Config, *, banner: str, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self.banner = banner
        self.on_stop = on_stop

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            log.info("%s", self.banner)

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = not self.should_exit
        super().handle_exit(sig, frame)
        if first:
            log.info(
                "stopping (%s): open requests have %g s to finish", signal.Signals(sig).name, SHUTDOWN_GRACE_S
            )
            self.on_stop()


def redacted_url(url: str) -> str:
    """A database URL fit for a log: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(an unparsable database URL)"


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
    log_level: str = "info",
    log_format: LogFormat = "text",
    metrics_port: int | None = None,
    long_poll_max_s: float = OrchestratorSettings.long_poll_max_s,
    site_offline_margin_s: float = OrchestratorSettings.site_offline_margin_s,
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
    configure_logging("orchestrator", level=log_level, log_format=log_format)
    # The orchestrator's task filters, as the gateways' (privacy.yaml in the state folder, if any).
    privacy = state / PRIVACY_FILE
    settings = OrchestratorSettings(
        database_url=url,
        audit_path=state / "audit.log",
        privacy_path=privacy if privacy.is_file() else None,
        long_poll_max_s=long_poll_max_s,
        site_offline_margin_s=site_offline_margin_s,
    )
    app = create_app(settings, kit.root_certificate)
    listen_host = host or kit.config.listen_host or "127.0.0.1"
    listen_port = port or kit.config.listen_port or 8443
    config = uvicorn.Config(
        app,
        host=listen_host,
        port=listen_port,
        # Our handler (configure_logging) writes uvicorn's records too, in the chosen format.
        log_config=None,
        log_level="debug" if log_level == "debug" else "warning",
        access_log=False,
        timeout_keep_alive=75,
        timeout_graceful_shutdown=int(SHUTDOWN_GRACE_S),
        **forwarding,
        **orchestrator_ssl_options(kit),
    )
    banner = f"listening on https://{listen_host}:{listen_port} (workers 1, database {redacted_url(url)})"
    services = app.state.services
    exporter = None
    if metrics_port is not None:
        # Plain HTTP, so on loopback only: for a Prometheus (or an agent) on the same host.
        exporter, _ = start_http_server(metrics_port, addr=METRICS_HOST, registry=services.metrics.registry)
        banner += f"; metrics on http://{METRICS_HOST}:{metrics_port}/metrics"
    try:
        OrchestratorServer(config, banner=banner, on_stop=services.notifier.stop).run()
    finally:
        if exporter is not None:
            exporter.shutdown()
            exporter.server_close()
