"""B11: a site's sandbox caps are a ceiling. A spec that asks for more than a gateway's gateway.yaml
allows is refused at activation by that gateway, with the cap named; a spec that asks for one of the
site's sizes (`template`) runs with the size the site gave it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tests.conftest import stats_policy

from custos.core.errors import Conflict
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup

pytestmark = pytest.mark.integration

SMALL = {"cpu_seconds": 20, "memory_mb": 1024, "wall_seconds": 60, "max_processes": 32, "output_mb": 1}
CONFIG = {
    "sandbox": {"cpu_seconds": 30, "memory_mb": 1024, "wall_seconds": 120},
    "resources": {"small": SMALL},
}


def test_b11_a_spec_asking_for_more_than_the_caps_is_refused_naming_the_cap(tmp_path: Path) -> None:
    table = pa.table({"age": np.random.default_rng(3).integers(20, 90, 100)})
    site = GatewaySetup(
        "site-a", "hospital-a", [DatasetSetup("patients", table, stats_policy())], config=CONFIG
    )
    with Cluster(tmp_path, gateways=[site], users=[UserSetup("alice", "university")]) as cluster:
        with cluster.client("alice") as alice:
            greedy = alice.create_spec(
                "greedy", "stats@1.0.0", ["site-a/patients"], ["age"], {"memory_mb": 8192}
            )
            with pytest.raises(Conflict) as refused:
                alice.activate_spec(greedy.id)
            message = str(refused.value)
            assert "site-a refused" in message
            assert "memory_mb 8192 is more than this gateway's cap of 1024 (sandbox.memory_mb)" in message
            assert alice.spec(greedy.id).state == "failed"

            sized = alice.create_spec(
                "sized", "stats@1.0.0", ["site-a/patients"], ["age"], {"template": "small"}
            )
            alice.activate_spec(sized.id)
            job = alice.submit_job(sized.id, {"columns": ["age"], "statistics": ["count"]})
            alice.wait_job(job.id, timeout=120)
            assert alice.job_result(job.id).data["summaries"][0]["count"] == 100
        log = cluster.log_path("site-a").read_text(encoding="utf-8")
        assert "configuration: gateway.yaml; 4 task(s) in flight, 1 warm spare(s)" in log
