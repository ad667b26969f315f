"""BubblewrapRunner against the real bubblewrap: what a computation can do, see and report."""

from __future__ import annotations

import json
import os
import socket
import textwrap
import threading
from pathlib import Path

import pytest

from custos.core.errors import InvalidInput, SandboxError
from custos.sandbox import Bind, BubblewrapRunner, Runner, SandboxLimits, SandboxRequest, SandboxResult

FAST = SandboxLimits(cpu_seconds=10, wall_seconds=30, max_processes=64, output_bytes=1 << 20, output_files=20)
ROOT = os.geteuid() == 0


def code(source: str) -> list[str]:
    return ["-c", textwrap.dedent(source)]


def tmp_entries_of_interpreter(runner: BubblewrapRunner) -> list[str]:
    """What a fresh /tmp holds in the sandbox: nothing, unless the project itself lives under /tmp, in
    which case the interpreter's read-only binds show through as their top folder."""
    tops = {
        Path(p).relative_to("/tmp").parts[0] for p in runner._interpreter.read_only if p.startswith("/tmp/")
    }
    return sorted(tops)


def output_dir(tmp_path: Path) -> Path:
    path = tmp_path / "output"
    path.mkdir()
    return path


def test_bubblewrap_runner_is_a_runner(runner: BubblewrapRunner) -> None:
    as_runner: Runner = runner

    assert callable(as_runner.run)


def test_a_computation_writes_a_result_the_host_reads(runner: BubblewrapRunner, tmp_path: Path) -> None:
    out = output_dir(tmp_path)
    out.chmod(0o750)

    result = runner.run(
        SandboxRequest(
            argv=code("""
                import json, os
                os.mkdir("/output/parts")
                with open("/output/result.json", "w") as f:
                    json.dump({"mean": 4.5, "n": 10}, f)
                print("done")
            """),
            output_dir=out,
            limits=FAST,
        )
    )

    assert result.ok, result.stderr
    assert (result.exit_code, result.failure, result.stdout) == (0, None, "done\n")
    assert json.loads((out / "result.json").read_text()) == {"mean": 4.5, "n": 10}
    for path in (out, out / "parts", out / "result.json"):
        assert path.stat().st_uid == os.getuid()  # handed back to the gateway
    assert out.stat().st_mode & 0o777 == 0o750
    assert result.duration_s > 0


def test_pyarrow_and_numpy_run_inside_with_the_default_limits(
    runner: BubblewrapRunner, tmp_path: Path
) -> None:
    result = runner.run(
        SandboxRequest(
            argv=code("""
                import numpy as np, pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
                table = pa.table({"x": np.arange(100_000, dtype="int64")})
                pq.write_table(table, "/tmp/t.parquet")
                back = pq.read_table("/tmp/t.parquet")
                print(pc.sum(back["x"]).as_py(), float(np.linalg.inv(np.eye(50) * 2).trace()))
            """),
            output_dir=output_dir(tmp_path),
            limits=SandboxLimits(wall_seconds=120),
        )
    )

    assert result.ok, result.stderr
    assert result.stdout.split() == [str(sum(range(100_000))), "25.0"]


