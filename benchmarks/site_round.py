"""Where one site's share of a job goes: a gateway round taken apart, in this process, no orchestrator.

    .venv/bin/python benchmarks/site_round.py [--job count|throughput] [--rows 10000] [--repeat 5] [--keep]

Writes one site of synthetic patients and loads it as a gateway does (profiling it; not timed), then
times, each `--repeat` times after a warm-up, with the gateway's own sandbox (bubblewrap):

- sandbox:     an empty run, `python -c pass`, in the sandbox;
- imports:     a sandboxed run that only imports what the stats runtime imports;
- in-process:  the round's DAL read and compute in this process, over a real DAL socket, no sandbox;
- first round: the gateway's handling of a new job's first compute task: it starts the job's
               sandboxed runtime (sandbox, interpreter, imports), then the DAL read, compute, filter;
- first round, pool full: the same, when the gateway already keeps as many idle runtimes as it may
               (those of earlier jobs), so that it first closes the oldest;
- next round:  another round of the same job, in the runtime already running;
- 3 at once:   three first rounds started together from three threads, as three gateways on this
               machine do for a new job (wall time until the last ends).

Otherwise runtimes are closed after each first round, outside the timing. `--job count` is job_latency's job
(count of age); `--job throughput` is stats_throughput's (count, mean, variance and a 20-bin histogram
of bmi). The last line is the medians as JSON.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from deployment import (
    DATASET,
    RESEARCHER,
    describe_load,
    load_average,
    median,
    print_json_figures,
    work_folder,
)

from custos.audit import AuditTrail
from custos.computations.dal_client import FlightDalReader
from custos.computations.registry import get_model
from custos.core.clock import utcnow
from custos.core.wire import Resources, Submitter, TaskAssignment, TaskKind
from custos.data.synthetic import synthetic_patients, write_dataset
from custos.gateway.dal import DalServer, DatasetGrant
from custos.gateway.handlers import TaskHandler
from custos.gateway.policies import PolicyKeeper
from custos.gateway.runtimes import RuntimePool
from custos.gateway.settings import GatewaySettings
from custos.gateway.site import SiteDataset, load_site
from custos.gateway.trust import GatewayTrust
from custos.local.cluster import policy_yaml
from custos.pki.kit import Kit, load_kit
from custos.pki.project import ProjectSpec
from custos.pki.provision import provision
from custos.policy import default_authorization
from custos.policy.signing import sign_policy
from custos.sandbox.bubblewrap import BubblewrapRunner
from custos.sandbox.runner import SandboxRequest

GATEWAY = "site-a"
GATEWAY_ORG = "hospital-a"
MODEL = "stats@1.0.0"
RUNTIME_IMPORTS = (
    "import custos.computations.runtime, custos.computations.registry, custos.computations.dal_client"
)
CONCURRENT = 3
# How many runtimes a gateway keeps (custos.gateway.runtimes.RuntimePool's default max_runtimes).
POOL_SIZE = RuntimePool.__init__.__kwdefaults__["max_runtimes"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job", choices=["count", "throughput"], default="count", help="which job's round")
    parser.add_argument(
        "--rows", type=int, default=10_000, help="synthetic patients at the site (default 10000)"
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="timed runs of each, after a warm-up (default 5)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if not 100 <= args.rows <= 100_000_000:
        parser.error(f"--rows must be 100 to 100000000, not {args.rows}")
    if not 1 <= args.repeat <= 100:
        parser.error(f"--repeat must be 1 to 100, not {args.repeat}")
    return args


def job_params(job: str, dataset: SiteDataset) -> dict[str, Any]:
    if job == "count":
        return {"columns": ["age"], "statistics": ["count"]}
    bmi = dataset.schema.column("bmi")
    assert bmi.min is not None and bmi.max is not None
    edges = [float(e) for e in np.linspace(bmi.min, bmi.max, 21)]
    return {
        "columns": ["bmi"],
        "statistics": ["count", "mean", "variance"],
        "histograms": [{"column": "bmi", "edges": edges}],
    }


def provision_site(folder: Path) -> dict[str, Kit]:
    """The gateway's kit and its org admin's, who signs the site's policy."""
    participants = [
        {"name": GATEWAY, "type": "gateway", "org": GATEWAY_ORG},
        {"name": "admin", "type": "user", "org": GATEWAY_ORG, "role": "org_admin"},
    ]
    kits = provision(ProjectSpec.model_validate({"name": "bench", "participants": participants}), folder)
    return {k.name: load_kit(k) for k in kits}


