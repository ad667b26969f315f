"""Datasets at the gateway: the catalogue, sources, profiling, mock tables and synthetic demo data.

The names are loaded on first use (PEP 562), so that importing one module of this package (the
orchestrator reads mock tables with `custos.data.ipc`) does not load DuckDB or pyarrow's Parquet and
CSV readers with the others."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from custos.data.catalog import DatasetEntry, load_catalog
    from custos.data.file_source import FileSource, open_source
    from custos.data.ipc import table_from_ipc_b64, table_to_ipc_b64
    from custos.data.mock import generate_mock
    from custos.data.profile import profile
    from custos.data.source import DataSource
    from custos.data.synthetic import synthetic_patients, write_dataset

_WHERE = {
    "DataSource": "source",
    "DatasetEntry": "catalog",
    "FileSource": "file_source",
    "generate_mock": "mock",
    "load_catalog": "catalog",
    "open_source": "file_source",
    "profile": "profile",
    "synthetic_patients": "synthetic",
    "table_from_ipc_b64": "ipc",
    "table_to_ipc_b64": "ipc",
    "write_dataset": "synthetic",
}

__all__ = [
    "DataSource",
    "DatasetEntry",
    "FileSource",
    "generate_mock",
    "load_catalog",
    "open_source",
    "profile",
    "synthetic_patients",
    "table_from_ipc_b64",
    "table_to_ipc_b64",
    "write_dataset",
]


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
