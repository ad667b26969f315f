"""The gateway's metrics file: every series names the site; it is replaced, never half-written."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from custos.gateway.metrics import GatewayMetrics


def _names(path: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        for sample in family.samples:
            found.setdefault(sample.name, set()).add(sample.labels.get("site", ""))
    return found


def test_the_file_is_written_after_a_task_and_throttled_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "collector" / "site-a.prom"
    path.parent.mkdir()
    metrics = GatewayMetrics("site-a", path, tmp_path, interval_s=3600)
    metrics.connected(True)
    metrics.write()
    first = path.read_text(encoding="utf-8")
    assert "custos_gateway_connected" in first
    metrics.polled()
    metrics.write()  # within the interval: not written again
    assert path.read_text(encoding="utf-8") == first
    metrics.task_done("compute", "done", 0.2)  # a finished task is written at once
    names = _names(path)
    assert names["custos_gateway_tasks_total"] == {"site-a"}
    assert all(sites == {"site-a"} for sites in names.values()), names
    assert [p.name for p in path.parent.iterdir()] == ["site-a.prom"]


def test_a_file_that_cannot_be_written_does_not_stop_the_gateway(tmp_path: Path) -> None:
    metrics = GatewayMetrics("site-a", tmp_path / "no-such-folder" / "site-a.prom", tmp_path)
    metrics.task_done("compute", "failed", 1.0)  # logged, not raised
    assert not (tmp_path / "no-such-folder").exists()
