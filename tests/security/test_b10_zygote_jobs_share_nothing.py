"""B10: jobs forked from the same zygote share nothing. Job A changes module globals of custos and numpy
and numpy's random state, writes to /tmp and /dev/shm, listens on an abstract unix socket, leaves a
background process and looks for other runs in /proc; job B, running at the same time, and job C, the
next run of the same zygote, see none of it, and A's leftover process is gone once A's run is over.
The runner is the one a gateway running as root makes for its job runtimes (`job_runner`, with the
runtime's modules preloaded)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from custos.gateway.runtimes import JOB_RUNTIME_MODULES
from custos.sandbox import Bind, SandboxLimits, SandboxRequest, SandboxResult
from custos.sandbox.zygote import ZygoteRunner, job_runner
from custos.testing.processes import processes_with

LIMITS = SandboxLimits(cpu_seconds=30, wall_seconds=60, max_processes=32)
MARKER = f"custos-zygote-leftover-{secrets.token_hex(6)}"

JOB_A = textwrap.dedent(
    f"""
    import json, os, socket, subprocess, sys, time
    import numpy
    import custos.computations.runtime as runtime
    runtime.MAX_MESSAGE_CHARS = -1
    numpy.pi = 3.0
    numpy.random.seed(1234)
    open("/tmp/left-by-a", "w").write("a")
    open("/dev/shm/left-by-a", "w").write("a")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\\0custos-job-a")
    listener.listen(1)
    leftover = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)", "{MARKER}"], start_new_session=True
    )
    seen = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    open("/signals/ready", "w").write(json.dumps({{"pids": seen, "leftover": leftover.pid}}))
    for _ in range(600):
        if os.path.exists("/signals/stop"):
            break
        time.sleep(0.05)
    """
)

LOOKS = textwrap.dedent(
    """
    import json, os, socket, sys
    import numpy
    import custos.computations.runtime as runtime
    seen = {}
    seen["message_chars"] = runtime.MAX_MESSAGE_CHARS
    seen["pi"] = numpy.pi
    first = float(numpy.random.random())
    numpy.random.seed(1234)
    seen["random_as_a_left_it"] = first == float(numpy.random.random())
    # The interpreter's own folders, bound read-only where they lie on the host (a checkout in /tmp).
    interpreter = {p.split("/")[2] for p in [*sys.path, sys.prefix, sys.executable] if p.startswith("/tmp/")}
    seen["tmp"] = sorted(set(os.listdir("/tmp")) - interpreter)
    seen["shm"] = sorted(os.listdir("/dev/shm"))
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect("\\0custos-job-a")
        seen["abstract_socket"] = "connected"
    except OSError as error:
        seen["abstract_socket"] = error.strerror
    seen["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    seen["cmdlines"] = [
        open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace") for p in seen["pids"]
    ]
    print(json.dumps(seen))
    """
)


@pytest.fixture(scope="module")
def runner() -> Iterator[ZygoteRunner]:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    if os.geteuid() != 0:
        pytest.skip("the zygote runs job runtimes when the gateway runs as root")
    made = job_runner(preload=JOB_RUNTIME_MODULES)
    assert isinstance(made, ZygoteRunner), "as root, job runtimes fork from the zygote"
    try:
        yield made
    finally:
        made.close()


def run(runner: ZygoteRunner, tmp_path: Path, name: str, source: str, binds: list[Bind]) -> SandboxResult:
    output = tmp_path / f"output-{name}"
    output.mkdir()
    return runner.run(SandboxRequest(argv=["-c", source], output_dir=output, binds=binds, limits=LIMITS))


def assert_sees_nothing_of_a(result: SandboxResult) -> None:
    assert result.ok, result.stderr
    seen = json.loads(result.stdout)
    assert seen["message_chars"] == 4000
    assert seen["pi"] != 3.0
    assert seen["random_as_a_left_it"] is False
    assert seen["tmp"] == [] and seen["shm"] == [], seen
    assert seen["abstract_socket"] == "Connection refused", seen
    # its own init and itself: no process of another run, no zygote
    assert seen["pids"] == [1, 2], seen
    assert not [c for c in seen["cmdlines"] if MARKER in c or "left-by-a" in c], seen["cmdlines"]


def test_b10_jobs_forked_from_one_zygote_share_nothing(runner: ZygoteRunner, tmp_path: Path) -> None:
    signals = tmp_path / "signals"
    signals.mkdir()
    signals.chmod(0o777)
    tmp_path.chmod(0o755)
    binds = [Bind(signals, "/signals", writable=True)]
    results: dict[str, SandboxResult] = {}
    job_a = threading.Thread(target=lambda: results.update(a=run(runner, tmp_path, "a", JOB_A, binds)))
    job_a.start()
    try:
        for _ in range(1200):
            if (signals / "ready").exists() or not job_a.is_alive():
                break
            time.sleep(0.05)
        assert (signals / "ready").exists(), results
        a_saw = json.loads((signals / "ready").read_text())
        assert processes_with(MARKER), "job A's background process runs while A does"

        concurrent = run(runner, tmp_path, "b", LOOKS, [])
    finally:
        (signals / "stop").touch()
        job_a.join(timeout=90)
    assert not job_a.is_alive()
    assert results["a"].ok, results["a"].stderr
    # A's own view held only A's processes too
    assert set(a_saw["pids"]) <= {1, 2, a_saw["leftover"]}, a_saw
    assert processes_with(MARKER) == [], "job A's background process outlived its run"

    after = run(runner, tmp_path, "c", LOOKS, [])

    assert_sees_nothing_of_a(concurrent)
    assert_sees_nothing_of_a(after)