def write_site(folder: Path, rows: int, columns: list[str], admin: Kit) -> Path:
    """One site's Parquet file, signed policy and DATASETS.yaml; returns the catalogue's path."""
    write_dataset(synthetic_patients(rows, site=0, seed=7), folder / f"{DATASET}.parquet")
    policy = {
        "dataset": DATASET,
        "grants": [{"orgs": [RESEARCHER[1]], "models": ["stats@>=1.0,<2"], "columns": columns}],
        "min_count": 10,
    }
    signed = sign_policy(
        policy_yaml(policy),
        f"{GATEWAY}/{DATASET}",
        key=admin.private_key,
        certificate=admin.certificate,
        now=utcnow(),
    )
    (folder / f"{DATASET}.policy.json").write_text(signed.model_dump_json(), encoding="utf-8")
    catalog = folder / "DATASETS.yaml"
    entry = {"name": DATASET, "path": f"{DATASET}.parquet", "policy": f"{DATASET}.policy.json"}
    catalog.write_text(yaml.safe_dump({"datasets": [entry]}), encoding="utf-8")
    return catalog


def task(params: dict[str, Any], columns: list[str], job: int, number: int) -> TaskAssignment:
    return TaskAssignment(
        task_id=f"task_bench{number:06d}",
        attempt=1,
        kind=TaskKind.COMPUTE,
        spec_id="spec_bench",
        job_id=f"job_bench{job:06d}",
        round=0,
        model=MODEL,
        dataset=DATASET,
        columns=columns,
        params=params,
        round_input=dict(get_model("stats", "1.0.0").start(params).round_input),
        submitter=Submitter(name=RESEARCHER[0], org=RESEARCHER[1], role="lead_researcher"),
        resources=Resources(),
    )


def timed(action: Callable[[], object], repeat: int, *, after: Callable[[], object] = lambda: None) -> float:
    """The median wall time of `action` over `repeat` runs, after one warm-up run; `after` runs after
    each, untimed."""
    action()
    after()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
        after()
    return median(times)


def fill_then(fill: Callable[[], object], action: Callable[[], object], repeat: int) -> float:
    """The median wall time of `action` over `repeat` runs, after `fill` (untimed)."""
    fill()
    return timed(action, repeat)


