"""Datasets at the gateway: the catalogue, sources, profiling, mock tables and synthetic demo data."""

from custos.data.catalog import DatasetEntry, load_catalog
from custos.data.file_source import FileSource, open_source
from custos.data.ipc import table_from_ipc_b64, table_to_ipc_b64
from custos.data.mock import generate_mock
from custos.data.profile import profile
from custos.data.source import DataSource
from custos.data.synthetic import synthetic_patients, write_dataset

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
