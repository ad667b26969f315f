"""The seccomp program, run through a small classic-BPF interpreter: which calls it lets through."""

from __future__ import annotations

import errno
import struct

import pytest

from custos.core.errors import SandboxError
from custos.sandbox.seccomp import seccomp_program

X86_64 = 0xC000003E
AARCH64 = 0xC00000B7
ALLOW = 0x7FFF0000
KILL_PROCESS = 0x80000000
CLONE_NEWUSER = 0x10000000
SIGCHLD = 17


def decide(program: bytes, arch: int, nr: int, arg0: int = 0) -> int:
    """Run `program` on one seccomp_data record; supports the opcodes a seccomp filter uses."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    instructions = [struct.unpack_from("=HBBI", program, offset) for offset in range(0, len(program), 8)]
    accumulator = 0
    pc = 0
    for _ in range(len(instructions)):
        code, jump_true, jump_false, k = (int(part) for part in instructions[pc])
        if code == 0x20:
            accumulator = int(struct.unpack_from("=I", data, k)[0])
            pc += 1
        elif code == 0x06:
            return k
        elif code in (0x15, 0x35, 0x45):
            taken = {0x15: accumulator == k, 0x35: accumulator >= k, 0x45: bool(accumulator & k)}[code]
            pc += 1 + (jump_true if taken else jump_false)
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("the program ran off its end")


@pytest.fixture(scope="module")
def x86() -> bytes:
    return seccomp_program("x86_64")


def test_ordinary_calls_are_allowed(x86: bytes) -> None:
    for nr in (0, 1, 2, 9, 57, 59, 231):  # read, write, open, mmap, fork, execve, exit_group
        assert decide(x86, X86_64, nr) == ALLOW


@pytest.mark.parametrize("nr", [101, 165, 272, 308, 321, 425, 250, 175])
def test_privileged_calls_fail_with_eperm(x86: bytes, nr: int) -> None:
    # ptrace, mount, unshare, setns, bpf, io_uring_setup, keyctl, init_module
    assert decide(x86, X86_64, nr) == 0x00050000 | errno.EPERM


def test_clone_may_fork_and_start_threads_but_not_make_namespaces(x86: bytes) -> None:
    assert decide(x86, X86_64, 56, SIGCHLD) == ALLOW
    assert decide(x86, X86_64, 56, 0x3D0F00) == ALLOW  # the flags glibc uses for a thread
    assert decide(x86, X86_64, 56, CLONE_NEWUSER | SIGCHLD) == 0x00050000 | errno.EPERM


def test_clone3_falls_back_to_clone(x86: bytes) -> None:
    assert decide(x86, X86_64, 435) == 0x00050000 | errno.ENOSYS


def test_x32_calls_and_foreign_architectures_are_refused(x86: bytes) -> None:
    assert decide(x86, X86_64, 0x40000000 | 272) == 0x00050000 | errno.EPERM
    assert decide(x86, 0x40000003, 1) == KILL_PROCESS  # i386


def test_aarch64_uses_its_own_numbers() -> None:
    program = seccomp_program("aarch64")

    assert decide(program, AARCH64, 97) == 0x00050000 | errno.EPERM  # unshare
    assert decide(program, AARCH64, 101) == ALLOW  # nanosleep there, ptrace on x86_64
    assert decide(program, AARCH64, 63) == ALLOW  # read


def test_an_unsupported_machine_is_refused() -> None:
    with pytest.raises(SandboxError, match="x86_64 and aarch64, not riscv64"):
        seccomp_program("riscv64")


@pytest.mark.parametrize(
    ("machine", "arch", "socket", "socketpair"), [("x86_64", X86_64, 41, 53), ("aarch64", AARCH64, 198, 199)]
)
def test_only_unix_sockets_can_be_made(machine: str, arch: int, socket: int, socketpair: int) -> None:
    program = seccomp_program(machine)
    for nr in (socket, socketpair):
        assert decide(program, arch, nr, 1) == ALLOW  # AF_UNIX
        for family in (2, 10, 16, 17, 40):  # AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_VSOCK
            assert decide(program, arch, nr, family) == 0x00050000 | errno.EAFNOSUPPORT
        assert decide(program, arch, nr, (1 << 32) | 2) == 0x00050000 | errno.EAFNOSUPPORT
