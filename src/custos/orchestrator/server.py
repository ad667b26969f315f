"""`custos orchestrator start`: serve the app over HTTPS with the kit's certificate."""

from __future__ import annotations

import ctypes
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TypedDict

import uvicorn
from fastapi import FastAPI
from prometheus_client import start_http_server
from prometheus_client.multiprocess import mark_process_dead
from sqlalchemy.engine import make_url
from uvicorn.supervisors import Multiprocess

from custos.core.errors import InvalidInput, KitError
from custos.core.identity import Role
from custos.core.operator_log import LogFormat, configure_logging
from custos.orchestrator.app import create_app
from custos.orchestrator.db import Database, migrate
from custos.orchestrator.metrics import shared_registry
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
# prometheus_client's multiprocess mode: the folder where each worker counts its metrics.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Workers(Multiprocess):
    """uvicorn's supervisor of `--workers N`, which also tells prometheus_client when a worker has
    ended (it is replaced, or all stop), so that its open long polls no longer count (`livesum`);
    what it counted stays in the sums, so counters never go down."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket], metrics_dir: Path) -> None:
        super().__init__(config, sockets)
        self.metrics_dir = metrics_dir

    def _mark_ended(self, pids: set[int | None]) -> None:
        for pid in pids:
            if pid is not None:
                mark_process_dead(pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]

    def keep_subprocess_alive(self) -> None:
        before = {p.pid for p in self.processes}
        super().keep_subprocess_alive()
        self._mark_ended(before - {p.pid for p in self.processes})

    def restart_all(self) -> None:
        before = {p.pid for p in self.processes}
        super().restart_all()
        self._mark_ended(before - {p.pid for p in self.processes})

    def join_all(self) -> None:
        super().join_all()
        self._mark_ended({p.pid for p in self.processes})


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


def check_workers(workers: int, database_url: str) -> None:
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


def orchestrator_settings(
    state: Path,
    database_url: str,
    long_poll_max_s: float = OrchestratorSettings.long_poll_max_s,
    site_offline_margin_s: float = OrchestratorSettings.site_offline_margin_s,
    metrics_dir: Path | None = None,
) -> OrchestratorSettings:
    # The orchestrator's task filters, as the gateways' (privacy.yaml in the state folder, if any).
    privacy = state / PRIVACY_FILE
    return OrchestratorSettings(
        database_url=database_url,
        audit_path=state / "audit.log",
        privacy_path=privacy if privacy.is_file() else None,
        long_poll_max_s=long_poll_max_s,
        site_offline_margin_s=site_offline_margin_s,
        metrics_dir=metrics_dir,
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
            Path(passed["metrics_dir"]),
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
    check_workers(workers, url)
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
        serve_workers(
            kit_dir, state, url, workers, banner, options, log_level, log_format, timing, metrics_port
        )
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
    metrics_port: int | None,
) -> None:
    """`workers` processes (uvicorn's supervisor) on one listening socket. The schema is migrated
    once, here, before any worker starts. The workers count their metrics in a folder made for this
    start (metrics.py); `--metrics-port` is served by this process, from the same folder. SIGTERM or
    SIGINT stops the workers (each gives its open requests the grace) and then this process, which
    exits 0."""
    db = Database(url)
    try:
        migrate(db.engine)
    except BaseException:
        db.dispose()
        raise
    # Private to this start (0700, a new name), so it starts empty; spawned workers inherit the
    # variable, and prometheus_client reads it when they import it.
    metrics_dir = Path(tempfile.mkdtemp(prefix="custos-orchestrator-metrics-"))
    os.environ[MULTIPROC_ENV] = str(metrics_dir)
    exporter = None
    try:
        if metrics_port is not None:
            exporter, _ = start_http_server(
                metrics_port, addr=METRICS_HOST, registry=shared_registry(metrics_dir, db)
            )
            banner += f"; metrics on http://{METRICS_HOST}:{metrics_port}/metrics"
        run_workers(kit_dir, state, url, workers, banner, options, log_level, log_format, timing, metrics_dir)
    finally:
        if exporter is not None:
            exporter.shutdown()
            exporter.server_close()
        db.dispose()
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(metrics_dir, ignore_errors=True)


def run_workers(
    kit_dir: Path,
    state: Path,
    url: str,
    workers: int,
    banner: str,
    options: dict[str, object],
    log_level: str,
    log_format: LogFormat,
    timing: dict[str, float],
    metrics_dir: Path,
) -> None:
    passed = {
        "kit": str(kit_dir.resolve()),
        "state": str(state.resolve()),
        "database_url": url,
        "log_level": log_level,
        "log_format": log_format,
        "metrics_dir": str(metrics_dir),
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
        Workers(config, sockets=[socket_], metrics_dir=metrics_dir).run()
    finally:
        socket_.close()
    log.info("stopped")
