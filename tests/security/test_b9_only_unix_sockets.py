"""B9: approved custom code can create unix sockets only (the DAL and the round socket are unix
sockets); every other socket family, AF_VSOCK (a path to the hypervisor) included, is refused by the
sandbox's seccomp filter, through a real gateway and the job's long-lived runtime (and in a direct
run)."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from custos.sandbox import BubblewrapRunner, SandboxLimits, SandboxRequest

pytestmark = pytest.mark.integration


def socket_families(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    import errno
    import socket

    families = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16, "AF_PACKET": 17, "AF_VSOCK": 40}
    outcomes = {}
    for name, family in families.items():
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW):
            try:
                socket.socket(family, kind).close()
                outcomes[f"{name}/{kind}"] = "created"
            except OSError as exc:
                outcomes[f"{name}/{kind}"] = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    for name in ("AF_UNIX", "AF_INET"):
        try:
            for end in socket.socketpair(families[name]):
                end.close()
            outcomes[f"{name} pair"] = "created"
        except OSError as exc:
            outcomes[f"{name} pair"] = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    outcomes["rows read through the DAL"] = dal.read(datasets[0], ["age"]).num_rows
    return outcomes


def test_b9_custom_code_can_create_unix_sockets_only(
    capped_cluster: Any, run_approved: Callable[..., str]
) -> None:
    job_id = run_approved(socket_families)
    with capped_cluster.client("alice") as alice, capped_cluster.client("admin@hospital-a") as admin:
        assert alice.wait_job(job_id, timeout=180).state == "awaiting_release"
        held = next(r for r in admin.releases() if r.job_id == job_id)
        admin.approve_release(held.id, "socket families only")
        (outcomes,) = alice.code_result(job_id).values()

    assert outcomes.pop("rows read through the DAL") > 0  # the runtime's own unix sockets still work
    unix = {key: outcomes.pop(key) for key in list(outcomes) if key.startswith("AF_UNIX")}
    # stream, datagram, raw (a datagram socket for unix) and a pair
    assert len(unix) == 4 and set(unix.values()) == {"created"}, unix
    assert set(outcomes.values()) == {"EAFNOSUPPORT"}, outcomes


def test_b9_only_unix_sockets_in_a_direct_run(sandbox_runner: BubblewrapRunner, tmp_path: Path) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    source = textwrap.dedent(
        """
        import errno, socket
        for family in (socket.AF_UNIX, socket.AF_INET, socket.AF_VSOCK):
            try:
                socket.socket(family, socket.SOCK_STREAM).close()
                print("created")
            except OSError as exc:
                print(errno.errorcode[exc.errno])
        """
    )
    limits = SandboxLimits(cpu_seconds=10, wall_seconds=30, max_processes=32)

    result = sandbox_runner.run(SandboxRequest(argv=["-c", source], output_dir=tmp_path, limits=limits))

    assert result.ok, result.stderr
    assert result.stdout.split() == ["created", "EAFNOSUPPORT", "EAFNOSUPPORT"]
