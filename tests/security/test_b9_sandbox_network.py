"""B9: a job's socket and DNS calls fail; the sandbox has no network."""

from __future__ import annotations

import json
import secrets
import socket
import textwrap
from pathlib import Path

import pytest

from custos.sandbox import BubblewrapRunner, SandboxLimits, SandboxRequest

LIMITS = SandboxLimits(cpu_seconds=10, wall_seconds=30, max_processes=32)

PROBE = """
import json, socket, sys
port, abstract = int(sys.argv[1]), sys.argv[2]
seen = {}

def attempt(name, action):
    try:
        action()
        seen[name] = "connected"
    except OSError as error:
        seen[name] = type(error).__name__

def tcp():
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass

def outside():
    with socket.create_connection(("192.0.2.1", 443), timeout=5):
        pass

def udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", ("8.8.8.8", 53))

def abstract_unix():
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect("\\0" + abstract)

attempt("tcp_loopback", tcp)
attempt("tcp_outside", outside)
attempt("udp_dns_server", udp)
attempt("abstract_unix", abstract_unix)
attempt("dns", lambda: socket.getaddrinfo("example.com", 443))
seen["interfaces"] = [line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]]
print(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def runner(sandbox_runner: BubblewrapRunner) -> BubblewrapRunner:
    return sandbox_runner  # each runner in turn (tests/conftest.py)


def test_b9_sandbox_has_no_network(runner: BubblewrapRunner, tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    abstract_name = f"custos-test-{secrets.token_hex(6)}"
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind("\0" + abstract_name)
    abstract.listen(1)
    abstract.setblocking(False)
    output = tmp_path / "output"
    output.mkdir()
    try:
        result = runner.run(
            SandboxRequest(
                argv=["-c", textwrap.dedent(PROBE), str(listener.getsockname()[1]), abstract_name],
                output_dir=output,
                limits=LIMITS,
            )
        )
        for server in (listener, abstract):
            with pytest.raises(BlockingIOError):
                server.accept()  # nothing ever reached the host's listeners
    finally:
        listener.close()
        abstract.close()

    assert result.ok, result.stderr
    seen = json.loads(result.stdout)
    assert seen.pop("interfaces") == ["lo"]
    assert "connected" not in seen.values()
    assert seen["tcp_loopback"] == "OSError"  # EAFNOSUPPORT: no internet socket can even be made
    assert seen["abstract_unix"] == "ConnectionRefusedError"
    assert seen["dns"] == "gaierror"
