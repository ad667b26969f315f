"""Federated stats over three large sites against DuckDB on the same rows pooled, in the same run.

    .venv/bin/python benchmarks/stats_throughput.py [--rows-per-site 10000000] [--repeat 3] [--keep]

Writes three sites of synthetic patients (`--rows-per-site` each, one site at a time so that only one
table is in memory), starts an orchestrator and three gateways on loopback (they profile their data
at start; none of this is timed), then measures, after one warm-up of each, `--repeat` times in turn:

- federated: submit → result of one `stats@1.0.0` job: count, mean and variance of `bmi` and a 20-bin
  histogram whose 21 edges span the public schema bounds of `bmi` (polling the job every 20 ms);
- pooled: one DuckDB query in this process over the three Parquet files (`read_parquet([...])`):
  count, avg, var_samp and the 20 bin counts (bins `[a, b)`, the last `[a, b]`, as numpy.histogram).

Reports the medians, their ratio, whether the federated answer equals the pooled one (the count and
every bin it reports exactly, mean and variance to 1e-9 relative; bins it suppressed for disclosure
control are listed with each site's count, and the pooled bins are checked against numpy.histogram),
where the federated time goes, and the load average. The last line is the figures as JSON.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq
from deployment import (
    DATASET,
    DATASET_REFS,
    POLL_INTERVAL_S,
    RESEARCHER,
    SITES,
    describe_load,
    load_average,
    median,
    print_json_figures,
    server_seconds,
    stats_policy,
    wait_done,
    work_folder,
)
from timeline import PHASES, cluster_tasks, describe_phases, job_phases

from custos.core.wire import JobPublic
from custos.data.synthetic import synthetic_patients, write_dataset
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.sdk import Client

TARGET_RATIO = 2.0
COLUMN = "bmi"
BINS = 20
REL_TOL = 1e-9
SEED = 7
# Gateways profile ten million rows each at start, on two shared cores: allow them a while.
STARTUP_TIMEOUT_S = 1800
JOB_TIMEOUT_S = 600


class GeneratedCluster(Cluster):
    """A Cluster whose sites get `rows_per_site` synthetic patients, generated one site at a time
    straight into the Parquet file the gateway serves, so three large tables are never in memory."""

    def __init__(self, work_dir: Path, *, rows_per_site: int, **kwargs: Any) -> None:
        super().__init__(work_dir, **kwargs)
        self.rows_per_site = rows_per_site

    def write_site(self, gateway: GatewaySetup) -> Path:
        catalog = super().write_site(gateway)  # the policy, DATASETS.yaml and a placeholder table
        site = [g.name for g in self.gateways].index(gateway.name)
        start = time.perf_counter()
        table = synthetic_patients(self.rows_per_site, site=site, seed=SEED)
        write_dataset(table, self.parquet_path(gateway.name))
        del table
        print(f"  {gateway.name}: {self.rows_per_site:,} rows written in {time.perf_counter() - start:.1f} s")
        return catalog

    def parquet_path(self, gateway: str) -> Path:
        return self.site_dir(gateway) / f"{DATASET}.parquet"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows-per-site", type=int, default=10_000_000, help="synthetic patients per site (default 10000000)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs of each, after a warm-up (default 3)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, kits, data)")
    args = parser.parse_args(argv)
    if not 100 <= args.rows_per_site <= 100_000_000:
        parser.error(f"--rows-per-site must be 100 to 100000000, not {args.rows_per_site}")
    if not 1 <= args.repeat <= 100:
        parser.error(f"--repeat must be 1 to 100, not {args.repeat}")
    return args


def histogram_edges(client: Client) -> list[float]:
    """21 edges from the lowest to the highest public bound of the column over the three sites."""
    columns = [client.dataset(ref).schema.column(COLUMN) for ref in DATASET_REFS]
    lows = [c.min for c in columns if c.min is not None]
    highs = [c.max for c in columns if c.max is not None]
    if not lows or not highs:
        raise SystemExit(f"the schema publishes no bounds for {COLUMN}; cannot place histogram edges")
    return [float(e) for e in np.linspace(min(lows), max(highs), BINS + 1)]


def stats_params(edges: list[float]) -> dict[str, Any]:
    return {
        "columns": [COLUMN],
        "statistics": ["count", "mean", "variance"],
        "histograms": [{"column": COLUMN, "edges": edges}],
    }


def run_federated(
    client: Client, spec_id: str, params: dict[str, Any]
) -> tuple[float, JobPublic, dict[str, Any]]:
    """Seconds from submit to result, the finished job and its result."""
    start = time.perf_counter()
    submitted = client.submit_job(spec_id, params)
    done = wait_done(client, submitted.id, timeout=JOB_TIMEOUT_S)
    result = client.job_result(submitted.id)
    return time.perf_counter() - start, done, dict(result.data)


def pooled_query() -> str:
    """One scan computing the total count, mean and variance and the count of each bin.

    $1 is the list of Parquet files, $2 the edges (a list of doubles). A value's bin is first guessed
    arithmetically, then corrected by comparing it with the edges themselves, so that it lands where
    numpy.histogram puts it: bins are [a, b) and the last [a, b]; values outside are in no bin.
    """
    last = BINS + 1
    return f"""
        WITH guessed AS (
            SELECT {COLUMN} AS x,
                CASE WHEN {COLUMN} >= $2[1] AND {COLUMN} <= $2[{last}] THEN least(
                    CAST(floor(({COLUMN} - $2[1]) / ($2[{last}] - $2[1]) * {BINS}) AS INTEGER) + 1, {BINS}
                ) END AS guess
            FROM read_parquet($1)
        ), binned AS (
            SELECT x,
                CASE WHEN x < $2[guess] THEN guess - 1
                     WHEN guess < {BINS} AND x >= $2[guess + 1] THEN guess + 1
                     ELSE guess END AS bin
            FROM guessed
        )
        SELECT GROUPING(bin) AS total, bin, count(x), avg(x), var_samp(x)
        FROM binned GROUP BY GROUPING SETS ((), (bin))
    """  # noqa: S608 - only constants are formatted in; the files and edges are bound parameters


def run_pooled(
    con: duckdb.DuckDBPyConnection, files: list[str], edges: list[float]
) -> tuple[float, dict[str, Any]]:
    """Seconds for the one DuckDB query over the three Parquet files, and its answer."""
    start = time.perf_counter()
    rows = con.execute(pooled_query(), [files, edges]).fetchall()
    elapsed = time.perf_counter() - start
    answer: dict[str, Any] = {"counts": [0] * BINS}
    for total, bin_number, count, mean, variance in rows:
        if total:
            answer |= {"count": count, "mean": mean, "variance": variance}
        elif bin_number is not None:
            answer["counts"][bin_number - 1] = count
    return elapsed, answer


def numpy_histograms(files: list[str], edges: list[float]) -> list[list[int]]:
    """numpy.histogram of the column in each file: to check the pooled query's bins (not timed)."""
    counts = []
    for path in files:
        values = pq.read_table(path, columns=[COLUMN]).column(COLUMN).to_numpy(zero_copy_only=False)
        values = values[~np.isnan(values)]
        counts.append([int(c) for c in np.histogram(values, bins=np.array(edges))[0]])
        del values
    return counts


