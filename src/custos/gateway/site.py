"""The datasets this gateway holds and the custodian's policies for them, loaded once at start.

The gateway enforces its own copy of each policy; it publishes them to the orchestrator only for
display and early checks. The file locations never leave this module's owner process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from custos.core.errors import NotFound
from custos.core.schema import DatasetSchema
from custos.core.wire import DatasetPublish, GatewayPublish
from custos.data.catalog import DatasetEntry, load_catalog
from custos.data.file_source import open_source
from custos.data.ipc import table_to_ipc_b64
from custos.data.mock import generate_mock
from custos.data.profile import profile
from custos.data.source import DataSource
from custos.policy import AssetPolicy, load_policy


@dataclass(frozen=True)
class SiteDataset:
    entry: DatasetEntry
    source: DataSource
    schema: DatasetSchema
    row_count: int
    policy: AssetPolicy | None
    policy_yaml: str | None
    mock_b64: str


def load_site(catalog: Path) -> dict[str, SiteDataset]:
    """Load, profile and mock every dataset; a malformed policy stops the start with its reason."""
    site: dict[str, SiteDataset] = {}
    for entry in load_catalog(catalog):
        policy_yaml = entry.policy_path.read_text() if entry.policy_path.is_file() else None
        policy = load_policy(policy_yaml, source=str(entry.policy_path.name)) if policy_yaml else None
        source = open_source(entry)
        schema, rows = profile(source)
        mock = generate_mock(source, schema)
        site[entry.name] = SiteDataset(
            entry, source, schema, rows, policy, policy_yaml, table_to_ipc_b64(mock)
        )
    return site


def publication(site: dict[str, SiteDataset]) -> GatewayPublish:
    return GatewayPublish(
        datasets=[
            DatasetPublish(
                name=name,
                description=d.entry.description,
                dataset_schema=d.schema,
                row_count=d.row_count,
                mock_arrow_b64=d.mock_b64,
                policy_yaml=d.policy_yaml,
            )
            for name, d in site.items()
        ]
    )


def get_dataset(site: dict[str, SiteDataset], name: str) -> SiteDataset:
    if name not in site:
        raise NotFound(f"this gateway holds no dataset {name!r}")
    return site[name]
