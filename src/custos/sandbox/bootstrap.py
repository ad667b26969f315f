"""The first code that runs inside the sandbox: `python -m custos.sandbox.bootstrap <argv...>`.

It applies the run's resource limits to itself (they are inherited by everything it starts), tells the
runner that the sandbox is up (handing it a descriptor of /output, from which the runner takes the
output after the run), then runs the computation the way the interpreter would run `python <argv...>`
(`-m module`, `-c code` or a script path). A limit break that shows up as a Python exception
(MemoryError, a fork or thread that cannot start, a file grown past its limit, /output, /tmp or
/dev/shm full) becomes one of the SandboxExit codes, so the runner can name the limit. Standard
library only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import runpy
import socket
import sys
import traceback

from custos.sandbox.limits import (
    LIMITS_VARIABLE,
    OPEN_FILES,
    STARTED_FD_VARIABLE,
    SandboxExit,
    SandboxLimits,
)

OUTPUT_DIR = "/output"

# SIGXCPU at the soft limit ends the process; the hard limit, a second later, is SIGKILL for a process
# that chose to ignore SIGXCPU.
_CPU_GRACE_S = 1


def _lower(kind: int, soft: int, hard: int | None = None) -> None:
    """Set a limit; it can only go down, never above what the process was started with."""
    _, current_hard = resource.getrlimit(kind)
    hard = soft if hard is None else hard
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard)
    resource.setrlimit(kind, (min(soft, hard), hard))


def apply_limits(limits: SandboxLimits) -> None:
    _lower(resource.RLIMIT_AS, limits.memory_bytes)
    _lower(resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + _CPU_GRACE_S)
    _lower(resource.RLIMIT_NPROC, limits.max_processes)
    _lower(resource.RLIMIT_FSIZE, limits.output_bytes)
    _lower(resource.RLIMIT_CORE, 0)
    _lower(resource.RLIMIT_NOFILE, OPEN_FILES)


def _signal_started() -> None:
    """One byte on the started socket, with a descriptor of /output when there is one; then the socket
    is closed, so the computation never holds it."""
    fd = os.environ.pop(STARTED_FD_VARIABLE, "")
    if not fd.isdigit():
        return
    with socket.socket(fileno=int(fd)) as channel:
        try:
            output = os.open(OUTPUT_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            channel.sendall(b"1")
            return
        try:
            socket.send_fds(channel, [b"1"], [output])
        finally:
            os.close(output)


def _is_full(path: str) -> bool:
    try:
        return os.statvfs(path).f_bavail == 0
    except OSError:
        return False


def breach_code(error: BaseException) -> SandboxExit | None:
    """The limit an exception (or any exception it was raised from) reveals, if any."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError):
            return SandboxExit.EXIT_MEMORY
        if isinstance(current, BlockingIOError) and current.errno == errno.EAGAIN:
            return SandboxExit.EXIT_PROCESSES
        if isinstance(current, RuntimeError) and "can't start new thread" in str(current):
            return SandboxExit.EXIT_PROCESSES
        if isinstance(current, OSError) and current.errno == errno.EFBIG:
            return SandboxExit.EXIT_OUTPUT
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            # /output is a tmpfs of the output limit's size; /tmp and /dev/shm are the temporary space.
            return SandboxExit.EXIT_OUTPUT if _is_full(OUTPUT_DIR) else SandboxExit.EXIT_TMP
        current = current.__cause__ or current.__context__
    return None


def _run_target(argv: list[str]) -> None:
    if argv[0] == "-m" and len(argv) >= 2:
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    elif argv[0] == "-c" and len(argv) >= 2:
        sys.argv = ["-c", *argv[2:]]
        code = compile(argv[1], "<string>", "exec")
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})  # noqa: S102 - this is the sandbox
    else:
        sys.argv = list(argv)
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        runpy.run_path(argv[0], run_name="__main__")


def _print_error(error: BaseException) -> None:
    """The traceback as `python <argv...>` would print it: without the bootstrap's own frames."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename in (__file__, "<frozen runpy>"):
        tb = tb.tb_next
    traceback.print_exception(type(error), error, tb)


def _exit_code(exit: SystemExit) -> int:
    if exit.code is None:
        return 0
    if isinstance(exit.code, int):
        return exit.code
    print(exit.code, file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    text = os.environ.pop(LIMITS_VARIABLE, "")
    if not argv or not text:
        print(
            "usage: CUSTOS_SANDBOX_LIMITS=<json> python -m custos.sandbox.bootstrap <argv...>",
            file=sys.stderr,
        )
        return SandboxExit.EXIT_USAGE
    apply_limits(SandboxLimits.from_json(text))
    # Results are read by the gateway once the folder is handed back; nobody else needs them.
    os.umask(0o077)
    _signal_started()
    try:
        _run_target(argv)
    except SystemExit as exit:
        return _exit_code(exit)
    except BaseException as error:
        code = breach_code(error)
        # Printing can itself fail when memory is gone; the exit code still names the limit.
        with contextlib.suppress(BaseException):
            _print_error(error)
        if code is None:
            return 1
        # A broken limit ends the run now: no waiting for threads the computation left running.
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
