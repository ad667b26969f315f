"""A poll whose connection is delayed past the gateway's wait leases nothing when it arrives.

A small TCP proxy on loopback sits between the gateway (and everyone else) and the orchestrator. Once
armed, it holds the bytes of the gateway's next poll: the gateway gives up on it after its wait and
polls again on a new connection. The held poll is then delivered, late, its connection kept open (as a
slow network path would), and a job is submitted: its one task is leased once and runs once.

Which request is a poll is read from the traffic's timing: in an idle gateway, a request answered at
once (the revocation list, fetched every 30 s; here every 5 s) is always followed by a poll.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from tests.conftest import stats_policy

from custos.data.synthetic import synthetic_patients
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.local.process import free_port
from custos.orchestrator.tables import Task

FAST_ANSWER_S = 0.5
# The gateway's poll wait: it gives up on a poll after this and 15 s more (20 s, not production's 35 s).
# It fetches the revocation list (the fast answer the proxy waits for) every 5 s, not every 30 s.
POLL_WAIT_S = 5.0
GATEWAY_CONFIG = {"poll_wait_s": POLL_WAIT_S, "crl_refresh_s": 5.0}


class DelayingProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target`. Armed, it holds the first request that follows
    a fast answer on a connection, and everything after it on that connection, until `release`."""

    def __init__(self, port: int, target: int) -> None:
        self.port, self.target = port, target
        self.armed = False
        self.held = threading.Event()
        self.connections = 0
        self._release: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> None:
        self._release = asyncio.Event()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    def release(self) -> None:
        assert self._release is not None
        self._loop.call_soon_threadsafe(self._release.set)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            if self._server is not None:
                await self._server.wait_closed()
            await asyncio.sleep(0.1)  # the closed transports' callbacks run before the loop stops

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target)
        state = {"sent_at": 0.0, "fast": False}
        holding = False

        async def upstream() -> None:
            nonlocal holding
            while data := await client_r.read(65536):
                if self.armed and not holding and state["fast"]:
                    self.armed, holding = False, True
                    self.held.set()
                if holding:
                    assert self._release is not None
                    await self._release.wait()
                state["sent_at"], state["fast"] = time.monotonic(), False
                server_w.write(data)
                await server_w.drain()
            if holding:
                # The client gave up; the late request is delivered and its connection left open.
                assert self._release is not None
                await self._release.wait()
                await asyncio.sleep(3600)
            server_w.close()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                state["fast"] = time.monotonic() - state["sent_at"] < FAST_ANSWER_S
                try:
                    client_w.write(data)
                    await client_w.drain()
                except (ConnectionError, RuntimeError):
                    pass
            client_w.close()

        try:
            await asyncio.gather(upstream(), downstream(), return_exceptions=True)
        finally:
            # Cancelled at stop(): both connections are closed here, not left to the garbage collector.
            for writer in (server_w, client_w):
                writer.close()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, DelayingProxy]]:
    table = synthetic_patients(300, site=0, seed=17)
    cluster = Cluster(
        tmp_path_factory.mktemp("delayed-poll"),
        gateways=[
            GatewaySetup(
                "site-a",
                "hospital-a",
                [DatasetSetup("patients", table, stats_policy())],
                config=GATEWAY_CONFIG,
            )
        ],
        users=[UserSetup("alice", "university")],
    )
    cluster.provision()
    for gateway in cluster.gateways:
        cluster.write_site(gateway)
    proxy = DelayingProxy(cluster.port, free_port())
    cluster.port = proxy.target  # the kits name the proxy; the orchestrator listens behind it
    proxy.start()
    try:
        cluster.start_orchestrator()
        cluster.start_gateway("site-a")
        cluster.wait_for_datasets()
        yield cluster, proxy
    finally:
        cluster.stop()
        proxy.stop()


def test_a_poll_delayed_past_the_gateway_s_wait_leases_nothing(
    proxied: tuple[Cluster, DelayingProxy],
) -> None:
    cluster, proxy = proxied
    with cluster.client("alice") as alice:
        spec = alice.create_spec("delayed-poll", "stats@1.0.0", ["site-a/patients"], ["age"])
        alice.activate_spec(spec.id)
    proxy.armed = True
    assert proxy.held.wait(120), cluster.logs()
    connections = proxy.connections
    # The gateway gives up on the held poll after its wait (POLL_WAIT_S + 15 s) and polls on a new
    # connection.
    for _ in range(600):
        if proxy.connections > connections:
            break
        time.sleep(0.1)
    assert proxy.connections > connections, cluster.logs()
    time.sleep(2.0)  # its new poll is in
    proxy.release()  # the late poll arrives
    time.sleep(1.0)
    with cluster.client("alice") as alice:
        job = alice.submit_job(spec.id, {"columns": ["age"], "statistics": ["count"]})
        alice.wait_job(job.id, timeout=90)

    engine = create_engine(f"sqlite:///{cluster.work_dir / 'state' / 'orchestrator' / 'orchestrator.db'}")
    try:
        with Session(engine) as session:
            tasks = session.execute(select(Task).where(Task.job_id == job.id)).scalars().all()
    finally:
        engine.dispose()
    assert [(t.state, t.attempt) for t in tasks] == [("done", 1)], cluster.logs()
    gateway_log = cluster.log_path("site-a").read_text(encoding="utf-8")
    assert gateway_log.count(f"task {tasks[0].id} (") == 1  # one run
