"""Threats D28 and D30 (docs/threats.md) through real processes: on a dataset under differential
privacy, a differencing attack's two counts (everyone, and everyone but one person) are both charged by
the gateways' ledgers and mirrored at the orchestrator; the job that would pass the cap is refused with
spent and cap; and the dry run (`custos job submit --dry-run`) shows what would remain, and spends
nothing.

The researcher is dora, whom no other test uses: her budget on `patients_dp` is this module's alone.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from click.testing import Result
from typer.testing import CliRunner

from custos.cli.main import app as cli_app
from custos.core.errors import Conflict
from custos.local.cluster import Cluster
from custos.sdk import Client

pytestmark = pytest.mark.integration

# Two of the cluster's three sites: enough to show a charge at each, and light on a two-core machine.
SITES = ["site-a/patients_dp", "site-b/patients_dp"]
COUNT_ALL: dict[str, Any] = {"columns": ["age"], "statistics": ["count"]}


def one_person_bmi(site_tables: list[pa.Table]) -> float:
    """A BMI that exactly one person of the sites has: `bmi != it` is everyone but them."""
    counts = pd.concat([t.to_pandas() for t in site_tables[: len(SITES)]])["bmi"].value_counts()
    return float(counts.index[counts == 1][0])


def custos_cli(cluster: Cluster, *args: str) -> Result:
    """The `custos` command line, in process (a child would spend seconds on imports alone)."""
    # A table row per line, however narrow the terminal running the tests.
    env = {"COLUMNS": "200", "CUSTOS_KIT": str(cluster.kit_dir("dora"))}
    return CliRunner().invoke(cli_app, list(args), env=env)


def run_job(dora: Client, spec_id: str, params: dict[str, Any]) -> dict[str, Any]:
    job = dora.submit_job(spec_id, params)
    dora.wait_job(job.id, timeout=120)
    return dict(dora.job_result(job.id).data)


def mirrored(dora: Client) -> dict[tuple[str, str], float]:
    return {(row.dataset, row.kind): row.spent_epsilon for row in dora.budget()}


def test_d28_d30_differencing_is_charged_mirrored_and_refused_at_the_cap(
    cluster: Cluster, site_tables: list[pa.Table]
) -> None:
    dora = cluster.client("dora")
    spec = dora.create_spec("differencing", "stats@1.0.0", SITES, ["age", "bmi"])
    dora.activate_spec(spec.id)

    # Before any job: the full cap, and nothing mirrored.
    before = {d.dataset: d for d in dora.preview_job(spec.id, COUNT_ALL).datasets}
    assert set(before) == set(SITES)
    for cost in before.values():
        assert (cost.dp, cost.mechanism, cost.mirrored, cost.would_exceed) == (True, "laplace", False, False)
        assert cost.epsilon == pytest.approx(1.0)
        assert (cost.remaining_epsilon, cost.cap_epsilon) == (3.0, 3.0)
    assert dora.budget() == []

    # D28: count(all) and count(all but one person) are both charged, at every site.
    everyone = run_job(dora, spec.id, COUNT_ALL)
    but_one = {**COUNT_ALL, "filters": [{"column": "bmi", "op": "!=", "value": one_person_bmi(site_tables)}]}
    all_but_one = run_job(dora, spec.id, but_one)

    for result in (everyone, all_but_one):
        assert result["dp"]["mechanism"] == "laplace"
        assert set(result["dp"]["spent"]) == set(SITES)
    assert {s: b["spent_epsilon"] for s, b in all_but_one["budget"].items()} == pytest.approx(
        dict.fromkeys(SITES, 2.0)
    )
    spent = mirrored(dora)
    assert spent == pytest.approx(
        {**{(s, "researcher"): 2.0 for s in SITES}, **{(s, "org"): 2.0 for s in SITES}}
    )

    # The dry run shows what would remain, and submits nothing.
    dry = custos_cli(
        cluster,
        "job",
        "submit",
        spec.id,
        "--params",
        '{"columns": ["age"], "statistics": ["count"]}',
        "--dry-run",
    )
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.splitlines() == [
        f"{s}: would spend ε=1.00 δ=0; remaining after: ε=0.00 of 3.00" for s in SITES
    ]
    assert "nothing was submitted" in dry.stderr

    # D30: the third job spends the last of the cap (so the dry run spent nothing); the fourth is refused.
    run_job(dora, spec.id, COUNT_ALL)
    (cost, *_) = dora.preview_job(spec.id, COUNT_ALL).datasets
    assert (cost.remaining_epsilon, cost.would_exceed) == (0.0, True)
    with pytest.raises(Conflict) as refused:
        run_job(dora, spec.id, COUNT_ALL)
    assert "privacy budget for researcher dora" in str(refused.value)
    assert "spent ε=3 of 3; this job needs ε=1" in str(refused.value)

    # The refusal charged nothing; the mirror and `custos budget show` say 3 of 3.
    assert mirrored(dora) == pytest.approx(
        {**{(s, "researcher"): 3.0 for s in SITES}, **{(s, "org"): 3.0 for s in SITES}}
    )
    shown = custos_cli(cluster, "budget", "show")
    assert shown.exit_code == 0, shown.output
    rows = [line.split() for line in shown.stdout.splitlines() if "patients_dp" in line]
    assert [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
        (s, kind, who, "3.00", cap, left)
        for s in SITES
        for kind, who, cap, left in (
            ("researcher", "dora", "3.00", "0.00"),
            ("org", "university", "10.00", "7.00"),
        )
    ]