def compare(federated: dict[str, Any], pooled: dict[str, Any]) -> tuple[list[str], list[int]]:
    """Every difference between what the federation reported and the pooled answer (empty when they
    agree), and the bins it suppressed (disclosure control: a site had 1 to min_count - 1 rows there,
    or a bin was suppressed with it so that it cannot be recovered by subtraction)."""
    (summary,) = [s for s in federated["summaries"] if s["column"] == COLUMN and s["group"] is None]
    (histogram,) = [h for h in federated["histograms"] if h["column"] == COLUMN and h["group"] is None]
    if summary.get("suppressed"):
        return [f"the summary of {COLUMN} was suppressed: {summary.get('reason')}"], []
    problems = []
    if summary["count"] != pooled["count"]:
        problems.append(f"count {summary['count']} ≠ {pooled['count']}")
    for stat in ("mean", "variance"):
        if not math.isclose(summary[stat], pooled[stat], rel_tol=REL_TOL):
            problems.append(f"{stat} {summary[stat]!r} ≠ {pooled[stat]!r} (relative tolerance {REL_TOL:g})")
    suppressed = []
    for i, (got, want) in enumerate(zip(histogram["counts"], pooled["counts"], strict=True)):
        if got is None:
            suppressed.append(i)
        elif got != want:
            problems.append(f"bin {i}: {got} ≠ {want}")
    return problems, suppressed


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    gateways = [
        GatewaySetup(
            name, org, [DatasetSetup(DATASET, synthetic_patients(0, site=i), stats_policy([COLUMN]))]
        )
        for i, (name, org) in enumerate(SITES)
    ]
    with work_folder("custos-bench-stats-", keep=args.keep) as work:
        print(f"writing {len(SITES)} sites x {args.rows_per_site:,} rows and starting the deployment ...")
        setup_start = time.perf_counter()
        cluster = GeneratedCluster(
            work,
            rows_per_site=args.rows_per_site,
            gateways=gateways,
            users=[UserSetup(*RESEARCHER)],
            project="custos-bench",
            startup_timeout=STARTUP_TIMEOUT_S,
            log_level="debug",  # the gateways log each request, which timeline reads the phases from
        )
        with cluster:
            print(f"deployment up after {time.perf_counter() - setup_start:.1f} s (not timed)")
            measured = measure(cluster, args.repeat)
        figures = report(measured, args.rows_per_site * len(SITES))
        tasks = cluster_tasks(work, [name for name, _ in SITES])
        phases = [p for p in (job_phases(job, tasks) for job in measured.jobs) if p is not None]
    print(f"  where the federated time goes (gateways' logs, {len(phases)} jobs, slowest site per job):")
    print("\n".join(describe_phases(phases)))
    if phases:
        figures |= {f"{p}_p50_s": round(median([j[p] for j in phases]), 3) for p in PHASES}
    print_json_figures(figures)
    return 0 if figures["equal"] else 1


