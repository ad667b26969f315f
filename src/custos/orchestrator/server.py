"""`custos orchestrator start`: serve the app over HTTPS with the kit's certificate."""

from __future__ import annotations

import ctypes
import ipaddress
import json
import logging
import os
import signal
import socket
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TypedDict

import uvicorn
from fastapi import FastAPI
from prometheus_client import start_http_server
from sqlalchemy.engine import make_url

from custos.core.errors import InvalidInput, KitError
from custos.core.identity import Role
from custos.core.operator_log import LogFormat, configure_logging
from custos.orchestrator.app import create_app
from custos.orchestrator.db import Database, migrate
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

# How the parent of `--workers N` passes each worker process its settings (a JSON object).
WORKER_ENV = "CUSTOS_ORCHESTRATOR_WORKER"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


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


def check_workers(workers: int, database_url: str, metrics_port: int | None) -> None:
    """Several worker processes need a database they can all write: PostgreSQL."""
    if workers < 1:
        raise InvalidInput(f"--workers {workers}: give 1 or more")
    if workers == 1:
        return
    if database_url.startswith("sqlite"):
        raise InvalidInput(
            f"--workers {workers}: SQLite is served by one process; "
            "give a PostgreSQL --database-url to run several workers"
        )
    if metrics_port is not None:
        raise InvalidInput(
            f"--metrics-port with --workers {workers}: each worker has its own metrics; "
            "scrape /metrics on the API instead"
        )


def orchestrator_settings(
    state: Path,
    database_url: str,
    long_poll_max_s: float = OrchestratorSettings.long_poll_max_s,
    site_offline_margin_s: float = OrchestratorSettings.site_offline_margin_s,
) -> OrchestratorSettings:
    # The orchestrator's task filters, as the gateways' (privacy.yaml in the state folder, if any).
    privacy = state / PRIVACY_FILE
    return OrchestratorSettings(
        database_url=database_url,
        audit_path=state / "audit.log",
        privacy_path=privacy if privacy.is_file() else None,
        long_poll_max_s=long_poll_max_s,
        site_offline_margin_s=site_offline_margin_s,
    )


def end_with_parent() -> None:
    """Have the kernel send this worker SIGTERM when its parent ends, however it ends (a SIGKILL
    leaves the parent no chance to stop its workers), so no worker is left serving alone."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        log.warning("this worker will outlive its parent if the parent is killed")


def worker_app() -> FastAPI:
    """The app of one worker process of `--workers N`, from the settings its parent passed it. The
    workers of one host share its state folder: the audit trail (appends are locked across
    processes, so it stays one chain) and the privacy file; blobs are in the database."""
    passed = json.loads(os.environ[WORKER_ENV])
    end_with_parent()
    kit = load_kit(Path(passed["kit"]))
    configure_logging("orchestrator", level=passed["log_level"], log_format=passed["log_format"])
    return create_app(
        orchestrator_settings(
            Path(passed["state"]),
            passed["database_url"],
            passed["long_poll_max_s"],
            passed["site_offline_margin_s"],
        ),
        kit.root_certificate,
    )


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
    workers: int = 1,
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
    url = database_url or f"sqlite:///{state / 'orchestrator.db'}"
    check_workers(workers, url, metrics_port)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    configure_logging("orchestrator", level=log_level, log_format=log_format)
    listen_host = host or kit.config.listen_host or "127.0.0.1"
    listen_port = port or kit.config.listen_port or 8443
    banner = (
        f"listening on https://{listen_host}:{listen_port} (workers {workers}, database {redacted_url(url)})"
    )
    options = dict(
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
    if workers > 1:
        timing = {"long_poll_max_s": long_poll_max_s, "site_offline_margin_s": site_offline_margin_s}
        serve_workers(kit_dir, state, url, workers, banner, options, log_level, log_format, timing)
        return
    app = create_app(
        orchestrator_settings(state, url, long_poll_max_s, site_offline_margin_s), kit.root_certificate
    )
    config = uvicorn.Config(app, **options)  # type: ignore[arg-type]
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


def serve_workers(
    kit_dir: Path,
    state: Path,
    url: str,
    workers: int,
    banner: str,
    options: dict[str, object],
    log_level: str,
    log_format: LogFormat,
    timing: dict[str, float],
) -> None:
    """`workers` processes (uvicorn's supervisor) on one listening socket. The schema is migrated
    once, here, before any worker starts. SIGTERM or SIGINT stops the workers (each gives its open
    requests the grace) and then this process, which exits 0."""
    from uvicorn.supervisors import Multiprocess

    db = Database(url)
    try:
        migrate(db.engine)
    finally:
        db.dispose()
    passed = {
        "kit": str(kit_dir.resolve()),
        "state": str(state.resolve()),
        "database_url": url,
        "log_level": log_level,
        "log_format": log_format,
        **timing,
    }
    os.environ[WORKER_ENV] = json.dumps(passed)  # inherited by the workers, read by worker_app
    config = uvicorn.Config(
        "custos.orchestrator.server:worker_app",
        factory=True,
        workers=workers,
        **options,  # type: ignore[arg-type]
    )
    socket_ = config.bind_socket()
    log.info("%s", banner)
    try:
        Multiprocess(config, sockets=[socket_]).run()
    finally:
        socket_.close()
    log.info("stopped")