class RoundBench:
    """The pieces of one round, each a callable that raises if it did not succeed."""

    def __init__(self, work: Path, dataset: SiteDataset, handlers: list[TaskHandler], params: dict[str, Any]):
        self.work = work
        self.dataset = dataset
        self.handlers = handlers
        self.params = params
        self.columns = get_model("stats", "1.0.0").columns_used(params)
        self.runner = BubblewrapRunner()
        self._tasks = 0
        self._jobs = 0

    def sandboxed(self, code: str) -> Callable[[], None]:
        def run() -> None:
            out = self.work / "sandbox-output"
            out.mkdir(exist_ok=True)
            ran = self.runner.run(SandboxRequest(argv=["-c", code], output_dir=out))
            if not ran.ok:
                raise SystemExit(f"the sandbox failed: {ran.failure}: {ran.stderr[-500:]}")

        return run

    def in_process(self) -> None:
        model = get_model("stats", "1.0.0")
        folder = self.work / "dal"
        folder.mkdir(exist_ok=True)
        token = secrets.token_urlsafe(32)
        grant = {DATASET: DatasetGrant(self.dataset.source, frozenset(self.columns))}
        with (
            DalServer.start(folder / "dal.sock", token, grant),
            FlightDalReader(str(folder / "dal.sock"), token) as r,
        ):
            round_input = model.start(self.params).round_input
            model.compute_site(r, DATASET, self.params, round_input)

    def new_job(self) -> None:
        self._jobs += 1

    def round(self, handler: int = 0) -> None:
        """One round of the current job at gateway `handler`."""
        self._tasks += 1
        outcome = self.handlers[handler].handle_task(task(self.params, self.columns, self._jobs, self._tasks))
        if outcome.status != "done":
            raise SystemExit(f"the round failed: {outcome.error}")

    def first_round(self) -> None:
        self.new_job()
        self.round()

    def fill_pool(self) -> None:
        for _ in range(POOL_SIZE):
            self.first_round()

    def first_rounds_at_once(self) -> None:
        self.new_job()
        failures: list[BaseException] = []

        def one(handler: int) -> None:
            try:
                self.round(handler)
            except BaseException as exc:  # reported below, in the main thread
                failures.append(exc)

        threads = [threading.Thread(target=one, args=(n,)) for n in range(len(self.handlers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        if failures or any(t.is_alive() for t in threads):
            raise SystemExit(f"a concurrent round failed or did not end: {failures[:1]}")

    def close_runtimes(self) -> None:
        for handler in self.handlers:
            handler.close()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with work_folder("custos-bench-round-", keep=args.keep) as work:
        columns = ["age"] if args.job == "count" else ["bmi"]
        print(f"writing and profiling one site of {args.rows:,} rows (not timed) ...", flush=True)
        kits = provision_site(work / "kits")
        site = load_site(write_site(work, args.rows, columns, kits["admin"]))
        dataset = site[DATASET]
        trust = GatewayTrust(kits[GATEWAY].root_certificate, work, utcnow)
        handlers = []
        for n in range(CONCURRENT):
            state = work / f"state-{n}"
            state.mkdir(mode=0o700)
            settings = GatewaySettings(state_dir=state, warm_spares=0)  # every first round starts cold
            audit = AuditTrail(state / "audit.log")
            authorization = default_authorization()
            policies = PolicyKeeper(GATEWAY, GATEWAY_ORG, state, trust.check_certificate)
            policies.load({DATASET: dataset.policy_file})
            handler = TaskHandler(
                GATEWAY,
                site,
                BubblewrapRunner(),
                settings,
                audit,
                org=GATEWAY_ORG,
                authorization=authorization,
                policies=policies,
            )
            handlers.append(handler)
        bench = RoundBench(work, dataset, handlers, job_params(args.job, dataset))
        load_before = load_average()
        try:
            figures = {
                "sandbox_s": timed(bench.sandboxed("pass"), args.repeat),
                "imports_s": timed(bench.sandboxed(RUNTIME_IMPORTS), args.repeat),
                "in_process_s": timed(bench.in_process, args.repeat),
                "first_round_s": timed(bench.first_round, args.repeat, after=bench.close_runtimes),
                "first_round_full_pool_s": fill_then(bench.fill_pool, bench.first_round, args.repeat),
                "next_round_s": timed(bench.round, args.repeat),
                "first_rounds_at_once_s": timed(
                    bench.first_rounds_at_once, args.repeat, after=bench.close_runtimes
                ),
            }
        finally:
            bench.close_runtimes()
        load_after = load_average()
    print()
    print(f"one gateway round of the {args.job} job over {args.rows:,} rows; medians of {args.repeat} runs")
    labels = {
        "sandbox_s": "empty sandbox run (python -c pass)",
        "imports_s": "sandbox + the runtime's imports",
        "in_process_s": "DAL read + compute in this process (no sandbox)",
        "first_round_s": "a new job's first round at the gateway (runtime start, DAL, compute)",
        "first_round_full_pool_s": f"the same, with {POOL_SIZE} idle runtimes kept (it closes the oldest)",
        "next_round_s": "a further round of the same job (runtime already running)",
        "first_rounds_at_once_s": f"{CONCURRENT} first rounds at once ({CONCURRENT} gateways on one machine)",
    }
    for key, label in labels.items():
        print(f"  {label:<68} {figures[key]:7.3f} s")
    print(f"  before: {describe_load(load_before)}")
    print(f"  after:  {describe_load(load_after)}")
    print_json_figures(
        {
            "job": args.job,
            "rows": args.rows,
            **{key: round(value, 3) for key, value in figures.items()},
            "load_avg_1m": load_after[0],
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
