from __future__ import annotations

import pytest

from custos.core.errors import InvalidInput
from custos.core.wire import Resources
from custos.sandbox.limits import MIB, SandboxExit, SandboxLimits, format_bytes


def test_from_resources_takes_the_smaller_of_request_and_cap() -> None:
    caps = SandboxLimits(
        cpu_seconds=60,
        memory_bytes=2048 * MIB,
        max_processes=64,
        output_bytes=8 * MIB,
        output_files=7,
        wall_seconds=100,
        tmp_bytes=32 * MIB,
    )
    asked = Resources(cpu_seconds=30, memory_mb=4096, wall_seconds=500, max_processes=16, output_mb=4)

    limits = SandboxLimits.from_resources(asked, caps)

    assert limits == SandboxLimits(
        cpu_seconds=30,
        memory_bytes=2048 * MIB,
        max_processes=16,
        output_bytes=4 * MIB,
        output_files=7,
        wall_seconds=100,
        tmp_bytes=32 * MIB,
    )


def test_a_request_below_every_cap_is_kept() -> None:
    asked = Resources(cpu_seconds=5, memory_mb=256, wall_seconds=10, max_processes=8, output_mb=1)

    limits = SandboxLimits.from_resources(asked, SandboxLimits())

    assert (limits.cpu_seconds, limits.memory_bytes, limits.wall_seconds) == (5, 256 * MIB, 10)
    assert (limits.max_processes, limits.output_bytes) == (8, MIB)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cpu_seconds", 0),
        ("memory_bytes", 1024),
        ("max_processes", -1),
        ("wall_seconds", 0),
        ("tmp_bytes", True),
    ],
)
def test_limits_out_of_range_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(InvalidInput, match=field):
        SandboxLimits(**{field: value})  # type: ignore[arg-type]


def test_limits_travel_as_json() -> None:
    limits = SandboxLimits(cpu_seconds=3, wall_seconds=1.5, output_files=9)

    assert SandboxLimits.from_json(limits.to_json()) == limits


def test_json_with_an_unknown_limit_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown sandbox limit 'gpu'"):
        SandboxLimits.from_json('{"gpu": 1}')


def test_every_breach_code_has_a_sentence_naming_its_limit() -> None:
    limits = SandboxLimits(memory_bytes=512 * MIB, max_processes=64, output_bytes=16 * MIB, tmp_bytes=MIB)

    sentences = {code: limits.describe_breach(code) for code in SandboxExit}

    assert sentences[SandboxExit.EXIT_MEMORY] == "memory limit of 512 MiB exceeded"
    assert sentences[SandboxExit.EXIT_PROCESSES] == "process limit of 64 reached"
    assert sentences[SandboxExit.EXIT_OUTPUT] == "output limit of 16 MiB exceeded"
    assert sentences[SandboxExit.EXIT_TMP] == "temporary space limit of 1 MiB exceeded"
    assert all(sentences.values())


def test_breach_codes_avoid_codes_python_and_signals_use() -> None:
    assert all(2 < code < 128 for code in SandboxExit)


def test_time_limits_read_as_seconds() -> None:
    limits = SandboxLimits(cpu_seconds=2, wall_seconds=5)

    assert limits.cpu_breach() == "CPU time limit of 2 s exceeded"
    assert limits.wall_breach() == "wall-clock limit of 5 s exceeded"
    assert SandboxLimits(wall_seconds=1.5).wall_breach() == "wall-clock limit of 1.5 s exceeded"


@pytest.mark.parametrize(
    ("size", "text"), [(4 << 30, "4 GiB"), (512 * MIB, "512 MiB"), (64 << 10, "64 KiB"), (1000, "1000 bytes")]
)
def test_sizes_use_the_largest_exact_unit(size: int, text: str) -> None:
    assert format_bytes(size) == text
