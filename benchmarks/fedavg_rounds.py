"""Per-round overhead of `fedavg@1.0.0` with 3 gateways, for MLPs of about 1 M and 10 M parameters.

    .venv/bin/python benchmarks/fedavg_rounds.py [--rounds 3] [--rows 20] [--sizes 1000000,10000000] [--keep]

Starts an orchestrator and three gateways as processes on loopback (not timed). For each size it runs
one job (NumPy MLP, 3 features, hidden width chosen for the size, one local batch, no standardisation
round) and measures its wall time from submit to done. Per-round overhead = (wall time - the sum over
training rounds of the slowest site's local training time, as the sites report it) / rounds run
(the training rounds plus the final evaluation round). It includes the evaluation forward passes.

The floor is the same bytes handled in one process: 3 sites' weights to safetensors, sent and received
as frames over a local socket pair (JSON with the weights as blobs beside it, checked against their
SHA-256, as every hop of Custos carries them), parsed, averaged, and the global weights serialised
again for the next round.

Weights travel as content-addressed blobs beside the JSON messages (docs/architecture.md, "Blobs"), up to the
blob caps (512 MB by default); a size that fails reports its failure and null figures. The last line
is one JSON object.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from typing import Any

import numpy as np
from deployment import (
    DATASET,
    DATASET_REFS,
    RESEARCHER,
    SITES,
    describe_load,
    load_average,
    print_json_figures,
    wait_done,
    work_folder,
)

from custos.computations.fedavg.params import parse_params
from custos.computations.fedavg.weights import from_bytes, initial_weights, layout, to_bytes, weighted_average
from custos.core.errors import Conflict, CustosError
from custos.core.frames import recv_frame, send_frame
from custos.data.synthetic import synthetic_patients
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup

COLUMNS = ["age", "bmi", "systolic_bp", "smoker"]
FEATURES = ["age", "bmi", "systolic_bp"]


def policy() -> dict[str, object]:
    grant = {"orgs": [RESEARCHER[1]], "models": ["fedavg@>=1.0,<2"], "columns": COLUMNS}
    return {"dataset": DATASET, "grants": [grant], "min_count": 10, "model_release": True}


def job_params(size: int, rounds: int, rows: int) -> dict[str, Any]:
    hidden = max(1, (size - 1) // (len(FEATURES) + 2))
    return {
        "model": "mlp",
        "features": FEATURES,
        "label": "smoker",
        "positive": "yes",
        "hidden": hidden,
        "rounds": rounds,
        "local_epochs": 1,
        "batch_size": rows,
        "learning_rate": 0.01,
        "holdout": 0.0,
        "standardize": False,
        "seed": 1,
    }


def _hop(message: dict[str, Any]) -> dict[str, Any]:
    """Send one frame through a local socket pair and receive it (a thread writes, this one reads)."""
    a, b = socket.socketpair()
    with a, b:
        writer = threading.Thread(target=send_frame, args=(a, message))
        writer.start()
        received = recv_frame(b)
        writer.join()
    assert received is not None
    return received


def floor_seconds(params: dict[str, Any], repeats: int = 3) -> float:
    """One round's serialise / send / receive / average of the same bytes, in one process (median)."""
    parsed = parse_params(params)
    shapes = layout(parsed)
    weights = initial_weights(parsed)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        # Each site's slightly different update, so that no two blobs are the same bytes.
        sent = [
            _hop({"weights": to_bytes(weights | {"output.bias": np.float32([i])}), "n": 20}) for i in range(3)
        ]
        updates = [(20.0, from_bytes(m["weights"], shapes, "w")) for m in sent]
        average = weighted_average(updates)
        _hop({"weights": to_bytes({k: v.astype(np.float32) for k, v in average.items()})})
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def run_size(client: Any, spec_id: str, params: dict[str, Any]) -> tuple[float | None, str]:
    started = time.perf_counter()
    job = client.submit_job(spec_id, params)
    try:
        wait_done(client, job.id, timeout=600)
    except (Conflict, CustosError) as exc:
        return None, str(exc)
    wall = time.perf_counter() - started
    data = client.job_result(job.id).data
    slowest: dict[int, float] = {}
    for row in data["site_metrics"]:
        slowest[row["round"]] = max(slowest.get(row["round"], 0.0), row["train_seconds"])
    rounds_run = params["rounds"] + 1
    overhead = (wall - sum(slowest.values())) / rounds_run
    training = sum(slowest.values()) / params["rounds"]
    return overhead, f"wall {wall:.2f} s, slowest site training {training:.3f} s a round"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    gateways = [
        GatewaySetup(
            name, org, [DatasetSetup(DATASET, synthetic_patients(args.rows, site=i, seed=7), policy())]
        )
        for i, (name, org) in enumerate(SITES)
    ]
    figures: dict[str, Any] = {}
    with work_folder("custos-bench-fedavg-", keep=args.keep) as work:
        print(f"starting an orchestrator and {len(SITES)} gateways ({args.rows} rows each) ...", flush=True)
        with Cluster(
            work, gateways=gateways, users=[UserSetup(*RESEARCHER)], project="custos-bench"
        ) as cluster:
            client = cluster.client(RESEARCHER[0])
            spec = client.create_spec("fedavg-rounds", "fedavg@1.0.0", DATASET_REFS, COLUMNS)
            client.activate_spec(spec.id)
            print(describe_load(load_average()))
            for size in sizes:
                params = job_params(size, args.rounds, args.rows)
                label = f"{round(size / 1e6)}m"
                floor = floor_seconds(params)
                overhead, note = run_size(client, spec.id, params)
                shown = "failed" if overhead is None else f"{overhead:.3f} s"
                print(f"{size:>11,} parameters: overhead {shown} a round, floor {floor:.3f} s ({note})")
                figures[f"overhead_{label}_s"] = None if overhead is None else round(overhead, 3)
                figures[f"floor_{label}_s"] = round(floor, 3)
                figures[f"ratio_{label}"] = None if overhead is None else round(overhead / floor, 2)
    print_json_figures(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
