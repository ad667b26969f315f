"""A TCP load balancer on loopback, for several orchestrator processes on one database: each new
connection goes to the next backend in turn, and to the one after it when that one refuses (a stopped
or killed orchestrator). TLS passes through untouched, so clients still verify the orchestrator's
certificate and present their own. For local deployments, tests and benchmarks; in production any
load balancer does this.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading
from collections.abc import Sequence

_CHUNK = 64 * 1024
_CONNECT_TIMEOUT_S = 5.0


class Balancer:
    """Round-robin over `backends` ((host, port) pairs), listening on `host`:`port` in a thread."""

    def __init__(self, host: str, port: int, backends: Sequence[tuple[str, int]]) -> None:
        self.host, self.port = host, port
        self.backends = list(backends)
        self._turn = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()

    def start(self) -> Balancer:
        self._thread = threading.Thread(target=self._run, name="balancer", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the balancer did not listen on {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        listener = socket.create_server((self.host, self.port), reuse_port=False)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, sock=listener))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        first = next(self._turn)
        for i in range(len(self.backends)):
            host, port = self.backends[(first + i) % len(self.backends)]
            try:
                return await asyncio.wait_for(asyncio.open_connection(host, port), _CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError):
                continue
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        backend = await self._connect()
        if backend is None:
            writer.close()
            return
        up_reader, up_writer = backend
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()
