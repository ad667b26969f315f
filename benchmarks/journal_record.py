"""What the gateway's journal costs per result that carries weights: `Journal.record`, which syncs the
blobs to disk before the line that names them, next to the same writes without syncing the blobs (how
the journal wrote them before), measured in the same run.

    .venv/bin/python benchmarks/journal_record.py [--sizes 1000000,10000000] [--repeat 5] [--keep]

For each size (float32 parameters, as FedAvg weights), records `--repeat` results of that many random
parameters as one blob each, in a fresh journal in a temporary folder, and prints the median seconds
of each way and their ratio. The last line is the medians as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from deployment import describe_load, load_average, median, print_json_figures, work_folder

from custos.core.blobs import externalize
from custos.core.wire import TaskResultUpload, result_digest
from custos.gateway.journal import Journal, Pending


def pending_of(parameters: int, seed: int) -> Pending:
    weights = np.random.default_rng(seed).standard_normal(parameters, dtype=np.float32).tobytes()
    result, blobs = externalize({"weights": weights})
    upload = TaskResultUpload(
        attempt=1, status="done", result=result, digest=result_digest("done", result, None)
    )
    return Pending(upload, blobs)


def record_unsynced(folder: Path, task_id: str, pending: Pending) -> None:
    """The baseline: blobs written and renamed into place, not synced; the line synced."""
    blob_dir = folder / "journal-blobs"
    blob_dir.mkdir(exist_ok=True)
    for digest, data in pending.blobs.items():
        partial = blob_dir / f"{digest}.partial"
        partial.write_bytes(data)
        os.replace(partial, blob_dir / digest)
    line = json.dumps({"task_id": task_id, "upload": pending.upload.model_dump(mode="json")})
    with (folder / "journal.jsonl").open("ab") as f:
        f.write(line.encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())


def timed(repeat: int, run: Callable[[int], None]) -> float:
    seconds = []
    for i in range(repeat):
        start = time.perf_counter()
        run(i)
        seconds.append(time.perf_counter() - start)
    return median(seconds)


def measure(work: Path, size: int, repeat: int) -> tuple[float, float]:
    """Median seconds of `Journal.record` and of the unsynced baseline, for results of `size`."""
    results = [pending_of(size, seed) for seed in range(repeat)]
    durable_dir, baseline_dir = work / f"durable-{size}", work / f"baseline-{size}"
    durable_dir.mkdir()
    baseline_dir.mkdir()
    journal = Journal(durable_dir / "journal.jsonl")
    baseline = timed(repeat, lambda i: record_unsynced(baseline_dir, f"task_{i}", results[i]))
    durable = timed(repeat, lambda i: journal.record(f"task_{i}", results[i]))
    return durable, baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with work_folder("custos-journal-", keep=args.keep) as work:
        print(f"journal of results with weights, {args.repeat} per size; {describe_load(load_average())}")
        figures: dict[str, float] = {}
        for size in sizes:
            durable, baseline = measure(work, size, args.repeat)
            megabytes = size * 4 / 1e6
            print(
                f"  {size:,} parameters ({megabytes:.0f} MB): record {durable * 1000:.1f} ms, "
                f"unsynced blobs {baseline * 1000:.1f} ms, ratio {durable / baseline:.2f}"
            )
            figures |= {
                f"record_{size}_s": round(durable, 4),
                f"unsynced_{size}_s": round(baseline, 4),
                f"ratio_{size}": round(durable / baseline, 2),
            }
        figures["load_1min"] = load_average()[0]
        print(f"  after: {describe_load(load_average())}")
        print_json_figures(figures)


if __name__ == "__main__":
    main()