def test_the_environment_is_cleaned(
    runner: BubblewrapRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUSTOS_TEST_SECRET", "s3cr3t")

    result = runner.run(
        SandboxRequest(
            argv=code("import json, os; print(json.dumps(dict(os.environ)))"),
            output_dir=output_dir(tmp_path),
            env={"CUSTOS_TASK": "t-1"},
            limits=FAST,
        )
    )

    env = json.loads(result.stdout)
    assert "CUSTOS_TEST_SECRET" not in env
    assert "s3cr3t" not in result.stdout
    assert env["CUSTOS_TASK"] == "t-1"
    assert env["HOME"] == env["TMPDIR"] == "/tmp"
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "1"
    assert not {"CUSTOS_SANDBOX_LIMITS", "CUSTOS_SANDBOX_STARTED_FD"} & set(env)


def test_exit_code_and_stderr_propagate(runner: BubblewrapRunner, tmp_path: Path) -> None:
    result = runner.run(
        SandboxRequest(
            argv=code("import sys; print('no rows', file=sys.stderr); sys.exit(3)"),
            output_dir=output_dir(tmp_path),
            limits=FAST,
        )
    )

    assert not result.ok
    assert (result.exit_code, result.failure) == (3, "exited with code 3")
    assert result.stderr == "no rows\n"


def test_an_exception_is_reported_with_its_traceback(runner: BubblewrapRunner, tmp_path: Path) -> None:
    result = runner.run(
        SandboxRequest(
            argv=code("raise ValueError('bad column')"), output_dir=output_dir(tmp_path), limits=FAST
        )
    )

    assert (result.exit_code, result.failure) == (1, "exited with code 1")
    assert result.stderr.rstrip().endswith("ValueError: bad column")


def test_tmp_is_private_and_limited(runner: BubblewrapRunner, tmp_path: Path) -> None:
    marker = tmp_path / "host-marker"
    marker.write_text("host")
    limits = SandboxLimits(wall_seconds=30, tmp_bytes=1 << 20, output_bytes=4 << 20)

    seen = runner.run(
        SandboxRequest(
            argv=code(f"import os; print(os.listdir('/tmp'), os.path.exists({str(marker)!r}))"),
            output_dir=output_dir(tmp_path),
            limits=limits,
        )
    )
    filled = [
        runner.run(
            SandboxRequest(
                argv=code(f"open('{folder}/fill', 'wb').write(b'x' * (2 << 20))"),
                output_dir=tmp_path / "output",
                limits=limits,
            )
        )
        for folder in ("/tmp", "/dev/shm")
    ]

    assert seen.stdout.strip() == f"{tmp_entries_of_interpreter(runner)} False"
    assert [r.failure for r in filled] == ["temporary space limit of 1 MiB exceeded"] * 2


def test_tmp_does_not_outlive_the_run(runner: BubblewrapRunner, tmp_path: Path) -> None:
    out = output_dir(tmp_path)
    first = runner.run(
        SandboxRequest(argv=code("open('/tmp/left', 'w').write('x')"), output_dir=out, limits=FAST)
    )
    second = runner.run(
        SandboxRequest(argv=code("import os; print(os.listdir('/tmp'))"), output_dir=out, limits=FAST)
    )

    assert first.ok and second.stdout.strip() == str(tmp_entries_of_interpreter(runner))


def test_a_script_in_a_bound_task_folder_reads_its_input(runner: BubblewrapRunner, tmp_path: Path) -> None:
    task = tmp_path / "task"
    task.mkdir()
    (task / "input.json").write_text(json.dumps({"values": [1, 2, 3]}))
    (task / "job.py").write_text(
        textwrap.dedent("""
            import json, sys
            values = json.load(open(sys.argv[1]))["values"]
            json.dump({"total": sum(values)}, open(sys.argv[2] + "/result.json", "w"))
        """)
    )
    out = output_dir(tmp_path)

    by_path = runner.run(
        SandboxRequest(
            argv=["/task/job.py", "/task/input.json", "/output"],
            output_dir=out,
            binds=[Bind(task, "/task")],
            limits=FAST,
        )
    )
    (out / "result.json").unlink()
    by_module = runner.run(
        SandboxRequest(
            argv=["-m", "job", "/task/input.json", "/output"],
            output_dir=out,
            binds=[Bind(task, "/task")],
            env={"PYTHONPATH": "/task"},
            limits=FAST,
        )
    )

    assert by_path.ok and by_module.ok, by_path.stderr + by_module.stderr
    assert json.loads((out / "result.json").read_text()) == {"total": 6}


def test_stdout_keeps_only_its_last_64_kib(runner: BubblewrapRunner, tmp_path: Path) -> None:
    result = runner.run(
        SandboxRequest(
            argv=code("import sys\nfor i in range(100_000): print(f'line {i:06d}')"),
            output_dir=output_dir(tmp_path),
            limits=FAST,
        )
    )

    assert result.ok
    assert len(result.stdout.encode()) <= 64 << 10
    assert result.stdout.endswith("line 099999\n")


def test_a_unix_socket_bound_in_is_reachable(runner: BubblewrapRunner, tmp_path: Path) -> None:
    folder = tmp_path / "dal"
    folder.mkdir()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(folder / "dal.sock"))
    (folder / "dal.sock").chmod(0o666)  # the sandbox user connects as "other"
    server.listen(1)
    server.settimeout(30)
    received: list[bytes] = []

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            connection.settimeout(30)
            received.append(connection.recv(100))
            connection.sendall(b"pong")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = runner.run(
            SandboxRequest(
                argv=code("""
                    import socket
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.settimeout(20)
                    s.connect("/dal/dal.sock")
                    s.sendall(b"ping")
                    print(s.recv(100).decode())
                """),
                output_dir=output_dir(tmp_path),
                binds=[Bind(folder, "/dal")],
                limits=FAST,
            )
        )
    finally:
        thread.join(timeout=30)
        server.close()

    assert result.ok, result.stderr
    assert result.stdout.strip() == "pong"
    assert received == [b"ping"]


