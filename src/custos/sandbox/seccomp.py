"""The seccomp filter every sandboxed process runs under, as the classic BPF program bubblewrap loads.

Dropping capabilities already stops most privileged calls. The filter closes what an unprivileged
process may still do on a stock kernel and that a computation never needs: creating user namespaces
(which hand out capabilities inside them), ptrace, mounting, keyrings, BPF, io_uring, userfaultfd and
kernel module or kexec calls. Denied calls fail with EPERM; `clone3` fails with ENOSYS so that the C
library falls back to `clone`, whose flags the filter can inspect. A foreign system-call ABI (such as
x32 on x86-64) is refused as a whole.

Sockets: only unix sockets (the DAL and the round socket are). `socket` and `socketpair` of any other
family fail with EAFNOSUPPORT, as on a kernel without it: no AF_VSOCK to the hypervisor, no netlink,
no packet sockets, no internet sockets even on the sandbox's empty loopback.
"""

from __future__ import annotations

import errno
import platform
import struct

from custos.core.errors import SandboxError

# Classic BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
_LOAD_WORD = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JUMP_EQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JUMP_GE = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JUMP_SET = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RETURN = 0x06  # BPF_RET | BPF_K
_KILL_PROCESS = 0x80000000
_ERRNO = 0x00050000
_ALLOW = 0x7FFF0000

# Offsets into struct seccomp_data: int nr; u32 arch; u64 ip; u64 args[6].
_NR = 0
_ARCH = 4
_ARG0_LOW = 16  # little-endian: the low 32 bits of args[0]

# Every CLONE_NEW* flag that clone(2) accepts.
_NEW_NAMESPACE_FLAGS = 0x7E020000
_X32_SYSCALL_BIT = 0x40000000

# name: (x86_64 number, generic number used by aarch64)
_DENIED: dict[str, tuple[int | None, int | None]] = {
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "kcmp": (312, 272),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "unshare": (272, 97),
    "setns": (308, 268),
    "perf_event_open": (298, 241),
    "bpf": (321, 280),
    "userfaultfd": (323, 282),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "open_by_handle_at": (304, 265),
    "name_to_handle_at": (303, 264),
    "quotactl": (179, 60),
    "syslog": (103, 116),
    "acct": (163, 89),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "reboot": (169, 142),
    "uselib": (134, None),
    "iopl": (172, None),
    "ioperm": (173, None),
}
_CLONE = (56, 220)
_CLONE3 = (435, 435)
_SOCKET_CALLS = ((41, 198), (53, 199))  # socket, socketpair: the family is their first argument
_AF_UNIX = 1

_ARCHES = {"x86_64": (0, 0xC000003E), "aarch64": (1, 0xC00000B7)}


def _instruction(code: int, k: int, jump_true: int = 0, jump_false: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jump_true, jump_false, k)


def seccomp_program(machine: str | None = None) -> bytes:
    """The filter for `machine` (default: this one) as raw `struct sock_filter` records."""
    machine = machine or platform.machine()
    if machine not in _ARCHES:
        raise SandboxError(
            f"the sandbox's seccomp filter supports x86_64 and aarch64, not {machine}; "
            "run the gateway on one of those"
        )
    column, audit_arch = _ARCHES[machine]
    program = [
        _instruction(_LOAD_WORD, _ARCH),
        _instruction(_JUMP_EQ, audit_arch, jump_true=1),
        _instruction(_RETURN, _KILL_PROCESS),
        _instruction(_LOAD_WORD, _NR),
    ]
    if machine == "x86_64":
        program += [
            _instruction(_JUMP_GE, _X32_SYSCALL_BIT, jump_false=1),
            _instruction(_RETURN, _ERRNO | errno.EPERM),
        ]
    for numbers in _DENIED.values():
        number = numbers[column]
        if number is not None:
            program += [
                _instruction(_JUMP_EQ, number, jump_false=1),
                _instruction(_RETURN, _ERRNO | errno.EPERM),
            ]
    for numbers in _SOCKET_CALLS:
        program += [
            _instruction(_JUMP_EQ, numbers[column], jump_false=4),
            _instruction(_LOAD_WORD, _ARG0_LOW),
            _instruction(_JUMP_EQ, _AF_UNIX, jump_false=1),
            _instruction(_RETURN, _ALLOW),
            _instruction(_RETURN, _ERRNO | errno.EAFNOSUPPORT),
        ]
    program += [
        _instruction(_JUMP_EQ, _CLONE3[column], jump_false=1),
        _instruction(_RETURN, _ERRNO | errno.ENOSYS),
        _instruction(_JUMP_EQ, _CLONE[column], jump_true=1),
        _instruction(_RETURN, _ALLOW),
        _instruction(_LOAD_WORD, _ARG0_LOW),
        _instruction(_JUMP_SET, _NEW_NAMESPACE_FLAGS, jump_false=1),
        _instruction(_RETURN, _ERRNO | errno.EPERM),
        _instruction(_RETURN, _ALLOW),
    ]
    return b"".join(program)