@dataclass
class Measurement:
    edges: list[float]
    files: list[str]
    result: dict[str, Any] = field(default_factory=dict)
    pooled: dict[str, Any] = field(default_factory=dict)
    federated_s: list[float] = field(default_factory=list)
    pooled_s: list[float] = field(default_factory=list)
    jobs: list[JobPublic] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


def measure(cluster: GeneratedCluster, repeat: int) -> Measurement:
    """One warm-up of each, then `repeat` runs of each in turn, so that both see the same load from
    whatever else runs on the machine."""
    client = cluster.client(RESEARCHER[0])
    edges = histogram_edges(client)
    params = stats_params(edges)
    spec = client.create_spec("throughput", "stats@1.0.0", DATASET_REFS, [COLUMN])
    client.activate_spec(spec.id)
    measured = Measurement(edges, [str(cluster.parquet_path(name)) for name, _ in SITES])
    con = duckdb.connect()
    try:
        measured.load_before = load_average()
        warm_federated, _, _ = run_federated(client, spec.id, params)
        warm_pooled, _ = run_pooled(con, measured.files, edges)
        print(f"warm-up (not counted): federated {warm_federated:.3f} s, pooled {warm_pooled:.3f} s")
        for n in range(repeat):
            seconds, job, measured.result = run_federated(client, spec.id, params)
            measured.federated_s.append(seconds)
            measured.jobs.append(job)
            seconds, measured.pooled = run_pooled(con, measured.files, edges)
            measured.pooled_s.append(seconds)
            print(
                f"run {n + 1}/{repeat}: federated {measured.federated_s[-1]:.3f} s "
                f"(orchestrator {server_seconds(job) or 0:.3f} s), pooled {seconds:.3f} s"
            )
        measured.load_after = load_average()
    finally:
        con.close()
    return measured


def report(measured: Measurement, total_rows: int) -> dict[str, Any]:
    """Print the comparison and check the answers (numpy.histogram per site, not timed)."""
    edges, pooled = measured.edges, measured.pooled
    problems, suppressed = compare(measured.result, pooled)
    per_site = numpy_histograms(measured.files, edges)
    by_numpy = [sum(site[i] for site in per_site) for i in range(BINS)]
    if by_numpy != pooled["counts"]:
        problems.append(f"the pooled query's bins {pooled['counts']} are not numpy.histogram's {by_numpy}")
    fed, pool = median(measured.federated_s), median(measured.pooled_s)
    ratio = fed / pool
    print()
    print(f"count, mean, variance and a {BINS}-bin histogram of {COLUMN}, {total_rows:,} rows in 3 sites")
    print(f"  edges {edges[0]:g} .. {edges[-1]:g} (the public schema bounds), step {edges[1] - edges[0]:g}")
    print(f"  federated (submit → result, polling every {POLL_INTERVAL_S * 1000:g} ms): median {fed:.3f} s")
    print(f"  pooled DuckDB, one query over the 3 Parquet files in this process:      median {pool:.3f} s")
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(f"  ratio federated / pooled: {ratio:.2f} (target ≤ {TARGET_RATIO:g}: {verdict})")
    print(f"  pooled: count {pooled['count']:,}, mean {pooled['mean']!r}, variance {pooled['variance']!r}")
    print(f"  pooled bins (equal to numpy.histogram's: {by_numpy == pooled['counts']}): {pooled['counts']}")
    if problems:
        print("  federated ≠ pooled: " + "; ".join(problems))
    else:
        reported = f"{BINS - len(suppressed)} reported bins"
        print(f"  federated = pooled: count and {reported} exactly, mean and variance within {REL_TOL:g}")
    for i in suppressed:
        where = f"[{edges[i]:g}, {edges[i + 1]:g}{']' if i == BINS - 1 else ')'}"
        counts = [site[i] for site in per_site]
        print(
            f"  bin {i} {where} suppressed (disclosure control): pooled {pooled['counts'][i]}, sites {counts}"
        )
    print(f"  before: {describe_load(measured.load_before)}")
    print(f"  after:  {describe_load(measured.load_after)}")
    return {
        "rows": total_rows,
        "federated_s": round(fed, 3),
        "pooled_s": round(pool, 3),
        "ratio": round(ratio, 2),
        "target_ratio": TARGET_RATIO,
        "equal": not problems,
        "suppressed_bins": len(suppressed),
        "repeat": len(measured.federated_s),
        "load_avg_1m": measured.load_after[0],
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
