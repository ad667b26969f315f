"""A site's sandbox.yaml caps what any task may use at that gateway."""

from __future__ import annotations

from pathlib import Path

import pytest

from custos.core.errors import InvalidInput
from custos.core.wire import Resources
from custos.gateway.sandbox_caps import load_sandbox_caps
from custos.sandbox.limits import MIB, SandboxLimits


def test_no_file_gives_the_default_caps(tmp_path: Path) -> None:
    assert load_sandbox_caps(tmp_path / "sandbox.yaml") == SandboxLimits()


def test_the_caps_bound_what_a_spec_asks_for(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.yaml"
    path.write_text("cpu_seconds: 10\nmemory_mb: 1536\noutput_mb: 4\ntmp_mb: 64\n", encoding="utf-8")

    caps = load_sandbox_caps(path)
    limits = SandboxLimits.from_resources(Resources(), caps)

    assert (limits.cpu_seconds, limits.memory_bytes, limits.output_bytes) == (10, 1536 * MIB, 4 * MIB)
    assert limits.tmp_bytes == 64 * MIB
    assert limits.max_processes == SandboxLimits().max_processes  # not in the file: the default


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cpu_secs: 10\n", "sandbox.yaml: cpu_secs: Extra inputs are not permitted (fields: cpu_seconds"),
        ("memory_mb: 1\n", "sandbox.yaml: memory_mb: Input should be greater than or equal to 64"),
        ("cpu_seconds: [\n", "sandbox.yaml: not valid YAML"),
    ],
)
def test_a_bad_file_is_refused_naming_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sandbox.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
        load_sandbox_caps(path)