@pytest.mark.parametrize(
    ("bind_target", "message"),
    [
        ("/usr/share/data", "overlaps /usr"),
        ("/output", "overlaps /output"),
        ("task", "normalised absolute path"),
        ("/task/../etc", "normalised absolute path"),
    ],
)
def test_bind_targets_that_would_shadow_the_sandbox_are_refused(
    runner: BubblewrapRunner, tmp_path: Path, bind_target: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        runner.run(
            SandboxRequest(
                argv=code("pass"), output_dir=output_dir(tmp_path), binds=[Bind(tmp_path, bind_target)]
            )
        )


def test_requests_the_sandbox_cannot_honour_are_refused(runner: BubblewrapRunner, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist or is not a folder"):
        runner.run(SandboxRequest(argv=code("pass"), output_dir=tmp_path / "missing"))
    out = output_dir(tmp_path)
    with pytest.raises(InvalidInput, match=r"bind source .* does not exist"):
        runner.run(
            SandboxRequest(argv=code("pass"), output_dir=out, binds=[Bind(tmp_path / "nope", "/task")])
        )
    with pytest.raises(InvalidInput, match="CUSTOS_SANDBOX_LIMITS"):
        runner.run(SandboxRequest(argv=code("pass"), output_dir=out, env={"CUSTOS_SANDBOX_LIMITS": "{}"}))
    with pytest.raises(InvalidInput, match="argv is empty"):
        runner.run(SandboxRequest(argv=[], output_dir=out))


@pytest.mark.skipif(not ROOT, reason="only a root gateway runs the sandbox as another uid")
def test_a_bind_source_the_sandbox_user_cannot_read_is_refused(
    runner: BubblewrapRunner, tmp_path: Path
) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)

    with pytest.raises(InvalidInput, match="not accessible to the sandbox user"):
        runner.run(
            SandboxRequest(argv=code("pass"), output_dir=output_dir(tmp_path), binds=[Bind(private, "/task")])
        )


def test_a_missing_bubblewrap_is_named() -> None:
    with pytest.raises(
        SandboxError, match=r"bubblewrap \(bwrap\) is not installed; install the Debian package"
    ):
        BubblewrapRunner(bwrap="custos-no-such-bwrap")


def test_an_interpreter_that_cannot_start_is_named(runner: BubblewrapRunner, tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="could not be started"):
        BubblewrapRunner(python=tmp_path / "no-python")


def test_a_stop_event_ends_the_run_and_every_process_of_it(runner: BubblewrapRunner, tmp_path: Path) -> None:
    stop = threading.Event()
    marker = tmp_path / "pids"
    marker.mkdir()
    marker.chmod(0o777)
    request = SandboxRequest(
        argv=code("""
            import os, subprocess, time
            child = subprocess.Popen(["sleep", "600"])
            with open("/marker/pids", "w") as f:
                f.write(f"{child.pid}")
            time.sleep(600)
        """),
        output_dir=output_dir(tmp_path),
        binds=[Bind(marker, "/marker", writable=True)],
        limits=FAST,
        stop=stop,
    )
    ended: list[SandboxResult] = []
    thread = threading.Thread(target=lambda: ended.append(runner.run(request)))
    thread.start()
    for _ in range(200):
        if (marker / "pids").exists():
            break
        threading.Event().wait(0.05)
    stop.set()
    thread.join(timeout=10)

    assert not thread.is_alive()
    [result] = ended
    assert result.failure == "the run was stopped by the gateway"
    assert result.duration_s < FAST.wall_seconds
