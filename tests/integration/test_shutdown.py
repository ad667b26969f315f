"""An operator stops a process with SIGTERM or Ctrl-C (SIGINT): it ends within its grace period, with
exit code 0 and no traceback, whatever is connected to it (a gateway holding a long poll open). The
processes log text lines, or JSON lines with `--log-format json`."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pyarrow as pa
import pytest

from custos.gateway.runtimes import CLOSE_WAIT_S
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.orchestrator.server import SHUTDOWN_GRACE_S

# Beyond the grace: the interpreter's own exit (threads joined, the database closed).
EXIT_MARGIN_S = 3.0


def _cluster(tmp_path: Path, log_format: str = "text") -> Cluster:
    table = pa.table({"age": list(range(40, 80))})
    return Cluster(
        tmp_path,
        gateways=[GatewaySetup("site-a", "hospital-a", [DatasetSetup("patients", table, None)])],
        users=[UserSetup("alice", "university")],
        log_format=log_format,
    )


def _records(log: str) -> list[dict[str, str]]:
    """The JSON records of a process's log (the cluster's own `--- ` notes left out)."""
    return [json.loads(line) for line in log.splitlines() if line and not line.startswith("--- ")]


def _stop(cluster: Cluster, name: str, signum: int, grace: float) -> tuple[int | None, float, str]:
    process = cluster.process(name)
    started = time.monotonic()
    process.send(signum)
    code = process.wait_exit(grace + EXIT_MARGIN_S)
    took = time.monotonic() - started
    return code, took, cluster.log_path(name).read_text(encoding="utf-8", errors="replace")


@pytest.mark.parametrize(
    ("signum", "log_format"),
    [(signal.SIGTERM, "json"), (signal.SIGINT, "text")],
    ids=["SIGTERM-json", "SIGINT-text"],
)
def test_the_orchestrator_stops_cleanly_with_a_gateway_connected(
    tmp_path: Path, signum: int, log_format: str
) -> None:
    with _cluster(tmp_path, log_format) as cluster:
        # The gateway is connected and holds a long poll open while the orchestrator is asked to stop.
        time.sleep(0.5)
        code, took, log = _stop(cluster, "orchestrator", signum, SHUTDOWN_GRACE_S)
        assert code == 0, f"exit code {code}:\n{log}"
        assert "Traceback" not in log, log
        assert took < SHUTDOWN_GRACE_S + EXIT_MARGIN_S
        assert "listening on https://127.0.0.1:" in log
        # Migrations are DEBUG: not in an INFO log.
        assert "Running upgrade" not in log
        if log_format == "json":
            records = _records(log)
            assert any(r["message"].startswith("listening on https://") for r in records)
            assert {r["process"] for r in records} == {"orchestrator"}
            gateway = _records(cluster.log_path("site-a").read_text(encoding="utf-8"))
            assert any(r["message"].startswith("connected; published 1 dataset") for r in gateway)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_gateway_stops_cleanly_during_its_long_poll(tmp_path: Path, signum: int) -> None:
    with _cluster(tmp_path) as cluster:
        time.sleep(0.5)
        # A gateway's grace: its sandboxes (the spare may be booting) get CLOSE_WAIT_S to close.
        code, _, log = _stop(cluster, "site-a", signum, CLOSE_WAIT_S)
        assert code == 0, f"exit code {code}:\n{log}"
        assert "Traceback" not in log, log
