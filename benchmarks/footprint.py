"""The idle footprint of a deployment and how fast it comes up: an orchestrator and three gateways
(each with its warm spare) on loopback.

    python benchmarks/footprint.py [--baseline-ref REF] [--idle 10] [--keep]

For this tree and for a baseline (by default the commit this branch forked from `main`: its `src`
exported to a temporary folder and put first on the processes' PYTHONPATH), in the same run:

- start-up: from starting the orchestrator process to every gateway's datasets published (the
  gateways connected). Provisioning and writing the sites are done before and not timed;
- idle memory: after `--idle` seconds with no work, the PSS (proportional set size: shared pages
  split between the processes sharing them, so the sum is what the deployment costs the machine)
  and the RSS of each process and everything it started (sandboxes, spares), read from
  /proc/PID/smaps_rollup.

References (their own documentation and measurements, not measured here): NVIDIA FLARE's POC mode
(server and 2 clients) 276 MiB; Flower's deployment engine (SuperLink, 2 SuperNodes) 780 MiB and
3.9 s to two connected nodes. Targets: at most 600 MiB and 3 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from deployment import (
    DATASET,
    RESEARCHER,
    SITES,
    describe_load,
    load_average,
    print_json_figures,
    work_folder,
)

from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup

MIB = 1 << 20
REFERENCES = {"nvflare_poc_mib": 276, "flower_mib": 780, "flower_connect_s": 3.9}
TARGET_MIB, TARGET_S = 600, 3.0


@dataclass(frozen=True)
class Memory:
    pss: int
    rss: int
    processes: int


@dataclass(frozen=True)
class Reading:
    label: str
    connect_s: float
    memory: dict[str, Memory]

    @property
    def pss_mib(self) -> float:
        return sum(m.pss for m in self.memory.values()) / MIB

    @property
    def rss_mib(self) -> float:
        return sum(m.rss for m in self.memory.values()) / MIB


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _rollup(pid: int) -> tuple[int, int]:
    pss = rss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
            elif line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return pss, rss


def tree_memory(pid: int) -> Memory:
    """The PSS and RSS of `pid` and all its descendants."""
    tree, todo, seen = _children(), [pid], []
    while todo:
        current = todo.pop()
        seen.append(current)
        todo.extend(tree.get(current, []))
    pss = rss = 0
    for member in seen:
        p, r = _rollup(member)
        pss, rss = pss + p, rss + r
    return Memory(pss, rss, len(seen))


def export_source(ref: str, into: Path) -> Path:
    """`ref`'s src/ folder, exported from git into `into`."""
    root = Path(__file__).resolve().parent.parent
    archive = into / "src.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(root), "archive", ref, "src"], stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def measure(label: str, work: Path, idle_s: float, pythonpath: Path | None) -> Reading:
    rng = np.random.default_rng(1)
    policy = {
        "dataset": DATASET,
        "grants": [{"orgs": [RESEARCHER[1]], "models": ["stats@>=1.0,<2"], "columns": ["age"]}],
    }
    gateways = [
        GatewaySetup(
            name, org, [DatasetSetup(DATASET, pa.table({"age": rng.integers(20, 90, 1000)}), policy)]
        )
        for name, org in SITES
    ]
    cluster = Cluster(work, gateways=gateways, users=[UserSetup(*RESEARCHER)], project="custos-footprint")
    saved = os.environ.get("PYTHONPATH")
    if pythonpath is not None:
        os.environ["PYTHONPATH"] = str(pythonpath)
    try:
        cluster.provision()
        for gateway in gateways:
            cluster.write_site(gateway)
        started = time.perf_counter()
        cluster.start_processes()
        connect_s = time.perf_counter() - started
        time.sleep(idle_s)
        memory = {name: tree_memory(pid) for name, pid in cluster.pids().items()}
    finally:
        cluster.stop()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    return Reading(label, connect_s, memory)


def best(readings: list[Reading]) -> Reading:
    by_pss = sorted(readings, key=lambda r: r.pss_mib)
    median = by_pss[(len(by_pss) - 1) // 2]
    return Reading(median.label, min(r.connect_s for r in readings), median.memory)


def describe(reading: Reading) -> None:
    print(f"{reading.label}:")
    print(f"  start to all gateways connected: {reading.connect_s:.2f} s")
    for name, m in reading.memory.items():
        print(
            f"  {name:13s} PSS {m.pss / MIB:6.1f} MiB  RSS {m.rss / MIB:6.1f} MiB  ({m.processes} processes)"
        )
    print(f"  total         PSS {reading.pss_mib:6.1f} MiB  RSS {reading.rss_mib:6.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-ref", default=None, help="git ref of the baseline (default: fork point)")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds idle before memory is read")
    parser.add_argument("--rounds", type=int, default=2, help="deployments of each, alternating")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    ref = (
        args.baseline_ref
        or subprocess.run(
            ["git", "-C", str(root), "merge-base", "HEAD", "main"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    print(describe_load(load_average()))
    with work_folder("custos-bench-footprint-", keep=args.keep) as work, tempfile.TemporaryDirectory() as tmp:
        baseline_src = export_source(ref, Path(tmp))
        readings: dict[str, list[Reading]] = {"baseline": [], "current": []}
        for n in range(args.rounds):
            # Alternating, so that neither always runs first on cold caches.
            order = [("baseline", baseline_src), ("current", None)]
            for kind, src in order if n % 2 == 0 else order[::-1]:
                label = f"baseline ({ref[:10]})" if kind == "baseline" else "this tree"
                readings[kind].append(measure(label, work / f"{kind}-{n}", args.idle, src))
                describe(readings[kind][-1])
    # The fastest start (the least disturbed by whatever else the machine runs); the median memory.
    baseline, current = (best(readings[kind]) for kind in ("baseline", "current"))
    print(f"best of {args.rounds} (start-up: the fastest; memory: the median total):")
    for reading in (baseline, current):
        print(
            f"  {reading.label}: {reading.connect_s:.2f} s, "
            f"PSS {reading.pss_mib:.1f} MiB, RSS {reading.rss_mib:.1f} MiB"
        )
    print(
        f"ratio to the baseline: PSS x{current.pss_mib / baseline.pss_mib:.2f}, "
        f"start-up x{current.connect_s / baseline.connect_s:.2f}"
    )
    print(
        f"references: NVFLARE POC {REFERENCES['nvflare_poc_mib']} MiB; "
        f"Flower {REFERENCES['flower_mib']} MiB, "
        f"{REFERENCES['flower_connect_s']} s to two nodes; targets <= {TARGET_MIB} MiB, <= {TARGET_S:g} s"
    )
    print_json_figures(
        {
            "baseline_ref": ref,
            "baseline_pss_mib": round(baseline.pss_mib, 1),
            "baseline_rss_mib": round(baseline.rss_mib, 1),
            "baseline_connect_s": round(baseline.connect_s, 2),
            "pss_mib": round(current.pss_mib, 1),
            "rss_mib": round(current.rss_mib, 1),
            "connect_s": round(current.connect_s, 2),
            "pss_ratio": round(current.pss_mib / baseline.pss_mib, 3),
            "connect_ratio": round(current.connect_s / baseline.connect_s, 3),
            "per_process_pss_mib": {k: round(v.pss / MIB, 1) for k, v in current.memory.items()},
            **REFERENCES,
        }
    )


if __name__ == "__main__":
    main()
