"""The gateway's heartbeat: what it says about itself with every poll, and on its own while a task keeps
it from polling, so that the orchestrator can tell a busy site from an offline one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version

from custos.audit import HeadReader
from custos.core.errors import CustosError
from custos.core.wire import AuditHead, Heartbeat, LedgerReport

log = logging.getLogger("custos.gateway")


def audit_head(trail: HeadReader) -> AuditHead:
    """The head of the gateway's audit trail, for the orchestrator to anchor."""
    head = trail.read()
    return AuditHead(index=head.index, hash=head.hash)


def heartbeat(tasks_in_flight: int, trail: HeadReader, ledger: LedgerReport | None) -> Heartbeat:
    """`tasks_in_flight`: the tasks this gateway has taken and not yet finished reporting."""
    # The installed distribution's version (`custos.__version__` would import the SDK's layer).
    return Heartbeat(
        version=version("custos"),
        tasks_in_flight=tasks_in_flight,
        audit_head=audit_head(trail),
        ledger=ledger,
    )


@contextmanager
def beating(send: Callable[[], None], every_s: float) -> Iterator[None]:
    """Call `send` every `every_s` seconds in a thread until the block ends. A failed send is logged
    and the next one tried: the heartbeat never stops the task it runs beside."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every_s):
            try:
                send()
            except CustosError as exc:
                log.info("heartbeat not delivered: %s", exc)

    thread = threading.Thread(target=run, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every_s + 15.0)
