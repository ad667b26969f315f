"""The limits one sandboxed run gets, and the exit codes that report a breach seen from inside.

This module is imported by the in-sandbox bootstrap, so it uses the standard library only
(`Resources` is imported for type checking alone).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from enum import IntEnum
from typing import TYPE_CHECKING, assert_never

from custos.core.errors import InvalidInput

if TYPE_CHECKING:
    from custos.core.wire import Resources

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30

# How the runner hands the bootstrap its limits, and the pipe on which the bootstrap says it is up.
LIMITS_VARIABLE = "CUSTOS_SANDBOX_LIMITS"
STARTED_FD_VARIABLE = "CUSTOS_SANDBOX_STARTED_FD"

# Open files per process. Not a field: nothing a computation does legitimately needs more, and a spec
# has no way to ask for it.
OPEN_FILES = 1024


class SandboxExit(IntEnum):
    """Exit codes the bootstrap uses when it sees a limit break inside the sandbox.

    They sit in a range Python itself never uses (1 and 2 are its own, 128+N are signals), so a
    computation exiting with an ordinary error code is not mistaken for a breach.
    """

    EXIT_MEMORY = 101
    EXIT_PROCESSES = 102
    EXIT_OUTPUT = 103
    EXIT_TMP = 104
    EXIT_USAGE = 105


def format_bytes(size: int) -> str:
    """`4 GiB`, `512 MiB`, `64 KiB` or `1000 bytes`: the largest unit that divides `size` exactly."""
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} bytes"


def format_seconds(seconds: float) -> str:
    return f"{seconds:g} s"


@dataclass(frozen=True)
class SandboxLimits:
    """What one run may use. Every limit is enforced; see docs/sandbox.md for how each is measured."""

    cpu_seconds: int = 120
    memory_bytes: int = 4 << 30
    max_processes: int = 256
    output_bytes: int = 16 << 20
    output_files: int = 100
    wall_seconds: float = 300
    tmp_bytes: int = 256 << 20

    def __post_init__(self) -> None:
        minimums: dict[str, float] = {
            "cpu_seconds": 1,
            "memory_bytes": 16 * MIB,
            "max_processes": 1,
            "output_bytes": 1,
            "output_files": 1,
            "wall_seconds": 0.01,
            "tmp_bytes": 4 * KIB,
        }
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"sandbox limit {field.name} must be a number, got {value!r}")
            if value < minimums[field.name]:
                raise InvalidInput(
                    f"sandbox limit {field.name} must be at least {minimums[field.name]:g}, got {value!r}"
                )

    @classmethod
    def from_resources(cls, resources: Resources, caps: SandboxLimits) -> SandboxLimits:
        """What a compute spec asked for, never more than the gateway's `caps`; a field it left out
        gets the cap. (The gateway refuses a spec that asks for more before it gets here.)"""

        def asked(value: int | None, unit: int, cap: int) -> int:
            return cap if value is None else min(value * unit, cap)

        return cls(
            cpu_seconds=asked(resources.cpu_seconds, 1, caps.cpu_seconds),
            memory_bytes=asked(resources.memory_mb, MIB, caps.memory_bytes),
            max_processes=asked(resources.max_processes, 1, caps.max_processes),
            output_bytes=asked(resources.output_mb, MIB, caps.output_bytes),
            output_files=caps.output_files,
            wall_seconds=caps.wall_seconds
            if resources.wall_seconds is None
            else min(float(resources.wall_seconds), caps.wall_seconds),
            tmp_bytes=caps.tmp_bytes,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SandboxLimits:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise InvalidInput("sandbox limits must be a JSON object")
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"unknown sandbox limit {unknown[0]!r}; accepted: {', '.join(sorted(known))}")
        return cls(**data)

    def describe_breach(self, code: SandboxExit) -> str:
        """The sentence a run's `failure` carries when the bootstrap exited with `code`."""
        match code:
            case SandboxExit.EXIT_MEMORY:
                return self.memory_breach()
            case SandboxExit.EXIT_PROCESSES:
                return f"process limit of {self.max_processes} reached"
            case SandboxExit.EXIT_OUTPUT:
                return self.output_size_breach()
            case SandboxExit.EXIT_TMP:
                return f"temporary space limit of {format_bytes(self.tmp_bytes)} exceeded"
            case SandboxExit.EXIT_USAGE:
                return "the sandbox bootstrap was started with invalid arguments"
            case _ as unreachable:
                assert_never(unreachable)

    def memory_breach(self) -> str:
        return f"memory limit of {format_bytes(self.memory_bytes)} exceeded"

    def cpu_breach(self) -> str:
        return f"CPU time limit of {format_seconds(self.cpu_seconds)} exceeded"

    def wall_breach(self) -> str:
        return f"wall-clock limit of {format_seconds(self.wall_seconds)} exceeded"

    def output_size_breach(self) -> str:
        return f"output limit of {format_bytes(self.output_bytes)} exceeded"

    def output_files_breach(self) -> str:
        return f"output limit of {self.output_files} files exceeded"
