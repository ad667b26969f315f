"""How long a gateway takes, at start, to key a dataset's privacy budget: the fingerprint of its rows.

    .venv/bin/python benchmarks/row_lineage.py [--rows 10000000] [--repeat 3] [--keep]

Writes one site of synthetic patients (stats_throughput's data) as Parquet and, shuffled, as CSV, then
times `--repeat` times each, in wall and CPU seconds: `row_lineage` (the fingerprint, one DuckDB pass
over the file) of the Parquet file and of the CSV, and `content_lineage` (the SHA-256 of the file's
bytes, which the gateway also takes, to link ledgers kept under it). Checks that both files have the
same fingerprint. The last line is the medians as JSON.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from deployment import describe_load, load_average, median, print_json_figures, work_folder

from custos.data.file_source import FileSource
from custos.data.fingerprint import row_lineage
from custos.data.synthetic import synthetic_patients, write_dataset
from custos.privacy.ledger import content_lineage

SEED = 7


def timed(repeat: int, run: Callable[[], str]) -> tuple[float, float, str]:
    """The median wall and CPU seconds (this process's threads, DuckDB's included) of `run`."""
    wall, cpu, answers = [], [], set()
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        answers.add(run())
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    (answer,) = answers
    return median(wall), median(cpu), answer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    with work_folder("custos-lineage-", keep=args.keep) as work:
        parquet, csv = work / "patients.parquet", work / "patients.csv"
        table = synthetic_patients(args.rows, site=0, seed=SEED)
        write_dataset(table, parquet)
        write_dataset(table.take(np.random.default_rng(SEED).permutation(table.num_rows)), csv)
        del table
        print(
            f"{args.rows:,} rows: Parquet {_mb(parquet)} MB, CSV {_mb(csv)} MB; "
            f"{describe_load(load_average())}"
        )
        figures: dict[str, float | bool | int] = {"rows": args.rows}
        fingerprints = []
        for name, path, fmt in (("parquet", parquet, "parquet"), ("csv", csv, "csv")):
            source = FileSource(name, path, fmt)  # type: ignore[arg-type]
            seconds, cpu, fingerprint = timed(args.repeat, lambda source=source: row_lineage(source))  # type: ignore[misc]
            fingerprints.append(fingerprint)
            digest_seconds, digest_cpu, _ = timed(args.repeat, lambda path=path: content_lineage(path))  # type: ignore[misc]
            print(
                f"  {name}: row_lineage {seconds:.2f} s ({cpu:.2f} CPU s), "
                f"content_lineage {digest_seconds:.2f} s ({digest_cpu:.2f} CPU s)"
            )
            figures |= {
                f"row_lineage_{name}_s": round(seconds, 3),
                f"row_lineage_{name}_cpu_s": round(cpu, 3),
                f"content_lineage_{name}_s": round(digest_seconds, 3),
                f"content_lineage_{name}_cpu_s": round(digest_cpu, 3),
            }
        figures["same_fingerprint"] = fingerprints[0] == fingerprints[1]
        print(f"  the same fingerprint for both files: {figures['same_fingerprint']}")
        print_json_figures(figures)


def _mb(path: Path) -> int:
    return round(path.stat().st_size / 1e6)


if __name__ == "__main__":
    main()
