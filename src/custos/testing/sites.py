"""A gateway's site of one dataset, for handler tests that run the sandbox without an orchestrator."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from custos.data.catalog import DatasetEntry
from custos.data.synthetic import write_dataset
from custos.gateway.site import SiteDataset, load_dataset


def parquet_site(folder: Path, name: str, table: pa.Table) -> dict[str, SiteDataset]:
    """`table` written as `folder/name.parquet` and loaded as the gateway loads a catalogue's dataset
    (profiled, mocked, lineage taken), with no policy file."""
    path = folder / f"{name}.parquet"
    write_dataset(table, path)
    entry = DatasetEntry(name, path, "parquet", name, path.with_suffix(".policy.json"))
    return {name: load_dataset(entry)}
