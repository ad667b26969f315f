"""A site's gateway.yaml: caps that are a ceiling, sizes a spec may ask for, spares, tasks in flight,
log level; flags over the file; the older sandbox.yaml still read; a bad file refused naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from custos.core.errors import InvalidInput, PolicyDenied
from custos.core.wire import RESOURCE_TEMPLATES, Resources
from custos.gateway.config import GATEWAY_CONFIG_FILE, load_gateway_config
from custos.gateway.sandbox_caps import SANDBOX_CAPS_FILE
from custos.sandbox.limits import MIB, SandboxLimits


def _write(folder: Path, name: str, data: object) -> None:
    (folder / name).write_text(yaml.safe_dump(data) if not isinstance(data, str) else data, encoding="utf-8")


def test_no_file_gives_the_defaults_and_sizes_cut_to_the_caps(tmp_path: Path) -> None:
    config = load_gateway_config(tmp_path)
    assert config.caps == SandboxLimits()
    assert (config.warm_spares, config.tasks_in_flight, config.log_level) == (1, 4, "info")
    assert (config.poll_wait_s, config.crl_refresh_s) == (20.0, 30.0)
    assert config.templates["small"] == RESOURCE_TEMPLATES["small"]
    # The built-in large asks for more than the default caps: this site's large is cut down to them.
    assert config.templates["large"].memory_mb == SandboxLimits().memory_bytes // MIB
    assert config.origin == "defaults (no gateway.yaml)"


def test_gateway_yaml_sets_every_part(tmp_path: Path) -> None:
    _write(
        tmp_path,
        GATEWAY_CONFIG_FILE,
        {
            "sandbox": {"cpu_seconds": 600, "memory_mb": 8192, "wall_seconds": 1800},
            "resources": {
                "large": {
                    "cpu_seconds": 600, "memory_mb": 8192, "wall_seconds": 1800,
                    "max_processes": 128, "output_mb": 16,
                }
            },
            "tasks_in_flight": 2,
            "warm_spares": 0,
            "poll_wait_s": 5,
            "crl_refresh_s": 5,
            "log_level": "warning",
            "metrics_file": "metrics/site-a.prom",
        },
    )  # fmt: skip
    config = load_gateway_config(tmp_path)
    assert (config.caps.cpu_seconds, config.caps.memory_bytes) == (600, 8192 * MIB)
    assert (config.tasks_in_flight, config.warm_spares, config.log_level) == (2, 0, "warning")
    assert (config.poll_wait_s, config.crl_refresh_s) == (5.0, 5.0)
    assert config.metrics_file == tmp_path / "metrics" / "site-a.prom"
    large = config.limits_for(Resources(template="large"))
    assert (large.cpu_seconds, large.memory_bytes, large.max_processes) == (600, 8192 * MIB, 128)


def test_flags_override_the_file(tmp_path: Path) -> None:
    _write(
        tmp_path, GATEWAY_CONFIG_FILE, {"warm_spares": 2, "sandbox": {"memory_mb": 2048, "cpu_seconds": 30}}
    )
    config = load_gateway_config(tmp_path, {"warm_spares": 0, "sandbox": {"memory_mb": "1024"}})
    assert config.warm_spares == 0
    assert (config.caps.memory_bytes, config.caps.cpu_seconds) == (1024 * MIB, 30)
    assert config.origin == "gateway.yaml and flags"


def test_caps_are_a_ceiling_a_spec_asking_for_more_is_refused_naming_the_cap(tmp_path: Path) -> None:
    _write(tmp_path, GATEWAY_CONFIG_FILE, {"sandbox": {"memory_mb": 2048}})
    config = load_gateway_config(tmp_path)
    with pytest.raises(
        PolicyDenied, match=r"memory_mb 8192 is more than this gateway's cap of 2048 \(sandbox.memory_mb\)"
    ):
        config.limits_for(Resources(memory_mb=8192))
    # Asking for less is granted as asked; asking for nothing gets the caps.
    assert config.limits_for(Resources(memory_mb=512)).memory_bytes == 512 * MIB
    assert config.limits_for(Resources()).memory_bytes == 2048 * MIB


def test_the_older_sandbox_yaml_is_read_as_the_caps(tmp_path: Path) -> None:
    _write(tmp_path, SANDBOX_CAPS_FILE, {"cpu_seconds": 10, "memory_mb": 1536, "tmp_mb": 64})
    config = load_gateway_config(tmp_path)
    assert (config.caps.cpu_seconds, config.caps.memory_bytes, config.caps.tmp_bytes) == (
        10,
        1536 * MIB,
        64 * MIB,
    )
    assert config.origin == "sandbox.yaml"
    _write(tmp_path, GATEWAY_CONFIG_FILE, {"warm_spares": 0})
    with pytest.raises(InvalidInput, match=r"has both gateway\.yaml and sandbox\.yaml: move the caps"):
        load_gateway_config(tmp_path)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (GATEWAY_CONFIG_FILE, "warm_spare: 1\n", "gateway.yaml: warm_spare: Extra inputs are not permitted"),
        (
            GATEWAY_CONFIG_FILE,
            "warm_spares: -1\n",
            "gateway.yaml: warm_spares: Input should be greater than or equal to 0",
        ),
        (
            GATEWAY_CONFIG_FILE,
            "poll_wait_s: 0\n",
            "gateway.yaml: poll_wait_s: Input should be greater than or equal to 1",
        ),
        (
            GATEWAY_CONFIG_FILE,
            "log_level: loud\n",
            "gateway.yaml: log_level: Input should be 'debug', 'info'",
        ),
        (
            GATEWAY_CONFIG_FILE,
            "sandbox: {memory_mb: 1}\n",
            "gateway.yaml: sandbox.memory_mb: Input should be greater",
        ),
        (
            GATEWAY_CONFIG_FILE,
            "resources: {huge: {}}\n",
            "gateway.yaml: resources.huge: Input should be 'small', 'medium' or 'large'",
        ),
        (
            GATEWAY_CONFIG_FILE,
            "sandbox: {memory_mb: 1024}\nresources: {small: {cpu_seconds: 10, memory_mb: 2048, "
            "wall_seconds: 60, max_processes: 8, output_mb: 1}}\n",
            "resources.small: memory_mb 2048 is more than this gateway's cap of 1024",
        ),
        (
            GATEWAY_CONFIG_FILE,
            "resources: {small: {cpu_seconds: 10, memory_mb: 256, wall_seconds: 200, max_processes: 8, "
            "output_mb: 1}}\n",
            "resources.small.wall_seconds 200 is more than 120, the wall time the orchestrator leases",
        ),
        (GATEWAY_CONFIG_FILE, "tasks_in_flight: [\n", "gateway.yaml: not valid YAML"),
        (
            SANDBOX_CAPS_FILE,
            "cpu_secs: 10\n",
            "sandbox.yaml: cpu_secs: Extra inputs are not permitted (fields: cpu_seconds",
        ),
        (
            SANDBOX_CAPS_FILE,
            "memory_mb: 1\n",
            "sandbox.yaml: memory_mb: Input should be greater than or equal to 64",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_the_field(tmp_path: Path, name: str, text: str, message: str) -> None:
    _write(tmp_path, name, text)
    with pytest.raises(InvalidInput) as refused:
        load_gateway_config(tmp_path)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
