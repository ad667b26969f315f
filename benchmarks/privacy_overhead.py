"""What differential privacy costs a stats job: the same job on the same rows, with and without DP.

    .venv/bin/python benchmarks/privacy_overhead.py [--rows-per-site 1000000] [--repeat 5] [--keep]

Starts an orchestrator and three gateways on loopback; each site holds the same synthetic patients
twice, as `patients` (SDC only, min_count 10) and `patients_dp` (Laplace DP, ε = 1 per job split over
its queries, a budget far above what the runs spend). After one warm-up of each, it runs `--repeat`
times in turn, submit → result, a `stats@1.0.0` job asking for the count, mean and variance of `bmi`
and a 20-bin histogram, on each. The DP job runs in one round with four noisy releases per site (count,
mean, variance, histogram: exact clamped aggregates from one NumPy pass, each released by an OpenDP
measurement), the plain one in one round of exact sufficient statistics plus the disclosure filter.
It then prints, from the gateways' logs, where each kind of job spends its time (`timeline`). The
last line is `{"dp_s": median, "plain_s": median, "ratio": dp_s / plain_s, ...}` with the 1-minute
load average at the end and the phases' medians.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
from deployment import (
    RESEARCHER,
    SITES,
    describe_load,
    load_average,
    median,
    print_json_figures,
    stats_policy,
    wait_done,
    work_folder,
)
from timeline import PHASES, cluster_tasks, describe_phases, job_phases

from custos.core.wire import JobPublic
from custos.data.synthetic import synthetic_patients
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.sdk import Client

TARGET_RATIO = 1.2
COLUMN = "bmi"
PLAIN, DP = "patients", "patients_dp"
JOB_TIMEOUT_S = 600


def dp_policy() -> dict[str, Any]:
    policy = stats_policy([COLUMN])
    return {
        **policy,
        "dataset": DP,
        "privacy": {
            "dp": {"mechanism": "laplace", "epsilon_per_job": 1.0},
            "budget": {"epsilon_per_researcher": 1000.0, "epsilon_per_org": 1000.0},
        },
    }


def params(client: Client) -> dict[str, Any]:
    column = client.dataset(f"{SITES[0][0]}/{PLAIN}").schema.column(COLUMN)
    assert column.min is not None and column.max is not None
    edges = [float(e) for e in np.linspace(column.min, column.max, 21)]
    return {
        "columns": [COLUMN],
        "statistics": ["count", "mean", "variance"],
        "histograms": [{"column": COLUMN, "edges": edges}],
    }


def timed(
    client: Client, spec_id: str, job_params: dict[str, Any]
) -> tuple[float, dict[str, Any], JobPublic]:
    start = time.perf_counter()
    job = client.submit_job(spec_id, job_params)
    done = wait_done(client, job.id, timeout=JOB_TIMEOUT_S)
    if done.state != "succeeded":
        raise SystemExit(f"job {job.id} {done.state}: {done.reason}")
    result = dict(client.job_result(job.id).data)
    return time.perf_counter() - start, result, done


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows-per-site", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, kits, data)")
    args = parser.parse_args(argv)
    plain_policy = stats_policy([COLUMN])
    gateways = []
    for i, (name, org) in enumerate(SITES):
        table = synthetic_patients(args.rows_per_site, site=i, seed=11)
        gateways.append(
            GatewaySetup(
                name, org, [DatasetSetup(PLAIN, table, plain_policy), DatasetSetup(DP, table, dp_policy())]
            )
        )
    with work_folder("custos-bench-privacy-", keep=args.keep) as work:
        print(f"starting 3 sites x {args.rows_per_site:,} rows (x2 datasets) ...")
        # debug: the gateways log each request, which the per-phase times are read from (timeline).
        cluster = Cluster(
            work, gateways=gateways, users=[UserSetup(*RESEARCHER)], project="custos-bench", log_level="debug"
        )
        with cluster:
            client = cluster.client(RESEARCHER[0])
            job_params = params(client)
            specs = {}
            for dataset in (PLAIN, DP):
                spec = client.create_spec(
                    f"overhead-{dataset}", "stats@1.0.0", [f"{s}/{dataset}" for s, _ in SITES], [COLUMN]
                )
                client.activate_spec(spec.id)
                specs[dataset] = spec.id
            load_before = load_average()
            for dataset in (PLAIN, DP):
                warm, _, _ = timed(client, specs[dataset], job_params)
                print(f"warm-up {dataset} (not counted): {warm:.3f} s")
            seconds: dict[str, list[float]] = {PLAIN: [], DP: []}
            jobs: dict[str, list[JobPublic]] = {PLAIN: [], DP: []}
            results: dict[str, dict[str, Any]] = {}
            for _ in range(args.repeat):
                for dataset in (PLAIN, DP):
                    took, results[dataset], job = timed(client, specs[dataset], job_params)
                    seconds[dataset].append(took)
                    jobs[dataset].append(job)
            load_after = load_average()
        tasks = cluster_tasks(work, [name for name, _ in SITES])
    phases = {
        dataset: [p for p in (job_phases(job, tasks) for job in jobs[dataset]) if p is not None]
        for dataset in (PLAIN, DP)
    }
    plain_s, dp_s = median(seconds[PLAIN]), median(seconds[DP])
    exact, noisy = results[PLAIN]["summaries"][0], results[DP]["summaries"][0]
    print(f"plain: {', '.join(f'{s:.3f}' for s in seconds[PLAIN])} s; median {plain_s:.3f} s")
    print(f"dp:    {', '.join(f'{s:.3f}' for s in seconds[DP])} s; median {dp_s:.3f} s")
    print(
        f"count {exact['count']} vs noisy {noisy['count']}; mean {exact['mean']:.4f} vs {noisy['mean']:.4f}"
    )
    print(f"dp spent per site: {results[DP]['dp']['spent']}")
    for dataset in (PLAIN, DP):
        print(f"where the time of the {dataset} jobs goes (gateways' logs, slowest site per job):")
        print("\n".join(describe_phases(phases[dataset])))
    print(f"load before {describe_load(load_before)}, after {describe_load(load_after)}")
    ratio = dp_s / plain_s
    print(f"ratio {ratio:.3f} (target at most {TARGET_RATIO})")
    print_json_figures(
        {
            "dp_s": round(dp_s, 3),
            "plain_s": round(plain_s, 3),
            "ratio": round(ratio, 3),
            "rows_per_site": args.rows_per_site,
            "load_1m": round(load_after[0], 2),
            **{
                f"{label}_{phase}_p50_s": round(median([j[phase] for j in phases[dataset]]), 3)
                for label, dataset in (("plain", PLAIN), ("dp", DP))
                if phases[dataset]
                for phase in PHASES
            },
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
